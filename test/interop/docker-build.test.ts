/**
 * The real docker CLI's classic builder (DOCKER_BUILDKIT=0) against berthd:
 * the JSON stream it prints, tags, build args, the cache, a failing RUN's
 * exit code and message, and builder prune.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxDaemonForFile, ok } from '../helpers/daemon';

const d = busyboxDaemonForFile();
const docker = (...args: string[]) => d.docker(args, { env: { DOCKER_BUILDKIT: '0' }, timeoutMs: 120_000 });

test('DOCKER_BUILDKIT=0 docker build: classic output, tags, build args, cache hit, failing RUN', async () => {
  const dir = path.join(d.base, 'ctx');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'hello.txt'), 'hello from context\n');
  fs.writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox\nARG V=1\nRUN echo built $V > /built.txt\nCOPY hello.txt /hello.txt\nENV GREETING=hi\nCMD ["cat", "/hello.txt"]\n');
  const r = ok(await docker('build', '-t', 't1', '-t', 't1:extra', '--build-arg', 'V=9', dir));
  assert.match(r.stdout, /Sending build context to Docker daemon/);
  assert.match(r.stdout, /Step 1\/6 : FROM busybox\n ---> [0-9a-f]{12}\n/);
  assert.match(r.stdout, /Step 3\/6 : RUN echo built \$V > \/built.txt\n ---> Running in [0-9a-f]{12}\nRemoving intermediate container [0-9a-f]{12}\n ---> [0-9a-f]{12}\n/);
  assert.match(r.stdout, /Successfully built ([0-9a-f]{12})\nSuccessfully tagged t1:latest\nSuccessfully tagged t1:extra\n/);
  assert.equal(ok(await d.docker(['run', '--rm', 't1'])).stdout, 'hello from context\n');
  assert.equal(ok(await d.docker(['run', '--rm', 't1', 'cat', '/built.txt'])).stdout, 'built 9\n');

  const again = ok(await docker('build', '-q', '-t', 't2', '--build-arg', 'V=9', dir));
  const id = JSON.parse(ok(await d.docker(['image', 'inspect', 't1'])).stdout)[0].Id;
  assert.equal(again.stdout.trim(), id, 'a fully cached rebuild gives the same image');

  fs.writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox\nRUN echo building-output; echo to-stderr >&2\nRUN sh -c \'echo failing; exit 3\'\n');
  const f = await docker('build', '-t', 't3', dir);
  assert.equal(f.code, 3);
  assert.match(f.stdout, /building-output\n/);
  assert.match(f.stdout, /failing\n/);
  assert.match(f.stderr, /The command '\/bin\/sh -c sh -c 'echo failing; exit 3'' returned a non-zero code: 3/);
  assert.equal(ok(await d.docker(['ps', '-aq'])).stdout, '');

  const pruned = ok(await d.docker(['builder', 'prune', '-f']));
  assert.match(pruned.stdout, /Total reclaimed space/);
  const df = ok(await d.docker(['system', 'df'])).stdout;
  assert.match(df, /Build Cache\s+0\s/);
});
