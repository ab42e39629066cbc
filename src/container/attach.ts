/**
 * Bridges a hijacked client socket and conmon's attach socket
 * (SOCK_SEQPACKET; output packets are [2=stdout|3=stderr, data...], bytes we
 * send are the container's stdin, our half-close closes its stdin).
 * A bridge can exist before the container runs (docker run attaches before
 * start): stdin is buffered until `connect()`.
 */
import type { Duplex } from 'node:stream';
import { encodeFrame } from '../common/stdcopy';
import { DetachKeyMatcher } from './detachkeys';

import { SeqpacketClient } from '../runtime/seqpacket';
type Seq = SeqpacketClient;

/**
 * Largest stdin packet sent to conmon: it reads each attach packet into one 32 KiB buffer
 * and the kernel drops whatever of a SOCK_SEQPACKET packet does not fit (a 64 KiB client
 * chunk lost half its bytes). 8 KiB fits every conmon version's buffer.
 */
const STDIN_PACKET_MAX = 8192;
/**
 * Stdin bytes held for the container (before it runs, or while it reads slower than the
 * client sends) above which the client is paused; it resumes below half of it.
 */
const STDIN_HIGH_WATER = 1 << 20;

export interface BridgeOptions {
  /** Output goes to the client raw (a TTY session); otherwise in stdcopy frames. */
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /**
   * The end of the client's stdin closes the process's stdin (StdinOnce without a TTY, and
   * non-TTY execs); otherwise it ends the session and the process runs on (dockerd's rule).
   */
  closeStdinOnEof: boolean;
  /** Escape sequence that ends the session without touching the container (TTY sessions only). */
  detachKeys?: number[];
  /** Delays the client's EOF until this resolves (exec: until the exit code is known). */
  holdEnd?: () => Promise<unknown>;
  /**
   * Told when the session can not carry the container's output: the monitor's socket could not
   * be reached or failed, or the session was already over when the container started.
   */
  onTrouble?: (what: string) => void;
}

export class AttachBridge {
  private seq: Seq | undefined;
  /** Stdin received before the attach socket was connected. */
  private stdinBuf: Buffer[] = [];
  /** Stdin bytes received and not yet taken by the kernel (buffered here or queued in the socket). */
  private stdinPending = 0;
  private clientPaused = false;
  /** The session ended while stdin was still queued: close the attach socket once it is sent. */
  private closeWhenFlushed = false;
  private clientEof = false;
  private finished = false;
  /**
   * The client ended the session (detach keys, or the end of a stdin that does not close the
   * process's stdin): the process runs on without it.
   */
  endedByClient = false;
  /** The client got its EOF (or left): nothing more may be written to it. */
  private clientClosed = false;
  /** Why the session ended first (for the daemon's log when output could not be carried). */
  private endedBecause = '';
  private resolveDone!: () => void;
  /** Resolves when the session is over (output ended, or the client went away). */
  readonly done: Promise<void>;

  constructor(private readonly client: Duplex, private readonly o: BridgeOptions) {
    this.done = new Promise((r) => { this.resolveDone = r; });
    const escape = o.detachKeys?.length ? new DetachKeyMatcher(o.detachKeys) : undefined;
    client.on('data', (d: Buffer) => {
      if (!o.stdin || this.clientClosed) return;
      let detached = false;
      if (escape) ({ forward: d, detached } = escape.feed(d));
      if (d.length) this.sendStdin(d);
      if (detached) {
        // Like dockerd: the escape sequence ends this client's session only, and closes its connection.
        this.endedByClient = true;
        this.detach('detach keys');
        if (!this.client.destroyed) this.client.end(() => this.client.destroy());
      }
    });
    client.on('end', () => {
      this.clientEof = true;
      if (!o.stdin || this.finished) return;
      if (o.closeStdinOnEof) {
        if (this.seq) this.seqEnd();
        return;
      }
      this.endedByClient = true;
      this.detach('end of client input');
      if (!this.client.destroyed) this.client.end();
    });
    // A client that goes away detaches; the container keeps running.
    client.on('error', (e: Error) => this.detach(`client connection failed: ${e.message}`));
    client.on('close', () => this.detach('client connection closed'));
  }

  /** Writes bytes to the client unframed (log replay, error text). */
  writeRaw(buf: Buffer): void {
    if (!this.clientClosed && !this.client.destroyed && buf.length) this.client.write(buf);
  }

  /** Connects to conmon's attach socket; resolves once connected (or failed: the session then ends). */
  connect(socketPath: string): Promise<void> {
    if (this.finished) {
      if (!this.endedByClient) this.o.onTrouble?.(`attach session was over before the container ran (${this.endedBecause})`);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      let seq: Seq;
      let connected = false;
      try {
        seq = new SeqpacketClient();
        seq.on('error', (e: Error) => {
          this.o.onTrouble?.(`attach socket ${connected ? 'failed' : 'unreachable'}: ${e.message}`);
          this.finish('attach socket failed');
          resolve();
        });
        seq.on('data', (pkt: Buffer) => this.onPacket(pkt));
        seq.on('end', () => this.finish('output ended'));
        seq.on('close', () => this.finish('attach socket closed'));
        seq.once('connect', () => {
          connected = true;
          this.seq = seq;
          const buffered = this.stdinBuf.splice(0);
          for (const b of buffered) this.stdinPending -= b.length;
          for (const b of buffered) this.sendStdin(b);
          if (this.o.stdin && this.o.closeStdinOnEof && this.clientEof) this.seqEnd();
          resolve();
        });
        seq.connect(socketPath);
      } catch (e) {
        this.o.onTrouble?.(`attach socket unreachable: ${(e as Error).message}`);
        this.finish('attach socket unreachable');
        resolve();
      }
    });
  }

  /** Passes client bytes on as the container's stdin, in packets conmon reads whole; pauses a client that runs ahead. */
  private sendStdin(d: Buffer): void {
    if (!this.seq) {
      this.stdinBuf.push(d);
      this.stdinQueued(d.length);
      return;
    }
    if (this.finished) return;
    for (let off = 0; off < d.length; off += STDIN_PACKET_MAX) {
      const pkt = d.subarray(off, off + STDIN_PACKET_MAX);
      this.stdinQueued(pkt.length);
      // The native socket throws synchronously once conmon has gone away; that only means the session is over.
      try { this.seq.write(pkt, () => this.stdinSent(pkt.length)); } catch { this.finish(); return; }
    }
  }

  private stdinQueued(n: number): void {
    this.stdinPending += n;
    if (!this.clientPaused && this.stdinPending > STDIN_HIGH_WATER) {
      this.clientPaused = true;
      this.client.pause();
    }
  }

  private stdinSent(n: number): void {
    this.stdinPending -= n;
    if (this.clientPaused && this.stdinPending <= STDIN_HIGH_WATER / 2) {
      this.clientPaused = false;
      if (!this.clientClosed) this.client.resume();
    }
    if (this.closeWhenFlushed && this.stdinPending === 0) this.closeSeq();
  }

  private closeSeq(): void {
    try { this.seq?.destroy(); } catch { /* already closed */ }
  }

  private seqEnd(): void {
    if (this.finished || !this.seq) return;
    try { this.seq.end(); } catch { this.finish(); }
  }

  private onPacket(pkt: Buffer): void {
    if (pkt.length < 2) return;
    const isErr = pkt[0] === 3;
    if (isErr ? !this.o.stderr : !this.o.stdout) return;
    const data = pkt.subarray(1);
    this.writeRaw(this.o.tty ? Buffer.from(data) : encodeFrame(isErr ? 2 : 1, data));
  }

  /** Ends the session: the client sees EOF after all output. */
  finish(because = 'ended by the daemon'): void {
    if (this.finished) return;
    this.finished = true;
    this.endedBecause = because;
    this.closeSeq();
    void Promise.resolve(this.o.holdEnd?.()).catch(() => undefined).then(() => {
      this.clientClosed = true;
      if (!this.client.destroyed) this.client.end();
      this.resolveDone();
    });
  }

  /**
   * The client is gone (or detached): drop our end of the attach socket only, once the
   * stdin it sent has reached conmon (a client may send and close at once).
   */
  private detach(because: string): void {
    this.clientClosed = true;
    if (this.finished) return;
    this.finished = true;
    this.endedBecause = because;
    if (this.seq && this.stdinPending > 0) this.closeWhenFlushed = true;
    else this.closeSeq();
    this.resolveDone();
  }

  get isFinished(): boolean { return this.finished; }
}
