/**
 * `berth registry gc`: mark and sweep, as distribution's garbage-collect. Every manifest revision
 * of every repository is kept, with what it references (config, layers, the manifests of an
 * index); blobs nothing marks are deleted, with their repository links, and uploads left behind.
 * Like distribution's, it must not run while the server accepts pushes.
 */
import { RegistryStorage } from './storage';
import * as fsp from 'node:fs/promises';

export interface GcResult { marked: number; deleted: string[]; uploadsRemoved: number }

export async function collectGarbage(root: string, opts: { dryRun: boolean; log?: (s: string) => void }): Promise<GcResult> {
  const log = opts.log ?? (() => undefined);
  const storage = new RegistryStorage(root);
  await storage.open();
  const marked = new Set<string>();
  const markManifest = async (repo: string, digest: string): Promise<void> => {
    if (marked.has(digest)) return;
    marked.add(digest);
    log(`${repo}: marking manifest ${digest}`);
    const body = await fsp.readFile(storage.blobPath(digest)).catch(() => undefined);
    if (!body) return;
    let doc: any;
    try { doc = JSON.parse(body.toString('utf8')); } catch { return; }
    for (const m of Array.isArray(doc.manifests) ? doc.manifests : []) if (typeof m?.digest === 'string') await markManifest(repo, m.digest);
    for (const d of [doc.config, ...(Array.isArray(doc.layers) ? doc.layers : [])]) {
      if (typeof d?.digest === 'string' && !marked.has(d.digest)) {
        marked.add(d.digest);
        log(`${repo}: marking blob ${d.digest}`);
      }
    }
  };
  const repos = await storage.repositories();
  for (const repo of repos) for (const d of await storage.revisions(repo)) await markManifest(repo, d);
  const deleted = (await storage.allBlobs()).filter((d) => !marked.has(d));
  log(`\n${marked.size} blobs marked, ${deleted.length} blobs eligible for deletion`);
  let uploadsRemoved = 0;
  if (!opts.dryRun) {
    const gone = new Set(deleted);
    for (const d of deleted) { log(`blob eligible for deletion: ${d}`); await storage.removeBlob(d); }
    // Links to deleted blobs, in every repository (also those holding no manifest).
    const all = new Set([...repos, ...(await storage.repositories('_layers'))]);
    for (const repo of all) for (const d of await storage.layerLinks(repo)) if (gone.has(d)) await storage.removeLayerLink(repo, d);
    for (const id of await storage.uploadIds()) { await storage.cancelUpload(id); uploadsRemoved++; }
  } else {
    for (const d of deleted) log(`blob eligible for deletion: ${d}`);
  }
  return { marked: marked.size, deleted, uploadsRemoved };
}
