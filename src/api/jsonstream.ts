/**
 * Docker's JSON message stream (wire README section 6): one compact JSON
 * object per chunk, `\r\n`-terminated, `<`, `>`, `&` escaped like Go's
 * encoder. Headers go out with the first message, so an error found before
 * anything was sent is still an ordinary HTTP error; after that it becomes
 * an in-band `{"errorDetail":{...},"error":...}` message.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import type { ProgressMessage } from '../engine/types';
import { BerthError } from '../common/errors';
import { stallGuard } from '../common/tarout';
import { sendError, type Ctx } from './router';

export class JsonStream {
  private res: ServerResponse | undefined;
  private unguard: () => void = () => undefined;
  private readonly gone = new AbortController();
  constructor(private ctx: Ctx) {
    // The client went (or was cut for stalling) before the stream ended: the work it asked for is abandoned.
    ctx.res?.on('close', () => { if (!ctx.res?.writableFinished) this.gone.abort(); });
  }

  get started(): boolean { return this.res !== undefined; }

  /** Aborted once the client is gone before the end of the stream. */
  get signal(): AbortSignal { return this.gone.signal; }

  send(msg: ProgressMessage | Record<string, unknown>): void {
    if (!this.res) this.open();
    if (this.res!.destroyed || this.res!.writableEnded) return;
    this.res!.write(goJson(msg) + '\r\n');
  }

  end(): void {
    if (!this.res) this.open();
    this.unguard();
    if (!this.res!.writableEnded) this.res!.end();
  }

  /** A client that reads nothing for `stream-stall-timeout` is cut: messages are never buffered without bound. */
  private open(): void {
    this.res = this.ctx.startStream('application/json');
    this.unguard = stallGuard(this.res, this.ctx.limits.streamStallSec * 1000);
  }

  /** Runs `work` with a progress sink into this stream; ends it, or reports the failure in band or as HTTP. */
  async run(work: (progress: (msg: ProgressMessage) => void) => Promise<void>, opts: { errorsInBand?: boolean } = {}): Promise<void> {
    try {
      await work((m) => this.send(m));
      this.end();
    } catch (err) {
      this.fail(err, opts.errorsInBand);
    }
  }

  /** Reports a failure the way the current state allows (`inBand`: always as a 200 stream's last message). */
  fail(err: unknown, inBand = false): void {
    if (!this.res && !inBand) { sendError(this.ctx, err); return; }
    const message = err instanceof Error ? err.message : String(err);
    // A failed build step carries its exit code; the docker CLI exits with it.
    const code = err instanceof BerthError ? err.exitCode : undefined;
    this.send({ errorDetail: { ...(code ? { code } : {}), message }, error: message });
    this.end();
  }
}

export function goJson(v: unknown): string {
  return JSON.stringify(v).replace(/[<>&]/g, (c) => ({ '<': '\\u003c', '>': '\\u003e', '&': '\\u0026' } as Record<string, string>)[c]);
}

/**
 * The request body as a stream that consumers may destroy on error without
 * destroying the request (and with it the socket the error response needs).
 * After a failure the rest of the upload is drained.
 */
export function detachedBody(req: IncomingMessage): Readable {
  const body = new PassThrough({ highWaterMark: 1 << 20 });
  req.pipe(body);
  req.on('error', (err) => body.destroy(err));
  body.on('close', () => {
    if (!req.readableEnded) { req.unpipe(body); req.resume(); }
  });
  return body;
}
