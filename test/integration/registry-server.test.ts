/**
 * `berth registry serve` speaks the distribution API: every endpoint against a real server
 * process on 127.0.0.1, including concurrent pushes of one blob, kill -9 during an upload,
 * basic and token auth, TLS and gc.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { run, ok, BERTH_BIN } from '../helpers/daemon';
import { startRegistry, type TestRegistry } from '../helpers/registry';

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
let reg: TestRegistry;
let base = '';

before(async () => { reg = await startRegistry('berth'); base = `http://${reg.addr}`; });
after(async () => { await reg?.stop(); });

async function req(method: string, p: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: Buffer; json: any }> {
  const r = await fetch(p.startsWith('http') ? p : base + p, { method, body, headers, redirect: 'manual' });
  const buf = Buffer.from(await r.arrayBuffer());
  let json: any;
  try { json = JSON.parse(buf.toString()); } catch { json = undefined; }
  return { status: r.status, headers: r.headers, body: buf, json };
}

async function pushBlob(repo: string, data: Buffer): Promise<string> {
  const d = sha(data);
  const r = await req('POST', `/v2/${repo}/blobs/uploads/?digest=${d}`, data, { 'Content-Type': 'application/octet-stream' });
  assert.equal(r.status, 201, r.body.toString());
  return d;
}

function imageManifest(config: Buffer, layers: Buffer[], mediaType = 'application/vnd.oci.image.manifest.v1+json'): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(l), size: l.length })),
  }, null, 3));
}

test('base endpoint, blob upload (monolithic and chunked), HEAD/GET with ranges', async () => {
  const v2 = await req('GET', '/v2/');
  assert.equal(v2.status, 200);
  assert.equal(v2.headers.get('docker-distribution-api-version'), 'registry/2.0');

  const data = randomBytes(100_000);
  const d = await pushBlob('team/app', data);
  const head = await req('HEAD', `/v2/team/app/blobs/${d}`);
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-length'), '100000');
  assert.equal(head.headers.get('docker-content-digest'), d);
  const part = await req('GET', `/v2/team/app/blobs/${d}`, undefined, { Range: 'bytes=10-19' });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), 'bytes 10-19/100000');
  assert.deepEqual(part.body, data.subarray(10, 20));
  assert.equal((await req('GET', `/v2/team/app/blobs/${d}`, undefined, { Range: 'bytes=200000-' })).status, 416);
  // Not linked to another repository: unknown there.
  const other = await req('GET', `/v2/team/other/blobs/${d}`);
  assert.equal(other.status, 404);
  assert.equal(other.json.errors[0].code, 'BLOB_UNKNOWN');

  // Chunked: POST, PATCH, PATCH out of order -> 416, status, PUT.
  const chunked = randomBytes(70_000);
  const start = await req('POST', '/v2/team/app/blobs/uploads/');
  assert.equal(start.status, 202);
  const loc = start.headers.get('location')!;
  assert.match(loc, /^\/v2\/team\/app\/blobs\/uploads\/[0-9a-f-]{36}$/);
  const p1 = await req('PATCH', loc, chunked.subarray(0, 30_000), { 'Content-Range': '0-29999', 'Content-Type': 'application/octet-stream' });
  assert.equal(p1.status, 202);
  assert.equal(p1.headers.get('range'), '0-29999');
  const wrong = await req('PATCH', loc, chunked.subarray(40_000), { 'Content-Range': '40000-69999' });
  assert.equal(wrong.status, 416);
  const st = await req('GET', loc);
  assert.equal(st.status, 204);
  assert.equal(st.headers.get('range'), '0-29999');
  const p2 = await req('PATCH', loc, chunked.subarray(30_000), { 'Content-Range': '30000-69999' });
  assert.equal(p2.status, 202);
  const put = await req('PUT', `${loc}?digest=${sha(chunked)}`);
  assert.equal(put.status, 201);
  assert.equal(put.headers.get('docker-content-digest'), sha(chunked));
  assert.deepEqual((await req('GET', `/v2/team/app/blobs/${sha(chunked)}`)).body, chunked);
  assert.equal((await req('GET', loc)).status, 404, 'the upload is gone once committed');

  // Cancel, then a digest mismatch leaves nothing behind.
  const c = await req('POST', '/v2/team/app/blobs/uploads/');
  assert.equal((await req('DELETE', c.headers.get('location')!)).status, 204);
  assert.equal((await req('GET', c.headers.get('location')!)).json.errors[0].code, 'BLOB_UPLOAD_UNKNOWN');
  const bad = await req('POST', `/v2/team/app/blobs/uploads/?digest=${sha('something else')}`, Buffer.from('data'));
  assert.equal(bad.status, 400);
  assert.equal(bad.json.errors[0].code, 'DIGEST_INVALID');
  assert.equal(fs.readdirSync(path.join(reg.root, 'uploads')).length, 0);
  assert.ok(!fs.existsSync(path.join(reg.root, 'blobs/sha256', sha('data').slice(7))));
});

test('cross-repository mount, manifests byte-exact by tag and digest, index, delete', async () => {
  const layer = randomBytes(5000);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  await pushBlob('base/img', layer);
  await pushBlob('base/img', config);
  const mount = await req('POST', `/v2/team/mounted/blobs/uploads/?mount=${sha(layer)}&from=base/img`);
  assert.equal(mount.status, 201);
  assert.equal(mount.headers.get('location'), `/v2/team/mounted/blobs/${sha(layer)}`);
  // Mount from a repository not holding it: an ordinary upload starts.
  const fallback = await req('POST', `/v2/team/mounted/blobs/uploads/?mount=${sha(layer)}&from=nowhere/x`);
  assert.equal(fallback.status, 202);
  assert.equal((await req('DELETE', fallback.headers.get('location')!)).status, 204);
  await req('POST', `/v2/team/mounted/blobs/uploads/?mount=${sha(config)}&from=base/img`);

  const m = imageManifest(config, [layer]);
  const missing = await req('PUT', '/v2/team/other/manifests/v1', m, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
  assert.equal(missing.status, 400);
  assert.equal(missing.json.errors[0].code, 'MANIFEST_BLOB_UNKNOWN');
  const put = await req('PUT', '/v2/team/mounted/manifests/v1', m, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
  assert.equal(put.status, 201, put.body.toString());
  assert.equal(put.headers.get('docker-content-digest'), sha(m));
  const byTag = await req('GET', '/v2/team/mounted/manifests/v1');
  assert.deepEqual(byTag.body, m, 'stored byte for byte');
  assert.equal(byTag.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
  assert.deepEqual((await req('GET', `/v2/team/mounted/manifests/${sha(m)}`)).body, m);
  assert.equal((await req('PUT', `/v2/team/mounted/manifests/${sha('x')}`, m, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' })).json.errors[0].code, 'DIGEST_INVALID');
  const unsupported = await req('PUT', '/v2/team/mounted/manifests/v9', Buffer.from('{"schemaVersion":1,"name":"x"}'), { 'Content-Type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' });
  assert.equal(unsupported.json.errors[0].code, 'MANIFEST_INVALID');
  const unknown = await req('GET', '/v2/team/mounted/manifests/nope');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.json.errors[0].message, 'manifest unknown');

  // An index referencing a manifest the repository does not have is refused; with it, stored as is.
  const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [
    { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(m), size: m.length, platform: { architecture: 'amd64', os: 'linux' } }] }));
  assert.equal((await req('PUT', '/v2/base/img/manifests/multi', idx, { 'Content-Type': 'application/vnd.oci.image.index.v1+json' })).json.errors[0].code, 'MANIFEST_BLOB_UNKNOWN');
  assert.equal((await req('PUT', '/v2/team/mounted/manifests/multi', idx, { 'Content-Type': 'application/vnd.oci.image.index.v1+json' })).status, 201);
  assert.deepEqual((await req('GET', '/v2/team/mounted/manifests/multi')).body, idx);

  // DELETE by digest removes the manifest and its tags.
  assert.equal((await req('DELETE', `/v2/team/mounted/manifests/${sha(idx)}`)).status, 202);
  assert.equal((await req('GET', '/v2/team/mounted/manifests/multi')).status, 404);
  assert.equal((await req('GET', `/v2/team/mounted/manifests/${sha(idx)}`)).status, 404, 'not served from the cache of manifest bytes');
  assert.equal((await req('DELETE', `/v2/team/mounted/blobs/${sha(layer)}`)).status, 202);
  assert.equal((await req('HEAD', `/v2/team/mounted/blobs/${sha(layer)}`)).status, 404);
  assert.equal((await req('HEAD', `/v2/base/img/blobs/${sha(layer)}`)).status, 200, 'other repositories keep it');
});

test('tags sorted as Go sorts and paginated with Link; catalog; v1 search; NAME_INVALID', async () => {
  const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  await pushBlob('pg/repo', config);
  const m = imageManifest(config, []);
  for (const t of ['b', 'a', 'B', '10', '9', 'a_1']) {
    assert.equal((await req('PUT', `/v2/pg/repo/manifests/${t}`, m, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' })).status, 201);
  }
  assert.deepEqual((await req('GET', '/v2/pg/repo/tags/list')).json, { name: 'pg/repo', tags: ['10', '9', 'B', 'a', 'a_1', 'b'] });
  const p1 = await req('GET', '/v2/pg/repo/tags/list?n=4');
  assert.deepEqual(p1.json.tags, ['10', '9', 'B', 'a']);
  assert.equal(p1.headers.get('link'), '</v2/pg/repo/tags/list?n=4&last=a>; rel="next"');
  const p2 = await req('GET', '/v2/pg/repo/tags/list?n=4&last=a');
  assert.deepEqual(p2.json.tags, ['a_1', 'b']);
  assert.equal(p2.headers.get('link'), null);
  assert.equal((await req('GET', '/v2/pg/nothing/tags/list')).json.errors[0].code, 'NAME_UNKNOWN');

  const cat = await req('GET', '/v2/_catalog?n=1');
  assert.equal(cat.json.repositories.length, 1);
  assert.match(cat.headers.get('link')!, /^<\/v2\/_catalog\?n=1&last=[^>]+>; rel="next"$/);
  const all = (await req('GET', '/v2/_catalog')).json.repositories;
  assert.ok(all.includes('pg/repo') && all.includes('team/mounted'));
  assert.deepEqual([...all].sort(), all);

  const search = await req('GET', '/v1/search?q=pg&n=25');
  assert.equal(search.json.num_results, 1);
  assert.equal(search.json.results[0].name, 'pg/repo');

  for (const bad of ['/v2/Upper/tags/list', '/v2/a..b/blobs/uploads/', '/v2/-x/manifests/latest']) {
    const r = await req(bad.includes('uploads') ? 'POST' : 'GET', bad);
    assert.equal(r.status, 400, bad);
    assert.equal(r.json.errors[0].code, 'NAME_INVALID');
  }
});

test('concurrent pushes of one blob: both succeed, one blob, no upload left', async () => {
  const data = randomBytes(3 << 20);
  const d = sha(data);
  const pushOne = async (repo: string) => {
    const s = await req('POST', `/v2/${repo}/blobs/uploads/`);
    const loc = s.headers.get('location')!;
    for (let off = 0; off < data.length; off += 1 << 20) {
      const end = Math.min(off + (1 << 20), data.length);
      assert.equal((await req('PATCH', loc, data.subarray(off, end), { 'Content-Range': `${off}-${end - 1}` })).status, 202);
    }
    return req('PUT', `${loc}?digest=${d}`);
  };
  const results = await Promise.all([pushOne('cc/one'), pushOne('cc/one'), pushOne('cc/two'), pushOne('cc/two')]);
  for (const r of results) assert.equal(r.status, 201);
  assert.deepEqual((await req('GET', `/v2/cc/two/blobs/${d}`)).body, data);
  assert.equal(fs.readdirSync(path.join(reg.root, 'uploads')).length, 0);
});

test('kill -9 during an upload: completed blobs served, the partial one not', async () => {
  const own = await startRegistry('berth');
  let restarted: TestRegistry | undefined;
  try {
    const b = `http://${own.addr}`;
    const done = randomBytes(200_000);
    assert.equal((await fetch(`${b}/v2/k/r/blobs/uploads/?digest=${sha(done)}`, { method: 'POST', body: done })).status, 201);
    const s = await fetch(`${b}/v2/k/r/blobs/uploads/`, { method: 'POST' });
    const loc = s.headers.get('location')!;
    const partial = randomBytes(4 << 20);
    // Send half the body, then kill the server while the request is open.
    const sent = new Promise<void>((resolve) => {
      const rq = http.request(`${b}${loc}`, { method: 'PATCH', headers: { 'Content-Length': String(partial.length) } });
      rq.on('error', () => undefined);
      rq.write(partial.subarray(0, 2 << 20), () => resolve());
    });
    await sent;
    // The server has the chunk's start once the upload file grows.
    const uuid = loc.split('/').pop()!;
    const data = path.join(own.root, 'uploads', uuid, 'data');
    for (let i = 0; i < 200 && fs.statSync(data).size === 0; i++) await new Promise((r) => setTimeout(r, 25));
    await own.kill9();
    restarted = await startRegistry('berth', { root: own.root });
    const r2 = `http://${restarted.addr}`;
    const got = await fetch(`${r2}/v2/k/r/blobs/${sha(done)}`);
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), done);
    assert.equal((await fetch(`${r2}/v2/k/r/blobs/${sha(partial)}`, { method: 'HEAD' })).status, 404);
    const blobs = fs.readdirSync(path.join(own.root, 'blobs/sha256'));
    assert.deepEqual(blobs, [sha(done).slice(7)], 'only the completed blob is in the store');
    // The cut-short upload can be resumed from where the server has it, then committed.
    const status = await fetch(`${r2}${loc}`);
    assert.equal(status.status, 204);
    const have = Number(status.headers.get('range')!.split('-')[1]) + 1;
    const put = await fetch(`${r2}${loc}?digest=${sha(partial)}`, { method: 'PUT', body: partial.subarray(have), headers: { 'Content-Range': `${have}-${partial.length - 1}` } });
    assert.equal(put.status, 201);
    // gc keeps nothing unreferenced: both blobs are unreferenced by a manifest here.
    await restarted.kill9();
    const dry = ok(await run(process.execPath, [BERTH_BIN, 'registry', 'gc', '--root', own.root, '--dry-run']));
    assert.match(dry.stdout, /0 blobs marked, 2 blobs eligible for deletion/);
    assert.equal(fs.readdirSync(path.join(own.root, 'blobs/sha256')).length, 2);
    ok(await run(process.execPath, [BERTH_BIN, 'registry', 'gc', '--root', own.root]));
    assert.equal(fs.readdirSync(path.join(own.root, 'blobs/sha256')).length, 0);
  } finally {
    await restarted?.stop();
    await own.stop();
  }
});

test('htpasswd basic auth, token auth and TLS', async () => {
  const basic = await startRegistry('berth', { users: { me: 'secret' } });
  const token = await startRegistry('berth', { users: { me: 'secret' }, token: true });
  const tls = await startRegistry('berth', { tls: true });
  try {
    const u = `http://${basic.addr}/v2/`;
    const anon = await fetch(u);
    assert.equal(anon.status, 401);
    assert.equal(anon.headers.get('www-authenticate'), 'Basic realm="Registry Realm"');
    assert.equal(((await anon.json()) as any).errors[0].code, 'UNAUTHORIZED');
    const auth = (p: string) => 'Basic ' + Buffer.from(`me:${p}`).toString('base64');
    assert.equal((await fetch(u, { headers: { Authorization: auth('wrong') } })).status, 401);
    assert.equal((await fetch(u, { headers: { Authorization: auth('secret') } })).status, 200);

    const t = `http://${token.addr}`;
    const ch = await fetch(`${t}/v2/team/app/tags/list`);
    assert.equal(ch.status, 401);
    assert.equal(ch.headers.get('www-authenticate'), `Bearer realm="${t}/token",service="test-registry",scope="repository:team/app:pull"`);
    assert.equal((await fetch(`${t}/token?service=test-registry&scope=repository:team/app:pull`)).status, 401);
    const tok: any = await (await fetch(`${t}/token?service=test-registry&scope=repository:team/app:pull`, { headers: { Authorization: auth('secret') } })).json();
    const bearer = { Authorization: `Bearer ${tok.token}` };
    assert.equal((await fetch(`${t}/v2/team/app/tags/list`, { headers: bearer })).status, 404, 'authorized; the repository does not exist');
    const push = await fetch(`${t}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: bearer });
    assert.equal(push.status, 403, 'a pull token does not allow pushing');
    assert.match(push.headers.get('www-authenticate')!, /error="insufficient_scope"/);

    const r = await run('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', `https://${tls.addr}/v2/`]);
    assert.equal(r.stdout, '200');
  } finally {
    await Promise.all([basic.stop(), token.stop(), tls.stop()]);
  }
});

/** One request on its own connection (closed after), body and all: what the blob tests compare byte for byte. */
function rawRequest(url: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const rq = mod.request(u, { method: opts.method ?? 'GET', headers: { Connection: 'close', ...opts.headers }, agent: false, rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    rq.on('error', reject);
    rq.end();
  });
}

/** Neither gone nor a zombie. */
function isRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

const fdCount = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;

/** The server's descriptor count once it has not changed for 300 ms (connections close asynchronously), or after 5 s. */
async function stableFdCount(pid: number): Promise<number> {
  let n = fdCount(pid);
  for (let same = 0, i = 0; same < 6 && i < 100; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const m = fdCount(pid);
    same = m === n ? same + 1 : 0;
    n = m;
  }
  return n;
}

/** Until the server holds `want` descriptors (closing is asynchronous), or 5 s; returns the last count. */
async function settleFds(pid: number, want: number): Promise<number> {
  let n = fdCount(pid);
  for (let i = 0; i < 100 && n !== want; i++) { await new Promise((r) => setTimeout(r, 50)); n = fdCount(pid); }
  return n;
}

/** A GET of `path` that reads `keep` bytes of the response, then leaves: 'end' (FIN), 'reset' (RST) or 'stall' (stops reading, socket full). */
function leaveMidBody(addr: string, path: string, keep: number, how: 'end' | 'reset' | 'stall'): Promise<net.Socket> {
  const [host, port] = addr.split(':');
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), host, () => s.write(`GET ${path} HTTP/1.1\r\nHost: ${addr}\r\n\r\n`));
    let got = 0;
    s.on('error', () => undefined);
    s.on('data', (c: Buffer) => {
      got += c.length;
      if (got < keep) return;
      s.removeAllListeners('data');
      if (how === 'stall') { s.pause(); setTimeout(() => resolve(s), 300); return; }
      if (how === 'reset') s.resetAndDestroy(); else s.destroy();
      resolve(s);
    });
    s.once('close', () => { if (got < keep) reject(new Error(`closed after ${got} bytes`)); });
  });
}

test('blob bodies by sendfile: whole and ranged bytes equal the file, HEAD as GET without a body, clients leaving mid-body', async () => {
  const own = await startRegistry('berth');
  try {
    const b = `http://${own.addr}`;
    const data = randomBytes(24 << 20); // larger than the socket buffers: a transfer is still running when a client leaves
    const d = sha(data);
    assert.equal((await fetch(`${b}/v2/sf/blob/blobs/uploads/?digest=${d}`, { method: 'POST', body: data })).status, 201);
    const url = `${b}/v2/sf/blob/blobs/${d}`;

    const whole = await rawRequest(url);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers['content-length'], String(data.length));
    assert.equal(sha(whole.body), d);
    for (const [range, from, to] of [['bytes=1000-5000000', 1000, 5000001], ['bytes=-100', data.length - 100, data.length], [`bytes=${data.length - 7}-`, data.length - 7, data.length], ['bytes=0-0', 0, 1]] as const) {
      const part = await rawRequest(url, { headers: { Range: range } });
      assert.equal(part.status, 206, range);
      assert.equal(part.headers['content-range'], `bytes ${from}-${to - 1}/${data.length}`);
      assert.equal(sha(part.body), sha(data.subarray(from, to)), range);
    }
    const unsatisfiable = await rawRequest(url, { headers: { Range: `bytes=${data.length}-` } });
    assert.equal(unsatisfiable.status, 416);
    assert.equal(unsatisfiable.headers['content-range'], `bytes */${data.length}`);
    const head = await rawRequest(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    for (const h of ['content-length', 'content-type', 'docker-content-digest', 'etag', 'accept-ranges']) assert.equal(head.headers[h], whole.headers[h], h);

    // Two bodies on one kept-alive connection: the second request is answered after the first body ends.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const one = (range?: string) => new Promise<{ body: Buffer; reused: boolean }>((resolve, reject) => {
        const rq = http.get(url, { agent, headers: range ? { Range: range } : {} }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ body: Buffer.concat(chunks), reused: rq.reusedSocket }));
        });
        rq.on('error', reject);
      });
      const first = await one();
      const second = await one('bytes=10-19');
      assert.equal(sha(first.body), d);
      assert.deepEqual(second.body, data.subarray(10, 20));
      assert.ok(second.reused, 'the second request went over the first one\'s connection');
    } finally {
      agent.destroy();
    }

    // Clients that leave mid-body: the server serves on and keeps no descriptor of theirs.
    const before = await stableFdCount(own.pid);
    for (const how of ['end', 'reset', 'stall'] as const) {
      const s = await leaveMidBody(own.addr, `/v2/sf/blob/blobs/${d}`, 256 << 10, how);
      if (how === 'stall') {
        // The server waits for room in the socket; the client goes away meanwhile.
        assert.equal((await rawRequest(`${b}/v2/`)).status, 200, 'answers while a transfer waits');
        s.destroy();
      }
      assert.equal((await rawRequest(`${b}/v2/`)).status, 200, `answers after a client left (${how})`);
    }
    assert.equal(sha((await rawRequest(url)).body), d, 'whole bodies after clients left');
    assert.equal(await settleFds(own.pid, before), before, 'no descriptor left behind');

    // A stop with a transfer waiting on a stalled client ends the server promptly.
    const stalled = await leaveMidBody(own.addr, `/v2/sf/blob/blobs/${d}`, 256 << 10, 'stall');
    const t0 = Date.now();
    process.kill(own.pid, 'SIGTERM');
    while (isRunning(own.pid) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    assert.ok(!isRunning(own.pid), 'SIGTERM ends the server while a transfer waits');
    stalled.destroy();
  } finally {
    await own.stop();
  }
});

test('TLS: blob bodies stream through JS (no sendfile), whole and ranged', async () => {
  const tls = await startRegistry('berth', { tls: true });
  try {
    const b = `https://${tls.addr}`;
    const data = randomBytes(3 << 20);
    const d = sha(data);
    const put = await new Promise<number>((resolve, reject) => {
      const rq = https.request(`${b}/v2/t/blob/blobs/uploads/?digest=${d}`, { method: 'POST', rejectUnauthorized: false, headers: { 'Content-Length': String(data.length) } }, (res) => { res.resume(); resolve(res.statusCode!); });
      rq.on('error', reject);
      rq.end(data);
    });
    assert.equal(put, 201);
    assert.equal(sha((await rawRequest(`${b}/v2/t/blob/blobs/${d}`)).body), d);
    const part = await rawRequest(`${b}/v2/t/blob/blobs/${d}`, { headers: { Range: 'bytes=100-200' } });
    assert.equal(part.status, 206);
    assert.deepEqual(part.body, data.subarray(100, 201));
  } finally {
    await tls.stop();
  }
});
