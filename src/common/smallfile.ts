/**
 * Files up to this size are read or written with one direct (synchronous) call instead of a
 * stream: for the many small files of a build context or a layer, each thread-pool round trip
 * costs far more than the call itself. Bigger files stream, so the event loop is never held long.
 */
export const SMALL_FILE_BYTES = 256 * 1024;
