/**
 * Pull edge cases against registries on 127.0.0.1: an OCI index listing arm64 first still
 * gives amd64 (and --platform picks arm64); a layer whose connection drops mid-body is resumed
 * with a Range request; a blob whose digest does not match, or a registry that goes away for
 * good mid-transfer, fail with a clear message and leave no image, no layer and no temp file
 * (layers stream into the unpacker, so the unpacked copy must be discarded too).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { startDaemon, ok, type Daemon } from '../helpers/daemon';
import { startRegistry, type TestRegistry } from '../helpers/registry';

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
let d: Daemon;
let reg: TestRegistry;
before(async () => {
  d = await startDaemon();
  reg = await startRegistry('berth');
});
after(async () => {
  await reg?.stop();
  await d?.stop();
});

/** A one-file layer tar (512-byte header + data + padding + two zero blocks). */
function layerTar(name: string, content: Buffer): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(content.length.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([h, content, pad, Buffer.alloc(1024)]);
}

function image(arch: string, content: Buffer): { config: Buffer; layer: Buffer; manifest: Buffer } {
  const tar = layerTar('data', content);
  const layer = gzipSync(tar);
  const config = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', config: { Cmd: ['/data'] }, rootfs: { type: 'layers', diff_ids: [sha(tar)] } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length }],
  }));
  return { config, layer, manifest };
}

async function put(method: string, url: string, body?: Buffer, ctype?: string): Promise<number> {
  const r = await fetch(url, { method, body, headers: ctype ? { 'Content-Type': ctype } : {} });
  await r.arrayBuffer();
  return r.status;
}

test('an OCI index with arm64 first gives amd64; --platform linux/arm64 gives arm64', async () => {
  const base = `http://${reg.addr}/v2/multi/app`;
  const arm = image('arm64', Buffer.from('arm64 data\n'));
  const amd = image('amd64', Buffer.from('amd64 data\n'));
  for (const img of [arm, amd]) {
    for (const b of [img.config, img.layer]) assert.equal(await put('POST', `${base}/blobs/uploads/?digest=${sha(b)}`, b), 201);
    assert.equal(await put('PUT', `${base}/manifests/${sha(img.manifest)}`, img.manifest, 'application/vnd.oci.image.manifest.v1+json'), 201);
  }
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [
    { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(arm.manifest), size: arm.manifest.length, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
    { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(amd.manifest), size: amd.manifest.length, platform: { architecture: 'amd64', os: 'linux' } },
  ] }));
  assert.equal(await put('PUT', `${base}/manifests/1`, index, 'application/vnd.oci.image.index.v1+json'), 201);

  const ref = `${reg.addr}/multi/app:1`;
  const pull = ok(await d.cli(['pull', ref]));
  assert.match(pull.stdout, new RegExp(`Digest: ${sha(index)}`), 'the digest pulled is the index');
  const img = JSON.parse(ok(await d.cli(['image', 'inspect', ref])).stdout)[0];
  assert.equal(img.Architecture, 'amd64');
  assert.equal(img.Id, sha(amd.config));
  assert.deepEqual(img.RepoDigests, [`${reg.addr}/multi/app@${sha(index)}`]);
  ok(await d.cli(['rmi', ref]));
  ok(await d.cli(['pull', '--platform', 'linux/arm64', ref]));
  assert.equal(JSON.parse(ok(await d.cli(['image', 'inspect', ref])).stdout)[0].Architecture, 'arm64');
  const none = await d.cli(['pull', '--platform', 'linux/s390x', ref]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no matching manifest for linux\/s390x/);
  ok(await d.cli(['rmi', ref]));
});

/** A registry with one image whose layer blob misbehaves as `mode` says. */
async function fakeRegistry(mode: 'drop-once' | 'drop-always' | 'wrong-digest'): Promise<{ addr: string; close(): Promise<void>; rangeRequests: string[] }> {
  const content = randomBytes(3 << 20);
  const img = image('amd64', content);
  const rangeRequests: string[] = [];
  let layerGets = 0;
  const server = http.createServer((req, res) => {
    const u = req.url ?? '';
    if (u === '/v2/') { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end('{}'); return; }
    if (u.endsWith('/manifests/1')) { res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }); res.end(img.manifest); return; }
    if (u.endsWith(`/blobs/${sha(img.config)}`)) { res.writeHead(200); res.end(img.config); return; }
    if (u.endsWith(`/blobs/${sha(img.layer)}`)) {
      layerGets++;
      const range = req.headers.range;
      if (range) rangeRequests.push(range);
      let body = img.layer;
      if (mode === 'wrong-digest') body = Buffer.from(img.layer).fill(7, 100, 200);
      if (range) {
        const start = Number(/bytes=(\d+)-/.exec(range)![1]);
        res.writeHead(206, { 'Content-Length': body.length - start, 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` });
        res.end(body.subarray(start));
        return;
      }
      res.writeHead(200, { 'Content-Length': body.length });
      if (mode === 'drop-always' || (mode === 'drop-once' && layerGets === 1)) {
        res.write(body.subarray(0, body.length >> 1), () => res.destroy());
        return;
      }
      res.end(body);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end('{"errors":[{"code":"NOT_FOUND","message":"not found"}]}');
  });
  if (mode === 'drop-always') {
    // A range request is dropped too: the registry is gone for good.
    server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => { if (req.headers.range) { res.destroy(); } });
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { addr, rangeRequests, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

/** Temp files of a pull and unpublished layer directories (layers stream straight into snapshots/tmp-*). */
const tmpFiles = () => {
  const p = path.join(d.dataRoot, 'tmp', 'pull');
  const snaps = fs.readdirSync(path.join(d.dataRoot, 'snapshots')).filter((n) => n.startsWith('tmp-'));
  return [...(fs.existsSync(p) ? fs.readdirSync(p) : []), ...snaps];
};
const layerDirs = () => fs.readdirSync(path.join(d.dataRoot, 'snapshots')).sort();

test('a dropped layer download is resumed with Range', async () => {
  const fake = await fakeRegistry('drop-once');
  try {
    ok(await d.cli(['pull', `${fake.addr}/x/y:1`]));
    assert.equal(fake.rangeRequests.length, 1);
    assert.match(fake.rangeRequests[0], /^bytes=\d+-$/);
    assert.notEqual(fake.rangeRequests[0], 'bytes=0-');
    ok(await d.cli(['image', 'inspect', `${fake.addr}/x/y:1`]));
    assert.deepEqual(tmpFiles(), []);
    ok(await d.cli(['rmi', `${fake.addr}/x/y:1`]));
  } finally {
    await fake.close();
  }
});

for (const mode of ['wrong-digest', 'drop-always'] as const) {
  test(`a layer that ${mode === 'wrong-digest' ? 'does not match its digest' : 'never arrives whole'} fails the pull and stores nothing`, async () => {
    const fake = await fakeRegistry(mode);
    try {
      const before = ok(await d.cli(['images', '-q', '-a'])).stdout;
      const dirsBefore = layerDirs();
      const r = await d.cli(['pull', `${fake.addr}/x/y:1`]);
      assert.equal(r.code, 1);
      if (mode === 'wrong-digest') assert.match(r.stderr, /filesystem layer verification failed for digest sha256:/);
      else assert.match(r.stderr, /(error pulling layer sha256:[a-f0-9]{64}: the registry closed the connection after \d+ of \d+ bytes|blobs\/sha256:[a-f0-9]{64}": other side closed)/);
      assert.equal(ok(await d.cli(['images', '-q', '-a'])).stdout, before, 'no image appeared');
      assert.equal((await d.cli(['image', 'inspect', `${fake.addr}/x/y:1`])).code, 1);
      assert.deepEqual(tmpFiles(), []);
      assert.deepEqual(layerDirs(), dirsBefore, 'no layer was published');
    } finally {
      await fake.close();
    }
  });
}
