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

export interface BridgeOptions {
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /** Close the container's stdin when the client half-closes (StdinOnce, exec). */
  closeStdinOnEof: boolean;
  /** Escape sequence that ends the session without touching the container (attach only). */
  detachKeys?: number[];
  /** Delays the client's EOF until this resolves (exec: until the exit code is known). */
  holdEnd?: () => Promise<unknown>;
}

export class AttachBridge {
  private seq: Seq | undefined;
  private stdinBuf: Buffer[] = [];
  private clientEof = false;
  private finished = false;
  /** The client got its EOF (or left): nothing more may be written to it. */
  private clientClosed = false;
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
      if (d.length) { if (this.seq) this.seqWrite(d); else this.stdinBuf.push(d); }
      if (detached) {
        // Like dockerd: the escape sequence ends this client's session only.
        this.detach();
        if (!this.client.destroyed) this.client.end();
      }
    });
    client.on('end', () => {
      this.clientEof = true;
      if (o.stdin && o.closeStdinOnEof && this.seq) this.seqEnd();
    });
    // A client that goes away detaches; the container keeps running.
    client.on('error', () => this.detach());
    client.on('close', () => this.detach());
  }

  /** Writes bytes to the client unframed (log replay, error text). */
  writeRaw(buf: Buffer): void {
    if (!this.clientClosed && !this.client.destroyed && buf.length) this.client.write(buf);
  }

  /** Connects to conmon's attach socket; resolves once connected (or failed: the session then ends). */
  connect(socketPath: string): Promise<void> {
    if (this.finished) return Promise.resolve();
    return new Promise((resolve) => {
      let seq: Seq;
      try {
        seq = new SeqpacketClient();
        seq.on('error', () => { this.finish(); resolve(); });
        seq.on('data', (pkt: Buffer) => this.onPacket(pkt));
        seq.on('end', () => this.finish());
        seq.on('close', () => this.finish());
        seq.once('connect', () => {
          this.seq = seq;
          for (const b of this.stdinBuf.splice(0)) this.seqWrite(b);
          if (this.o.stdin && this.o.closeStdinOnEof && this.clientEof) this.seqEnd();
          resolve();
        });
        seq.connect(socketPath);
      } catch {
        this.finish();
        resolve();
      }
    });
  }

  // The native socket throws synchronously once conmon has gone away; that only means the session is over.
  private seqWrite(b: Buffer): void {
    if (this.finished || !this.seq) return;
    try { this.seq.write(b); } catch { this.finish(); }
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
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    try { this.seq?.destroy(); } catch { /* already closed */ }
    void Promise.resolve(this.o.holdEnd?.()).catch(() => undefined).then(() => {
      this.clientClosed = true;
      if (!this.client.destroyed) this.client.end();
      this.resolveDone();
    });
  }

  /** The client is gone: drop our end of the attach socket only. */
  private detach(): void {
    this.clientClosed = true;
    if (this.finished) return;
    this.finished = true;
    try { this.seq?.destroy(); } catch { /* already closed */ }
    this.resolveDone();
  }

  get isFinished(): boolean { return this.finished; }
}
