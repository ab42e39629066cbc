/**
 * docker-archive: the tarball `docker save` writes and `docker load` reads.
 *
 * save writes both layouts Docker 25+ writes in one tar, so every Docker
 * version can load it:
 *   manifest.json  [{Config:'blobs/sha256/<id>', RepoTags, Layers:['blobs/sha256/<diffID>']}]
 *   repositories   {"busybox":{"latest":"<id hex>"}}
 *   oci-layout, index.json, blobs/sha256/<config|manifest|layer tar>
 * Config bytes are copied byte for byte, so image IDs survive; layer tars
 * are the stored uncompressed tars, so diff IDs survive.
 *
 * load reads any docker-save layout (pre-25 `<id>/layer.tar` + `<id>.json`,
 * 25+ OCI layout, or a bare OCI layout with only index.json), plain or
 * gzip/xz/zstd, layers plain or compressed. It spools the upload into a
 * temp dir under the data root while hashing every member and checking
 * every tar header of every layer, validates the whole archive (manifest,
 * configs, layer digests against rootfs.diff_ids, references), and only
 * then commits images to the store. A bad archive leaves the store as it was.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { BerthError, invalidArgument } from '../common/errors';
import { uploadGuard, type UploadLimits } from '../common/upload';
import { addEntry, addStreamEntry, writeTar } from '../common/tarout';
import { familiarString, parseReference, withDefaultTag, referenceString } from '../common/reference';
import type { OciImageConfig } from '../engine/types';
import { decompressed, decompressStream, detectCompression, type Compression } from '../common/compression';
import { checkEntryPath, checkLinkTarget, TarHeaderScanner } from './tarcheck';
import type { PreparedLayer } from './prepared-layer';

import { MEDIA_TYPE_CONFIG, MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_INDEX, MEDIA_TYPE_LAYER, MEDIA_TYPE_MANIFEST } from '../common/mediatypes';

/* ------------------------------------------------------------------ save */

/** One image to save, as the image service describes it. */
export interface SaveImage {
  id: string;                 // sha256:<hex>
  /** Familiar tags to record (`busybox:latest`); empty when saved by ID. */
  repoTags: string[];
  configBytes: Buffer;
  diffIDs: string[];
}

export interface LayerSource {
  /** Byte length of the uncompressed layer tar. */
  size(diffID: string): Promise<number>;
  open(diffID: string): Promise<Readable>;
}

/**
 * Streams a docker-archive of `images` into `out`. Layer tars are piped
 * from the store as the tar is consumed; shared layers are written once.
 */
/** Resolves false when the reader went away before the end (see common/tarout.ts). */
export async function writeDockerArchive(images: SaveImage[], layers: LayerSource, out: Writable): Promise<boolean> {
  const epoch = new Date(0);
  const written = new Set<string>();

  const manifestJson: Array<{ Config: string; RepoTags: string[] | null; Layers: string[] }> = [];
  const repositories: Record<string, Record<string, string>> = {};
  const index: { schemaVersion: 2; mediaType: string; manifests: unknown[] } = { schemaVersion: 2, mediaType: MEDIA_TYPE_INDEX, manifests: [] };

  const produce = async (pack: tar.Pack, stopped: () => boolean) => {
    const add = (name: string, data: Buffer | string) => addEntry(pack, { name, mtime: epoch, mode: 0o644, size: Buffer.byteLength(data) }, data);
    const dir = (name: string) => addEntry(pack, { name, type: 'directory', mtime: epoch, mode: 0o755 });
    await dir('blobs/');
    await dir('blobs/sha256/');
    for (const img of images) {
      const hex = img.id.slice('sha256:'.length);
      const sizes: number[] = [];
      for (const diffID of img.diffIDs) {
        const size = await layers.size(diffID);
        sizes.push(size);
        const name = `blobs/sha256/${diffID.slice(7)}`;
        if (written.has(name)) continue;
        written.add(name);
        if (stopped()) return;
        await addStreamEntry(pack, { name, mtime: epoch, mode: 0o644, size }, await layers.open(diffID));
      }
      const configName = `blobs/sha256/${hex}`;
      if (!written.has(configName)) {
        written.add(configName);
        await add(configName, img.configBytes);
      }
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPE_MANIFEST,
        config: { mediaType: MEDIA_TYPE_CONFIG, digest: img.id, size: img.configBytes.length },
        layers: img.diffIDs.map((d, i) => ({ mediaType: MEDIA_TYPE_LAYER, digest: d, size: sizes[i] })),
      }));
      const manifestDigest = 'sha256:' + createHash('sha256').update(manifest).digest('hex');
      const manifestName = `blobs/sha256/${manifestDigest.slice(7)}`;
      if (!written.has(manifestName)) {
        written.add(manifestName);
        await add(manifestName, manifest);
      }
      const desc = { mediaType: MEDIA_TYPE_MANIFEST, digest: manifestDigest, size: manifest.length };
      if (img.repoTags.length === 0) index.manifests.push(desc);
      for (const t of img.repoTags) {
        const ref = withDefaultTag(parseReference(t));
        index.manifests.push({
          ...desc,
          annotations: { 'io.containerd.image.name': referenceString(ref), 'org.opencontainers.image.ref.name': ref.tag },
        });
        const fam = familiarString({ ...ref, tag: undefined });
        (repositories[fam] ??= {})[ref.tag!] = hex;
      }
      manifestJson.push({
        Config: configName,
        RepoTags: img.repoTags.length ? img.repoTags : null,
        Layers: img.diffIDs.map((d) => `blobs/sha256/${d.slice(7)}`),
      });
    }
    await add('index.json', JSON.stringify(index) + '\n');
    await add('manifest.json', JSON.stringify(manifestJson) + '\n');
    await add('oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    if (Object.keys(repositories).length) await add('repositories', JSON.stringify(repositories) + '\n');
  };
  return writeTar(out, produce);
}

/* ------------------------------------------------------------------ load */

/** A member of the spooled archive. */
interface SpoolFile {
  name: string;
  path: string;
  size: number;
  /** sha256 of the member bytes as stored in the archive. */
  digest: string;
  compression: Compression;
  /** Set when the member is an uncompressed tar whose headers were all checked. */
  checkedTar: boolean;
  /** Error from checking the member as a layer tar, raised only if it is used as one. */
  tarError?: Error;
  /** Big plain tar members are also unpacked while spooled (see prepared-layer.ts); undefined when that failed. */
  prepared?: Promise<PreparedLayer | undefined>;
}

/** A validated image of the archive, ready to commit. */
export interface LoadedImage {
  id: string;
  configBytes: Buffer;
  config: OciImageConfig;
  /** Full normalised references (`docker.io/library/busybox:latest`). */
  tags: string[];
  layers: Array<{ diffID: string; file: string; compression: Compression; size: number; prepared?: Promise<PreparedLayer | undefined> }>;
}

export class Spool {
  readonly files = new Map<string, SpoolFile>();
  readonly links = new Map<string, { type: 'symlink' | 'link'; target: string }>();
  constructor(readonly dir: string) {}

  /** Follows archive-internal links (older saves symlink shared layers). */
  lookup(name: string): SpoolFile | undefined {
    let cur = checkEntryPath(name, 'archive');
    for (let i = 0; i < 16; i++) {
      const f = this.files.get(cur);
      if (f) return f;
      const l = this.links.get(cur);
      if (!l) return undefined;
      cur = l.type === 'link' ? checkEntryPath(l.target) : checkEntryPath(path.posix.join(path.posix.dirname(cur), l.target));
    }
    return undefined;
  }

  async readSmall(name: string, max = 16 << 20): Promise<Buffer | undefined> {
    const f = this.lookup(name);
    if (!f) return undefined;
    if (f.size > max) throw invalidArgument(`invalid archive: ${name} is too large (${f.size} bytes)`);
    return fsp.readFile(f.path);
  }

  async remove(): Promise<void> {
    await this.discardPrepared();
    await fsp.rm(this.dir, { recursive: true, force: true });
  }

  /** Every speculative unpack started, with the stream feeding it (also those of members that failed to spool). */
  readonly unpacks: Array<{ feed: PassThrough; prepared: Promise<PreparedLayer | undefined> }> = [];

  /** Drops every speculative unpack not committed (a no-op for committed ones), waiting for those still running. */
  async discardPrepared(): Promise<void> {
    for (const u of this.unpacks) if (!u.feed.writableEnded) u.feed.destroy(new Error('load aborted'));
    await Promise.all(this.unpacks.map(async (u) => (await u.prepared)?.discard()));
  }
}

/**
 * Reads the (possibly compressed) upload into `dir`, hashing each member
 * and header-checking members that look like tars. Returns the spool.
 */
export interface SpoolOptions {
  /** Unpacks a plain layer tar while it is spooled (load); see prepared-layer.ts. */
  prepare?: (src: Readable) => Promise<PreparedLayer>;
  /** Bounds on the decompressed bytes (what lands on disk): a small gzip may declare gigabytes. */
  limits?: UploadLimits;
}

/** Members at least this big that start with a ustar header are unpacked while spooled. */
const PREPARE_MIN = 1 << 20;

export async function spoolArchive(input: Readable, dir: string, opts: SpoolOptions = {}): Promise<Spool> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const spool = new Spool(dir);
  const { stream } = await decompressed(input);
  const extract = tar.extract();
  let count = 0;
  extract.on('entry', (header, entry, next) => {
    // When the extract is destroyed the current entry errors too; the extract's error is what we report.
    entry.on('error', () => undefined);
    const fail = (err: unknown) => next(err instanceof Error ? err : new Error(String(err)));
    let name: string;
    try {
      name = checkEntryPath(header.name, 'archive');
    } catch (err) { entry.resume(); fail(err); return; }
    if (header.type === 'symlink' || header.type === 'link') {
      try { checkLinkTarget(name, header.type, header.linkname ?? '', 'archive'); } catch (err) { entry.resume(); fail(err); return; }
      spool.links.set(name, { type: header.type, target: header.linkname ?? '' });
      entry.resume();
      entry.on('end', () => next());
      return;
    }
    if (header.type !== 'file' && header.type !== 'contiguous-file') {
      entry.resume();
      entry.on('end', () => next());
      return;
    }
    if (!name) { entry.resume(); fail(invalidArgument('invalid archive: file entry without a name')); return; }
    const file = path.join(dir, `m${count++}`);
    const prepare = (header.size ?? 0) >= PREPARE_MIN ? opts.prepare : undefined;
    spoolMember(entry as unknown as Readable, file, prepare && ((src) => {
      const prepared = prepare(src).catch(() => undefined);
      spool.unpacks.push({ feed: src, prepared });
      return prepared;
    })).then((m) => {
      spool.files.set(name, { name, path: file, ...m });
      next();
    }, fail);
  });
  try {
    if (opts.limits) await pipeline(stream, uploadGuard(dir, opts.limits, 'the archive'), extract as unknown as Writable);
    else await pipeline(stream, extract as unknown as Writable);
  } catch (err) {
    await spool.discardPrepared();
    throw archiveError(err);
  }
  if (spool.files.size === 0) throw invalidArgument('invalid archive: empty or not a tar archive');
  return spool;
}

function archiveError(err: unknown): Error {
  const e = err as Error;
  if (e instanceof BerthError) return e;
  const msg = e?.message ?? String(err);
  if (/Invalid tar header|Unexpected end of data|not a tar|checksum/i.test(msg)) {
    return invalidArgument(`invalid archive: ${/Unexpected end/.test(msg) ? 'unexpected EOF (truncated tar archive)' : 'not a tar archive'}`);
  }
  return invalidArgument(`invalid archive: ${msg}`);
}

/**
 * Writes one member to disk, computing its sha256 and, when it is an
 * uncompressed tar, checking all of its headers, in the same pass.
 */
async function spoolMember(entry: Readable, file: string, prepare?: (src: PassThrough) => Promise<PreparedLayer | undefined>): Promise<Omit<SpoolFile, 'name' | 'path'>> {
  const hash = createHash('sha256');
  let size = 0;
  let first: Buffer | undefined;
  let scanner: TarHeaderScanner | undefined;
  let tarError: Error | undefined;
  // Speculative unpack: fed the same bytes; dropped (not fed further) as soon as it fails.
  let feed: PassThrough | undefined;
  let prepared: Promise<PreparedLayer | undefined> | undefined;
  let prepareDone = false;
  const out = fs.createWriteStream(file, { flags: 'wx', mode: 0o600, highWaterMark: 1 << 20 });
  await pipeline(entry, new Writable({
    highWaterMark: 1 << 20,
    // An aborted upload closes the member's file too: a spool removed later must not stay open.
    destroy(err, cb) { if (err) feed?.destroy(err); out.destroy(); cb(err); },
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      if (!first) {
        first = chunk;
        // Any uncompressed member may be a layer: check its tar headers on
        // the fly; the verdict matters only if the manifest uses it as one.
        if (detectCompression(chunk) === 'none') scanner = new TarHeaderScanner('layer');
        if (prepare && chunk.length >= 512 && chunk.toString('latin1', 257, 262) === 'ustar') {
          const pass = new PassThrough({ highWaterMark: 4 << 20 });
          pass.on('error', () => undefined); // the unpack reports through `prepared`; nobody may be listening any more
          feed = pass;
          prepared = prepare(pass).finally(() => {
            prepareDone = true;
            pass.resume(); // never leave the spool waiting on a failed unpack
            pass.emit('drain');
          });
        }
      }
      if (scanner && !tarError) {
        try { scanner.push(chunk); } catch (err) { tarError = err as Error; }
      }
      let waits = 0;
      const done = () => { if (--waits === 0) cb(); };
      waits++;
      if (!out.write(chunk)) { waits++; out.once('drain', done); }
      if (feed && !prepareDone && !feed.write(chunk)) { waits++; feed.once('drain', done); }
      done();
    },
    final(cb) {
      feed?.end();
      out.end(); out.once('close', () => cb()); out.once('error', cb);
    },
  }));
  if (scanner && !tarError) {
    try { scanner.end(); } catch (err) { tarError = err as Error; }
  }
  return {
    size,
    digest: 'sha256:' + hash.digest('hex'),
    compression: first ? detectCompression(first) : 'none',
    checkedTar: !!scanner && !tarError,
    tarError,
    prepared,
  };
}

interface ManifestItem { Config: string; RepoTags?: string[] | null; Layers: string[] }

/**
 * Validates the spooled archive and describes its images. Compressed layer
 * members are decompressed once here to compute and check their diff IDs.
 */
export async function readSpooledImages(spool: Spool): Promise<LoadedImage[]> {
  let items: ManifestItem[];
  const manifestBytes = await spool.readSmall('manifest.json');
  if (manifestBytes) {
    try { items = JSON.parse(manifestBytes.toString('utf8')); } catch (err) {
      throw invalidArgument(`invalid archive: manifest.json: ${(err as Error).message}`);
    }
    if (!Array.isArray(items)) throw invalidArgument('invalid archive: manifest.json is not a list');
  } else {
    items = await manifestFromOciIndex(spool);
  }
  if (items.length === 0) throw invalidArgument('invalid archive: manifest.json lists no image');
  const diffCache = new Map<string, string>();
  const out: LoadedImage[] = [];
  for (const item of items) {
    if (!item || typeof item.Config !== 'string' || !Array.isArray(item.Layers)) {
      throw invalidArgument('invalid archive: manifest.json entry lacks Config or Layers');
    }
    const configBytes = await spool.readSmall(item.Config);
    if (!configBytes) throw invalidArgument(`invalid archive: config ${item.Config} named in manifest.json is missing`);
    let config: OciImageConfig;
    try { config = JSON.parse(configBytes.toString('utf8')); } catch (err) {
      throw invalidArgument(`invalid archive: config ${item.Config}: ${(err as Error).message}`);
    }
    const diffIDs = config?.rootfs?.diff_ids;
    if (!Array.isArray(diffIDs)) throw invalidArgument(`invalid archive: config ${item.Config} has no rootfs.diff_ids`);
    if (diffIDs.length !== item.Layers.length) {
      throw invalidArgument(`invalid manifest, layers length mismatch: expected ${diffIDs.length}, got ${item.Layers.length}`);
    }
    const layers: LoadedImage['layers'] = [];
    for (let i = 0; i < item.Layers.length; i++) {
      const f = spool.lookup(String(item.Layers[i]));
      if (!f) throw invalidArgument(`invalid archive: layer ${item.Layers[i]} named in manifest.json is missing`);
      let diffID = diffCache.get(f.path);
      if (!diffID) {
        diffID = f.compression === 'none' ? checkedPlainLayer(f) : await diffIDOfCompressed(f);
        diffCache.set(f.path, diffID);
      }
      if (diffID !== diffIDs[i]) {
        throw invalidArgument(`invalid diffID for layer ${i} (${item.Layers[i]}): expected ${diffIDs[i]}, got ${diffID}`);
      }
      layers.push({ diffID, file: f.path, compression: f.compression, size: f.size, prepared: f.prepared });
    }
    const tags: string[] = [];
    for (const t of item.RepoTags ?? []) {
      const ref = parseReference(String(t)); // throws with Docker's wording on a bad reference
      if (ref.digest) throw invalidArgument(`invalid tag ${JSON.stringify(t)}: a digest is not a tag`);
      tags.push(referenceString(withDefaultTag(ref)));
    }
    const id = 'sha256:' + createHash('sha256').update(configBytes).digest('hex');
    out.push({ id, configBytes, config, tags, layers });
  }
  return out;
}

function checkedPlainLayer(f: SpoolFile): string {
  if (f.tarError) throw f.tarError;
  if (!f.checkedTar) throw invalidArgument(`invalid layer ${f.name}: not a tar archive`);
  return f.digest;
}

/** Decompresses a compressed member once: diff ID plus the same header checks. */
async function diffIDOfCompressed(f: SpoolFile): Promise<string> {
  const hash = createHash('sha256');
  const scanner = new TarHeaderScanner('layer');
  const src = decompressStream(fs.createReadStream(f.path, { highWaterMark: 1 << 20 }), f.compression);
  try {
    await pipeline(src, new Writable({
      write(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        try { scanner.push(chunk); cb(); } catch (err) { cb(err as Error); }
      },
    }));
    scanner.end();
  } catch (err) {
    const e = err as Error;
    if ((e as any).kind) throw e;
    throw invalidArgument(`invalid layer ${f.name}: ${e.message}`);
  }
  return 'sha256:' + hash.digest('hex');
}

/** A bare OCI image layout (no manifest.json): index.json -> manifests. */
async function manifestFromOciIndex(spool: Spool): Promise<ManifestItem[]> {
  const indexBytes = await spool.readSmall('index.json');
  if (!indexBytes) throw invalidArgument('invalid archive: no manifest.json or index.json found (is this a docker save / OCI archive?)');
  const blob = (digest: string) => {
    if (!/^sha256:[a-f0-9]{64}$/.test(String(digest))) throw invalidArgument(`invalid archive: bad digest ${JSON.stringify(digest)}`);
    return `blobs/sha256/${String(digest).slice(7)}`;
  };
  const parse = async (name: string) => {
    const b = await spool.readSmall(name);
    if (!b) throw invalidArgument(`invalid archive: ${name} is missing`);
    try { return JSON.parse(b.toString('utf8')); } catch (err) { throw invalidArgument(`invalid archive: ${name}: ${(err as Error).message}`); }
  };
  const index = await parse('index.json');
  const byManifest = new Map<string, ManifestItem>();
  const walk = async (descs: any[], depth: number): Promise<void> => {
    for (const d of descs ?? []) {
      if (d?.mediaType === MEDIA_TYPE_INDEX || d?.mediaType === MEDIA_TYPE_DOCKER_MANIFEST_LIST) {
        if (depth < 4) await walk((await parse(blob(d.digest))).manifests, depth + 1);
        continue;
      }
      const name = d?.annotations?.['io.containerd.image.name'] ?? (d?.annotations?.['org.opencontainers.image.ref.name'] && /[:/]/.test(d.annotations['org.opencontainers.image.ref.name']) ? d.annotations['org.opencontainers.image.ref.name'] : undefined);
      let item = byManifest.get(d.digest);
      if (!item) {
        const m = await parse(blob(d.digest));
        item = { Config: blob(m?.config?.digest), RepoTags: [], Layers: (m?.layers ?? []).map((l: any) => blob(l.digest)) };
        byManifest.set(d.digest, item);
      }
      if (name) item.RepoTags!.push(familiarString(name));
    }
  };
  await walk(index.manifests, 0);
  return [...byManifest.values()];
}

/** Opens a spooled layer for applying: decompressed, as a Node stream. */
export function openSpooledLayer(layer: LoadedImage['layers'][number]): Readable {
  return decompressStream(fs.createReadStream(layer.file, { highWaterMark: 1 << 20 }), layer.compression);
}
