/**
 * `berth build` as a user types it: every instruction, the cache (hit with the
 * same image ID, bust at a changed COPY source, resume after a fixed failure,
 * --no-cache), multi-stage with --target and COPY --from, .dockerignore,
 * the dd/rm layer-size case, squash, heredocs and cache mounts, bad input.
 * RUN steps are real containers; the tests look at the built images by
 * running them and by their layers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxDaemonForFile, ok } from '../helpers/daemon';

const d = busyboxDaemonForFile();
const berth = (...args: string[]) => d.cli(args, { timeoutMs: 120_000 });
let ctxCount = 0;

/** A fresh context directory with the given files (path -> content). */
function context(files: Record<string, string>): string {
  const dir = path.join(d.base, `ctx${++ctxCount}`);
  for (const [p, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    fs.writeFileSync(path.join(dir, p), content);
  }
  return dir;
}

const inspect = async (ref: string) => JSON.parse(ok(await berth('image', 'inspect', ref)).stdout)[0];
const runOut = async (...args: string[]) => ok(await berth('run', '--rm', ...args)).stdout;

test('every instruction: the image config, files and history are what Docker would make', async () => {
  const dir = context({
    'Dockerfile': `# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM \${BASE} AS base
LABEL org.example.title="demo app" version=1
MAINTAINER someone@example.com
ENV APP_HOME=/app \\
    GREETING="hello world"
ARG BUILD_NO=7
WORKDIR $APP_HOME
COPY --chown=1000:1000 --chmod=0640 hello.txt .
COPY dir/ sub/
ADD files.tar /opt/
RUN echo "build \${BUILD_NO} $GREETING" > built.txt && id -u > uid.txt
USER 1000
RUN id -u > /tmp/uid-as-user
USER root
SHELL ["/bin/sh", "-ec"]
RUN test "$APP_HOME" = /app
EXPOSE 8080 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=2s --retries=2 CMD cat /app/built.txt
ONBUILD RUN echo triggered > /onbuild.txt
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/built.txt"]
`,
    'hello.txt': 'hello\n',
    'dir/a.txt': 'a\n',
    'dir/deep/b.txt': 'b\n',
  });
  // A tar for ADD to unpack.
  const tarDir = context({ 'x/inner.txt': 'inside the tar\n' });
  ok(await d.cli(['run', '--rm', 'busybox', 'true']));
  const tarPath = path.join(dir, 'files.tar');
  const { spawnSync } = await import('node:child_process');
  assert.equal(spawnSync('tar', ['-cf', tarPath, '-C', tarDir, 'x']).status, 0);

  const r = ok(await berth('build', '-t', 'demo:1', '--build-arg', 'BUILD_NO=42', dir));
  assert.match(r.stdout, /^Sending build context to Berth daemon/m);
  assert.match(r.stdout, /Step 1\/23 : ARG BASE=busybox\nStep 2\/23 : FROM \$\{BASE\} AS base\n ---> [0-9a-f]{12}/);
  assert.match(r.stdout, / ---> Running in [0-9a-f]{12}\n/);
  assert.match(r.stdout, /Successfully built [0-9a-f]{12}\nSuccessfully tagged demo:1\n/);

  const img = await inspect('demo:1');
  const c = img.Config;
  assert.deepEqual(c.Labels, { 'org.example.title': 'demo app', version: '1' });
  assert.equal(img.Author, 'someone@example.com');
  assert.ok(c.Env.includes('APP_HOME=/app'));
  assert.ok(c.Env.includes('GREETING=hello world'));
  assert.ok(!c.Env.some((e: string) => e.startsWith('BUILD_NO=')), 'ARG values are not in the image env');
  assert.equal(c.WorkingDir, '/app');
  assert.equal(c.User, 'root');
  assert.deepEqual(c.Shell, ['/bin/sh', '-ec']);
  assert.deepEqual(c.ExposedPorts, { '8080/tcp': {}, '53/udp': {} });
  assert.deepEqual(c.Volumes, { '/data': {} });
  assert.equal(c.StopSignal, 'SIGUSR1');
  assert.deepEqual(c.Healthcheck, { Test: ['CMD-SHELL', 'cat /app/built.txt'], Interval: 5e9, Timeout: 2e9, Retries: 2 });
  assert.deepEqual(c.OnBuild, ['RUN echo triggered > /onbuild.txt']);
  assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c']);
  assert.deepEqual(c.Cmd, ['cat /app/built.txt']);

  assert.equal(await runOut('demo:1'), 'build 42 hello world\n', 'CMD and ENTRYPOINT combine; ARG and ENV reach RUN');
  const ls = await runOut('--entrypoint', 'sh', 'demo:1', '-c',
    'stat -c "%n %u:%g %a" hello.txt; cat sub/a.txt sub/deep/b.txt /opt/x/inner.txt /tmp/uid-as-user uid.txt');
  assert.equal(ls, 'hello.txt 1000:1000 640\na\nb\ninside the tar\n1000\n0\n');

  const hist = JSON.parse(ok(await berth('history', '--no-trunc', '--format', '{{json .}}', 'demo:1')).stdout.trim().split('\n')[0]);
  assert.match(hist.CreatedBy, /CMD \["cat \/app\/built.txt"\]/);

  // ONBUILD fires in a child build
  const child = context({ 'Dockerfile': 'FROM demo:1\nRUN test -f /onbuild.txt\n' });
  const cr = ok(await berth('build', '-t', 'demo-child', child));
  assert.match(cr.stdout, /# Executing 1 build trigger/);
  assert.equal((await inspect('demo-child')).Config.OnBuild, null);
});
