/**
 * Berth's registry server against real clients: a real dockerd (docker CLI) pushes and pulls
 * through it, with and without auth, and skopeo copies OCI layouts (umoci-made layers) in and
 * out; distribution 2.8 is driven the same way, so both servers are held to the same results.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ok, run } from '../helpers/daemon';
import { startDockerd, type Dockerd } from '../helpers/dockerd';
import { startRegistry, type RegistryKind } from '../helpers/registry';
import { busyboxRootfsTar } from '../helpers/rootfs';

let dk: Dockerd;
let work = '';
before(async () => {
  work = fs.mkdtempSync('/tmp/bt-regi-');
  dk = await startDockerd();
  const tar = busyboxRootfsTar(work);
  ok(await dk.docker(['import', '-c', 'CMD ["sh"]', tar, 'local/bb:1']));
});
after(async () => {
  await dk?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

const inspect = async (ref: string) => JSON.parse(ok(await dk.docker(['image', 'inspect', ref])).stdout)[0];

for (const kind of ['berth', 'distribution'] as RegistryKind[]) {
  test(`docker CLI -> dockerd push/pull through ${kind} (auth on)`, async () => {
    const reg = await startRegistry(kind, { users: { me: 'secret' } });
    try {
      const ref = `${reg.addr}/team/bb:1`;
      ok(await dk.docker(['tag', 'local/bb:1', ref]));
      const denied = await dk.docker(['push', ref]);
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /no basic auth credentials|unauthorized|authentication required/);
      const bad = await dk.docker(['login', reg.addr, '-u', 'me', '--password-stdin'], { input: 'wrong\n' });
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /failed with status: 401 Unauthorized/);
      ok(await dk.docker(['login', reg.addr, '-u', 'me', '--password-stdin'], { input: 'secret\n' }));
      const push = ok(await dk.docker(['push', ref]));
      const digest = /digest: (sha256:[a-f0-9]{64})/.exec(push.stdout)![1];
      const again = ok(await dk.docker(['push', ref]));
      assert.match(again.stdout, /Layer already exists/);
      const id = (await inspect(ref)).Id;
      ok(await dk.docker(['rmi', ref, 'local/bb:1']));
      const pull = ok(await dk.docker(['pull', ref]));
      assert.match(pull.stdout, new RegExp(`Digest: ${digest}`));
      const img = await inspect(ref);
      assert.equal(img.Id, id);
      assert.deepEqual(img.RepoDigests, [`${reg.addr}/team/bb@${digest}`]);
      ok(await dk.docker(['pull', `${reg.addr}/team/bb@${digest}`]));
      const missing = await dk.docker(['pull', `${reg.addr}/team/bb:nope`]);
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /manifest unknown/);
      ok(await dk.docker(['tag', ref, 'local/bb:1']));
      ok(await dk.docker(['rmi', ref]));
      ok(await dk.docker(['logout', reg.addr]));
    } finally {
      await reg.stop();
    }
  });

  test(`skopeo copies an umoci-made OCI layout through ${kind}, byte for byte`, async () => {
    const reg = await startRegistry(kind);
    try {
      const dir = fs.mkdtempSync(path.join(work, 'oci-'));
      const layout = path.join(dir, 'layout');
      ok(await run('umoci', ['init', '--layout', layout]));
      ok(await run('umoci', ['new', '--image', `${layout}:t`]));
      const bundle = path.join(dir, 'bundle');
      ok(await run('umoci', ['unpack', '--rootless', '--image', `${layout}:t`, bundle]));
      fs.writeFileSync(path.join(bundle, 'rootfs', 'hello'), 'hello from umoci\n');
      ok(await run('umoci', ['repack', '--image', `${layout}:t`, bundle]));
      ok(await run('umoci', ['config', '--image', `${layout}:t`, '--config.cmd=/hello', '--os', 'linux', '--architecture', 'amd64']));
      ok(await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:t`, `docker://${reg.addr}/team/oci:t`]));
      const raw = ok(await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.addr}/team/oci:t`])).stdout;
      const local = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')).manifests[0].digest;
      const localBytes = fs.readFileSync(path.join(layout, 'blobs', 'sha256', local.slice(7)), 'utf8');
      assert.equal(raw, localBytes, 'the manifest comes back as pushed');
      const back = path.join(dir, 'back');
      ok(await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.addr}/team/oci:t`, `oci:${back}:t`]));
      const backDigest = JSON.parse(fs.readFileSync(path.join(back, 'index.json'), 'utf8')).manifests[0].digest;
      assert.equal(backDigest, local);
      const tags = JSON.parse(ok(await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${reg.addr}/team/oci`])).stdout);
      assert.deepEqual(tags.Tags, ['t']);
    } finally {
      await reg.stop();
    }
  });
}

test('docker search finds repositories of the berth registry (v1 search)', async () => {
  const reg = await startRegistry('berth');
  try {
    const ref = `${reg.addr}/team/findme:1`;
    ok(await dk.docker(['tag', 'local/bb:1', ref]));
    ok(await dk.docker(['push', ref]));
    const out = ok(await dk.docker(['search', `${reg.addr}/findme`])).stdout;
    assert.match(out, /team\/findme/);
    ok(await dk.docker(['rmi', ref]));
  } finally {
    await reg.stop();
  }
});
