/**
 * A real dockerd (docker CLI) logs in, pushes and pulls through Berth's registry server verifying
 * the tokens of an outside token server (helpers/token-server.ts), and through distribution 2.8
 * configured alike: the same steps succeed and fail on both, with the same messages.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { ok } from '../helpers/daemon';
import { startDockerd, type Dockerd } from '../helpers/dockerd';
import { startRegistry, type RegistryKind } from '../helpers/registry';
import { busyboxRootfsTar } from '../helpers/rootfs';
import { startTokenServer, PASSWORDS, type TokenServer } from '../helpers/token-server';

let dk: Dockerd;
let ts: TokenServer;
let work = '';
before(async () => {
  work = fs.mkdtempSync('/tmp/bt-regtokd-');
  ts = await startTokenServer();
  dk = await startDockerd();
  ok(await dk.docker(['import', '-c', 'CMD ["sh"]', busyboxRootfsTar(work), 'local/bb:1']));
});
after(async () => {
  await dk?.stop();
  await ts?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

const failures: Record<string, Record<string, string>> = {};

for (const kind of ['berth', 'distribution'] as RegistryKind[]) {
  test(`docker CLI -> dockerd through ${kind} with tokens of an outside issuer`, async () => {
    const reg = await startRegistry(kind, { tokenServer: ts.registry });
    const seen: Record<string, string> = (failures[kind] = {});
    // The registry's address and the image's ID differ between runs; the rest of a message must not.
    const failed = (what: string, r: { code: number; stderr: string }) => {
      assert.notEqual(r.code, 0, what);
      seen[what] = r.stderr.replaceAll(reg.addr, 'REGISTRY').trim();
    };
    const login = (user: keyof typeof PASSWORDS) => dk.docker(['login', reg.addr, '-u', user, '--password-stdin'], { input: `${PASSWORDS[user]}\n` });
    try {
      const ref = `${reg.addr}/team/bb:1`;
      ok(await dk.docker(['tag', 'local/bb:1', ref]));
      failed('anonymous push', await dk.docker(['push', ref]));
      failed('wrong password', await dk.docker(['login', reg.addr, '-u', 'alice', '--password-stdin'], { input: 'nope\n' }));
      ok(await login('bob'));
      failed('pull-only user pushing', await dk.docker(['push', ref]));
      ok(await login('alice'));
      const push = ok(await dk.docker(['push', ref]));
      const digest = /digest: (sha256:[a-f0-9]{64})/.exec(push.stdout)![1];
      assert.match(ok(await dk.docker(['push', ref])).stdout, /Layer already exists/);
      const id = JSON.parse(ok(await dk.docker(['image', 'inspect', ref])).stdout)[0].Id;
      ok(await dk.docker(['rmi', ref]));
      ok(await login('bob'));
      const pull = ok(await dk.docker(['pull', ref]));
      assert.match(pull.stdout, new RegExp(`Digest: ${digest}`));
      assert.equal(JSON.parse(ok(await dk.docker(['image', 'inspect', ref])).stdout)[0].Id, id);
      failed('missing tag', await dk.docker(['pull', `${reg.addr}/team/bb:nope`]));
      ok(await dk.docker(['rmi', ref]));
      ok(await dk.docker(['logout', reg.addr]));
    } finally {
      await reg.stop();
    }
    if (failures.berth && failures.distribution) assert.deepEqual(failures.berth, failures.distribution, 'the same failures, the same messages');
  });
}
