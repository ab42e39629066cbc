/**
 * A SOCK_SEQPACKET client socket (conmon's attach socket is one; Node's net
 * module only speaks SOCK_STREAM). It drives the native binding of
 * node-unix-socket directly: we depend only on its linux-x64-gnu binary
 * package, because the umbrella package lists binaries for other platforms
 * that this project's package registry does not serve (npm ci would fail).
 *
 * Unlike a bare native handle, this wrapper never throws after the peer is
 * gone: writes, half-closes and closes on a finished socket are no-ops, and
 * a close requested while a half-close is being flushed waits for it (the
 * native layer otherwise calls shutdown(2) on a closed fd and throws from a
 * callback, which would take the whole daemon down).
 */
import { EventEmitter } from 'node:events';

interface NativeWrap {
  init(self: NativeWrap): void;
  startRecv(): void;
  connect(path: string): void;
  write(buf: Buffer, offset: number, length: number, cb?: () => void): void;
  shutdownWhenFlushed(): void;
  close(): void;
}

type NativeCtor = new (emitter: EventEmitter, fd?: number) => NativeWrap;

let nativeCtor: NativeCtor | undefined;
function native(): NativeCtor {
  if (!nativeCtor) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    nativeCtor = (require('node-unix-socket-linux-x64-gnu') as { SeqpacketSocketWrap: NativeCtor }).SeqpacketSocketWrap;
  }
  return nativeCtor;
}

/**
 * Events: 'connect', 'data' (one Buffer per packet), 'end' (peer finished
 * sending), 'error', 'close' (once, after which nothing else is emitted).
 */
export class SeqpacketClient extends EventEmitter {
  private readonly wrap: NativeWrap;
  private readonly events = new EventEmitter();
  private closed = false;
  private shuttingDown = false;
  private closeWanted = false;

  constructor() {
    super();
    this.events.on('_connect', () => {
      if (this.closed) return;
      this.guard(() => this.wrap.startRecv());
      this.emit('connect');
    });
    this.events.on('_data', (buf: Buffer) => { if (!this.closed) this.emit('data', buf); });
    this.events.on('end', () => { if (!this.closed) this.emit('end'); });
    this.events.on('_error', (err: Error) => {
      if (this.closed) return;
      process.nextTick(() => { this.emit('error', err); this.destroy(); });
    });
    this.events.on('_shutdown', () => {
      this.shuttingDown = false;
      if (this.closeWanted) this.destroy();
    });
    this.events.emit = this.events.emit.bind(this.events);
    this.wrap = new (native())(this.events);
    this.wrap.init(this.wrap);
  }

  connect(path: string): void {
    this.wrap.connect(path); // throws synchronously when nothing listens there
  }

  /**
   * Sends one packet. `flushed` runs once the kernel took it (it may wait in a queue
   * here while the peer's receive buffer is full); it never runs if the socket closes first.
   */
  write(buf: Buffer, flushed?: () => void): void {
    if (this.closed || this.shuttingDown || buf.length === 0) return;
    this.guard(() => this.wrap.write(buf, 0, buf.length, flushed));
  }

  /** Half-close: the peer reads EOF after everything written so far. */
  end(): void {
    if (this.closed || this.shuttingDown) return;
    this.shuttingDown = true;
    this.guard(() => this.wrap.shutdownWhenFlushed());
  }

  destroy(): void {
    if (this.closed) return;
    if (this.shuttingDown) { this.closeWanted = true; return; }
    this.closed = true;
    try { this.wrap.close(); } catch { /* fd already gone */ }
    process.nextTick(() => this.emit('close'));
  }

  get isClosed(): boolean { return this.closed; }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      process.nextTick(() => { if (!this.closed) this.emit('error', err); this.shuttingDown = false; this.destroy(); });
    }
  }
}
