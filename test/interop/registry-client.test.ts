/**
 * berthd's registry client against real registries on 127.0.0.1: Berth's server (token auth)
 * and distribution 2.8 (htpasswd basic auth), driven by the berth CLI and the docker CLI, with a
 * real dockerd and skopeo on the other side: digests and image IDs agree both ways,
 * "Layer already exists" and "Mounted from" on repeated pushes, RepoDigests recorded. With auth off,
 * layers of random data and text go both ways (berthd's push stores the one and deflates the other;
 * its pull streams dockerd's gzip) and the files read back the same in both engines.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startDaemon, bootstrapBusybox, ok, run, type Daemon } from '../helpers/daemon';
import { startDockerd, type Dockerd } from '../helpers/dockerd';
import { startRegistry, type RegistryKind, type TestRegistry } from '../helpers/registry';

let d: Daemon;
let dk: Dockerd;
let work = '';
let busyboxId = '';
before(async () => {
  d = await startDaemon();
  await bootstrapBusybox(d);
  dk = await startDockerd();
  work = fs.mkdtempSync(path.join(d.base, 'rc-'));
  busyboxId = JSON.parse(ok(await d.cli(['image', 'inspect', 'busybox'])).stdout)[0].Id;
});
after(async () => {
  await dk?.stop();
  await d?.stop();
});

const cfgDir = (name: string) => { const p = path.join(work, name); fs.mkdirSync(p, { recursive: true }); return p; };

for (const [kind, token] of [['berth', true], ['distribution', false]] as Array<[RegistryKind, boolean]>) {
  test(`berth CLI, docker CLI -> berthd, dockerd and skopeo through ${kind} (${token ? 'token' : 'basic'} auth)`, async () => {
    const reg: TestRegistry = await startRegistry(kind, { users: { me: 'secret' }, token });
    const env = { DOCKER_CONFIG: cfgDir(`berth-${kind}`) };
    const dockerEnv = { DOCKER_CONFIG: cfgDir(`docker-${kind}`) };
    const berth = (...a: string[]) => d.cli(a, { env });
    try {
      const ref = `${reg.addr}/team/bb:1`;
      ok(await berth('tag', 'busybox', ref));
      const denied = await berth('push', ref);
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, /unauthorized|authentication required/);

      const badLogin = await d.cli(['login', reg.addr, '-u', 'me', '--password-stdin'], { env, input: 'nope\n' });
      assert.equal(badLogin.code, 1);
      assert.match(badLogin.stderr, /Error response from daemon: .*(401 Unauthorized|unauthorized)/);
      const login = ok(await d.cli(['login', reg.addr, '-u', 'me', '--password-stdin'], { env, input: 'secret\n' }));
      assert.match(login.stdout, /Login Succeeded/);
      assert.ok(JSON.parse(fs.readFileSync(path.join(env.DOCKER_CONFIG, 'config.json'), 'utf8')).auths[reg.addr].auth);

      const push = ok(await berth('push', ref));
      assert.match(push.stdout, /The push refers to repository \[.*team\/bb\]/);
      assert.match(push.stdout, /Pushed/);
      const digest = /1: digest: (sha256:[a-f0-9]{64}) size: \d+/.exec(push.stdout)![1];
      const again = ok(await berth('push', ref));
      assert.match(again.stdout, /Layer already exists/);
      assert.match(again.stdout, new RegExp(`digest: ${digest}`), 'the same manifest again');
      const mounted = ok(await berth('push', ...[]).then(() => berth('tag', 'busybox', `${reg.addr}/other/bb:1`)).then(() => berth('push', `${reg.addr}/other/bb:1`)));
      assert.match(mounted.stdout, /Mounted from team\/bb/);
      const inspected = JSON.parse(ok(await berth('image', 'inspect', 'busybox')).stdout)[0];
      assert.ok(inspected.RepoDigests.includes(`${reg.addr}/team/bb@${digest}`), JSON.stringify(inspected.RepoDigests));

      // dockerd pulls what berthd pushed: same image ID, same digest.
      ok(await dk.docker(['login', reg.addr, '-u', 'me', '--password-stdin'], { input: 'secret\n', env: dockerEnv }));
      const dpull = ok(await dk.docker(['pull', ref], { env: dockerEnv }));
      assert.match(dpull.stdout, new RegExp(`Digest: ${digest}`));
      assert.equal(JSON.parse(ok(await dk.docker(['image', 'inspect', ref])).stdout)[0].Id, busyboxId);

      // dockerd pushes (its own compression), berthd pulls through the docker CLI.
      const dref = `${reg.addr}/team/fromdocker:2`;
      ok(await dk.docker(['run', '--name', 'mk', '--network', 'none', ref, 'sh', '-c', 'echo from-dockerd > /hello']));
      ok(await dk.docker(['commit', '-c', 'CMD ["cat", "/hello"]', 'mk', dref]));
      ok(await dk.docker(['rm', 'mk']));
      const dpush = ok(await dk.docker(['push', dref], { env: dockerEnv }));
      const ddigest = /digest: (sha256:[a-f0-9]{64})/.exec(dpush.stdout)![1];
      const did = JSON.parse(ok(await dk.docker(['image', 'inspect', dref])).stdout)[0].Id;
      ok(await d.docker(['login', reg.addr, '-u', 'me', '--password-stdin'], { input: 'secret\n', env: dockerEnv }));
      const bpull = ok(await d.docker(['pull', dref], { env: dockerEnv }));
      assert.match(bpull.stdout, /Already exists/, 'the busybox layer is not fetched again');
      assert.match(bpull.stdout, /Pull complete/);
      assert.match(bpull.stdout, new RegExp(`Digest: ${ddigest}`));
      assert.match(bpull.stdout, new RegExp(`Status: Downloaded newer image for ${dref.replace(/\./g, '\\.')}`));
      const bimg = JSON.parse(ok(await d.docker(['image', 'inspect', dref])).stdout)[0];
      assert.equal(bimg.Id, did);
      assert.deepEqual(bimg.RepoDigests, [`${reg.addr}/team/fromdocker@${ddigest}`]);
      assert.equal(ok(await berth('run', '--rm', dref)).stdout, 'from-dockerd\n');
      // run pulls what is missing (--pull missing, the default).
      ok(await berth('rmi', dref));
      const runPulled = ok(await berth('run', '--rm', dref));
      assert.equal(runPulled.stdout, 'from-dockerd\n');
      assert.match(runPulled.stderr, new RegExp(`Unable to find image '${dref.replace(/\./g, '\\.')}' locally`));
      const up = ok(await berth('pull', dref));
      assert.match(up.stdout, /Status: Image is up to date/);
      // By digest, and images --digests shows it.
      ok(await berth('rmi', dref));
      ok(await berth('pull', `${reg.addr}/team/fromdocker@${ddigest}`));
      const digests = ok(await berth('images', '--digests', '--format', '{{.Repository}} {{.Digest}}')).stdout;
      assert.match(digests, new RegExp(`${reg.addr}/team/fromdocker ${ddigest}`));

      // skopeo sees the manifest berthd pushed, byte for byte the digest berth printed.
      const raw = ok(await run('skopeo', ['inspect', '--tls-verify=false', '--creds', 'me:secret', `docker://${ref}`])).stdout;
      assert.equal(JSON.parse(raw).Digest, digest);

      const missing = await berth('pull', `${reg.addr}/team/bb:nope`);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, new RegExp(`manifest for ${reg.addr.replace(/\./g, '\\.')}/team/bb:nope not found: manifest unknown`));
      ok(await berth('logout', reg.addr));
      assert.equal(JSON.parse(fs.readFileSync(path.join(env.DOCKER_CONFIG, 'config.json'), 'utf8')).auths[reg.addr], undefined);
      ok(await dk.docker(['rmi', ref, dref]));
      await d.cli(['rmi', ref, `${reg.addr}/other/bb:1`]);
    } finally {
      await reg.stop();
    }
  });
}

for (const kind of ['berth', 'distribution'] as RegistryKind[]) {
  test(`auth off: docker CLI -> berthd and -> dockerd through ${kind}; random and text layers both ways, same digests, IDs and files`, async () => {
    const reg = await startRegistry(kind);
    try {
      // berthd makes and pushes a layer of random data and text (the push stores the one, deflates the other).
      const bref = `${reg.addr}/open/fromberth:1`;
      ok(await d.docker(['run', '--name', `mk-${kind}`, '--network', 'none', 'busybox', 'sh', '-c', 'head -c 3000000 /dev/urandom > /r; seq 1 200000 > /t']));
      ok(await d.docker(['commit', `mk-${kind}`, bref]));
      ok(await d.docker(['rm', `mk-${kind}`]));
      const bsum = ok(await d.docker(['run', '--rm', '--network', 'none', bref, 'sha256sum', '/r', '/t'])).stdout;
      const bpush = ok(await d.docker(['push', bref]));
      const bdigest = /digest: (sha256:[a-f0-9]{64})/.exec(bpush.stdout)![1];
      const dpull = ok(await dk.docker(['pull', bref]));
      assert.match(dpull.stdout, new RegExp(`Digest: ${bdigest}`));
      assert.equal(JSON.parse(ok(await dk.docker(['image', 'inspect', bref])).stdout)[0].Id, JSON.parse(ok(await d.docker(['image', 'inspect', bref])).stdout)[0].Id);
      assert.equal(ok(await dk.docker(['run', '--rm', '--network', 'none', bref, 'sha256sum', '/r', '/t'])).stdout, bsum);

      // dockerd makes and pushes one (its own gzip); berthd pulls it streamed.
      const dref = `${reg.addr}/open/fromdocker:1`;
      ok(await dk.docker(['run', '--name', `mk-${kind}`, '--network', 'none', bref, 'sh', '-c', 'head -c 2000000 /dev/urandom > /r2']));
      ok(await dk.docker(['commit', `mk-${kind}`, dref]));
      ok(await dk.docker(['rm', `mk-${kind}`]));
      const dsum = ok(await dk.docker(['run', '--rm', '--network', 'none', dref, 'sha256sum', '/r', '/r2'])).stdout;
      const dpush = ok(await dk.docker(['push', dref]));
      const ddigest = /digest: (sha256:[a-f0-9]{64})/.exec(dpush.stdout)![1];
      const bpull = ok(await d.docker(['pull', dref]));
      assert.match(bpull.stdout, /Already exists/);
      assert.match(bpull.stdout, new RegExp(`Digest: ${ddigest}`));
      assert.equal(JSON.parse(ok(await d.docker(['image', 'inspect', dref])).stdout)[0].Id, JSON.parse(ok(await dk.docker(['image', 'inspect', dref])).stdout)[0].Id);
      assert.equal(ok(await d.docker(['run', '--rm', '--network', 'none', dref, 'sha256sum', '/r', '/r2'])).stdout, dsum);
      ok(await dk.docker(['rmi', bref, dref]));
      ok(await d.docker(['rmi', bref, dref]));
    } finally {
      await reg.stop();
    }
  });
}

test('unreachable registry and invalid names give clear errors', async () => {
  const gone = await d.cli(['pull', '127.0.0.1:1/team/x:1']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /Error response from daemon: Get "http:\/\/127\.0\.0\.1:1\/v2\/": dial tcp 127\.0\.0\.1:1: connect: connection refused/);
  const pushGone = await d.cli(['push', '127.0.0.1:1/team/x:1']);
  assert.equal(pushGone.code, 1);
  assert.match(pushGone.stderr, /An image does not exist locally with the tag: 127\.0\.0\.1:1\/team\/x:1/);
  ok(await d.cli(['tag', 'busybox', '127.0.0.1:1/team/x:1']));
  const pushRefused = await d.cli(['push', '127.0.0.1:1/team/x:1']);
  assert.equal(pushRefused.code, 1);
  assert.match(pushRefused.stderr, /connection refused/);
  ok(await d.cli(['rmi', '127.0.0.1:1/team/x:1']));
  const badName = await d.cli(['pull', '127.0.0.1:5000/Team/x']);
  assert.notEqual(badName.code, 0);
  assert.match(badName.stderr, /must be lowercase/);
});
