/** Small in-memory tars for tests that upload archives (cp, build contexts). */
import * as tar from 'tar-stream';

export type TarMember = { header: Partial<tar.Header> & { name: string }; body?: string | Buffer };

/** A tar holding `entries`, in order. */
export function tarOf(entries: TarMember[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => { chunks.push(c as Buffer); });
  const done = new Promise<Buffer>((resolve) => pack.on('end', () => resolve(Buffer.concat(chunks))));
  for (const e of entries) pack.entry(e.header, e.body ?? '');
  pack.finalize();
  return done;
}
