/**
 * One error type for the whole engine. Each error carries a kind; the API
 * layer maps the kind to an HTTP status in exactly one place (api/router.ts),
 * so stores and the runtime never know about HTTP.
 */
export type ErrorKind =
  | 'not-found'        // 404
  | 'conflict'         // 409
  | 'invalid-argument' // 400
  | 'not-modified'     // 304 (start of a running container, stop of a stopped one)
  | 'unauthorized'     // 401 (registry credentials refused)
  | 'forbidden'        // 403
  | 'too-large'        // 413 (a request body over its route's limit)
  | 'unavailable'      // 503
  | 'not-implemented'  // 501
  | 'internal';        // 500

export class BerthError extends Error {
  readonly kind: ErrorKind;
  /** Exit status a CLI should use, when it differs from the default (e.g. 126/127 for start failures). */
  readonly exitCode?: number;
  constructor(kind: ErrorKind, message: string, opts: { cause?: unknown; exitCode?: number } = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.kind = kind;
    this.exitCode = opts.exitCode;
    this.name = 'BerthError';
  }
}

export const notFound = (msg: string) => new BerthError('not-found', msg);
export const conflict = (msg: string) => new BerthError('conflict', msg);
export const invalidArgument = (msg: string) => new BerthError('invalid-argument', msg);
export const internal = (msg: string, cause?: unknown) => new BerthError('internal', msg, { cause });

export function isKind(err: unknown, kind: ErrorKind): boolean {
  return err instanceof BerthError && err.kind === kind;
}

/** Docker's status code for each kind. */
export function httpStatusOf(err: unknown): number {
  if (!(err instanceof BerthError)) return 500;
  switch (err.kind) {
    case 'not-found': return 404;
    case 'conflict': return 409;
    case 'invalid-argument': return 400;
    case 'not-modified': return 304;
    case 'unauthorized': return 401;
    case 'forbidden': return 403;
    case 'too-large': return 413;
    case 'unavailable': return 503;
    case 'not-implemented': return 501;
    default: return 500;
  }
}
