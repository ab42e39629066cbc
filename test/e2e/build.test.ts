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
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { busyboxDaemonForFile, ok, startDaemon } from '../helpers/daemon';

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

test('cache: hit with the same image ID, bust at a changed COPY source (not its mtime), resume after a fixed failure, --no-cache', async () => {
  const dir = context({
    'Dockerfile': 'FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy.txt\nENV X=1\n',
    'a.txt': 'one\n',
  });
  const first = ok(await berth('build', '-t', 'cached:1', dir));
  assert.doesNotMatch(first.stdout, /Using cache/);
  const id1 = (await inspect('cached:1')).Id;
  // only the mtime changes: still a hit
  fs.utimesSync(path.join(dir, 'a.txt'), new Date(2001, 1, 1), new Date(2001, 1, 1));
  const second = ok(await berth('build', '-t', 'cached:2', dir));
  assert.equal((second.stdout.match(/ ---> Using cache/g) ?? []).length, 3);
  assert.equal((await inspect('cached:2')).Id, id1);

  fs.writeFileSync(path.join(dir, 'a.txt'), 'two\n');
  const third = ok(await berth('build', '-t', 'cached:3', dir));
  assert.equal((third.stdout.match(/Using cache/g) ?? []).length, 0, 'after the first miss, later steps miss');
  assert.equal(await runOut('cached:3', 'cat', '/copy.txt'), 'two\n');

  const noCache = ok(await berth('build', '--no-cache', '-t', 'cached:4', dir));
  assert.doesNotMatch(noCache.stdout, /Using cache/);
  assert.notEqual((await inspect('cached:4')).Id, (await inspect('cached:3')).Id);

  // a failing step: no tag moves, no build container is left; fixed, steps before it come from the cache
  const failing = context({ 'Dockerfile': 'FROM busybox\nRUN echo step-one > /one\nRUN echo to-stderr >&2; exit 3\nRUN echo never\n' });
  const before = (await inspect('cached:3')).Id;
  const f = await berth('build', '-t', 'cached:3', failing);
  assert.equal(f.code, 3);
  assert.match(f.stderr, /The command '\/bin\/sh -c echo to-stderr >&2; exit 3' returned a non-zero code: 3/);
  assert.match(f.stdout, /to-stderr/);
  assert.equal((await inspect('cached:3')).Id, before, 'the tag did not move');
  assert.equal(ok(await berth('ps', '-aq')).stdout, '', 'no build container is left');
  fs.writeFileSync(path.join(failing, 'Dockerfile'), 'FROM busybox\nRUN echo step-one > /one\nRUN echo fixed\nRUN echo done\n');
  const fixed = ok(await berth('build', '-t', 'cached:5', failing));
  assert.match(fixed.stdout, /Step 2\/4 : RUN echo step-one > \/one\n ---> Using cache/);
  assert.match(fixed.stdout, /Step 3\/4 : RUN echo fixed\n ---> Running in/);

  // the cache survives a daemon restart; builder prune empties it; system df counts it
  const df = ok(await berth('system', 'df')).stdout;
  assert.match(df, /Build Cache\s+[1-9]\d*/);
  await d.restart();
  assert.match(ok(await berth('build', '-t', 'cached:6', failing)).stdout, /Step 4\/4 : RUN echo done\n ---> Using cache/);
  const pruned = ok(await berth('builder', 'prune', '-f'));
  assert.match(pruned.stdout, /Total reclaimed space/);
  assert.doesNotMatch(ok(await berth('build', '-t', 'cached:7', failing)).stdout, /Using cache/);
});

test('multi-stage: --target, COPY --from by name and index, stages the target does not need are skipped', async () => {
  const dir = context({
    'Dockerfile': `FROM busybox AS builder
RUN echo compiled > /artifact
FROM busybox AS unused
RUN exit 1
FROM busybox
COPY --from=builder /artifact /from-name
COPY --from=0 /artifact /from-index
COPY --from=busybox /bin/busybox /bb-from-image
CMD ["cat", "/from-name"]
`,
  });
  const r = ok(await berth('build', '-t', 'multi', dir));
  assert.doesNotMatch(r.stdout, /exit 1/, 'the unused stage was skipped');
  assert.equal(await runOut('multi'), 'compiled\n');
  assert.equal(await runOut('multi', 'sh', '-c', 'cat /from-index; test -x /bb-from-image && echo ok'), 'compiled\nok\n');
  ok(await berth('build', '--target', 'builder', '-t', 'multi:builder', dir));
  assert.equal(await runOut('multi:builder', 'cat', '/artifact'), 'compiled\n');
  const bad = await berth('build', '--target', 'nope', dir);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /failed to reach build target nope in Dockerfile/);
});

test('.dockerignore with ** and ! decides what COPY sees', async () => {
  const dir = context({
    'Dockerfile': 'FROM busybox\nCOPY . /ctx/\nRUN cd /ctx && find . -type f | sort > /list\n',
    '.dockerignore': '**/*.log\nsecret\ndocs\n!docs/keep.md\n',
    'app.js': 'x', 'a/b/debug.log': 'x', 'debug.log': 'x', 'secret': 'x', 'docs/drop.md': 'x', 'docs/keep.md': 'x',
  });
  ok(await berth('build', '-t', 'ignored', dir));
  assert.equal(await runOut('ignored', 'cat', '/list'), './.dockerignore\n./Dockerfile\n./app.js\n./docs/keep.md\n');
});

test('dd then rm in two RUNs keeps the 5 MB layer; in one RUN it does not; image why shows it; --squash makes the own layers one', async () => {
  const dir = context({ 'Dockerfile': 'FROM busybox\nRUN dd if=/dev/zero of=/big bs=1M count=5\nRUN rm /big\n' });
  ok(await berth('build', '-t', 'ddrm:two', dir));
  const one = context({ 'Dockerfile': 'FROM busybox\nRUN dd if=/dev/zero of=/big bs=1M count=5 && rm /big\n' });
  ok(await berth('build', '-t', 'ddrm:one', one));
  const base = (await inspect('busybox')).Size;
  const two = (await inspect('ddrm:two')).Size;
  const single = (await inspect('ddrm:one')).Size;
  assert.ok(two - base >= 5 * 1024 * 1024, `two RUNs cost the 5 MB (${two - base})`);
  assert.ok(single - base < 64 * 1024, `one RUN does not (${single - base})`);
  const why = ok(await berth('image', 'why', 'ddrm:two')).stdout;
  assert.match(why, /^SIZE +HOW +PATH +ADDED BY +REMOVED BY\n5\.24MB +deleted +\/big +RUN dd if=\/dev\/zero of=\/big bs=1M count=5 +RUN rm \/big\n/);
  assert.match(ok(await berth('image', 'why', 'ddrm:one')).stdout, /No layer of ddrm:one deletes or overwrites/);
  const layers = (await inspect('ddrm:two')).RootFS.Layers.length;
  ok(await berth('build', '--squash', '-t', 'ddrm:squashed', dir));
  const sq = await inspect('ddrm:squashed');
  assert.equal(sq.RootFS.Layers.length, (await inspect('busybox')).RootFS.Layers.length + 1, 'own layers become one');
  assert.ok(layers > sq.RootFS.Layers.length);
  assert.ok(sq.Size - base < 64 * 1024, `squashed, the 5 MB is gone (${sq.Size - base})`);
  assert.equal(ok(await berth('run', '--rm', 'ddrm:squashed', 'sh', '-c', 'test -e /big || echo gone')).stdout, 'gone\n');
});

test('BuildKit extras: heredocs, a cache mount that persists across builds and never enters a layer, bind from a stage', async () => {
  const dir = context({
    'Dockerfile': [
      'FROM busybox AS tools',
      'RUN echo tool-v1 > /tool',
      'FROM busybox',
      'ARG WHO=world',
      'RUN <<EOF',
      'echo "hello $WHO" > /greeting',
      'echo second line >> /greeting',
      'EOF',
      'COPY <<EOT /etc/motd',
      'motd for ${WHO}',
      'EOT',
      "RUN --mount=type=cache,target=/var/cache/app sh -c 'echo run >> /var/cache/app/runs; wc -l < /var/cache/app/runs > /runs-seen'",
      'RUN --mount=type=bind,from=tools,source=/tool,target=/mnt/tool cat /mnt/tool > /tool-copy',
      '',
    ].join('\n'),
  });
  ok(await berth('build', '-t', 'extras:1', dir));
  assert.equal(await runOut('extras:1', 'cat', '/greeting', '/etc/motd', '/tool-copy'), 'hello world\nsecond line\nmotd for world\ntool-v1\n');
  assert.equal((await runOut('extras:1', 'cat', '/runs-seen')).trim(), '1');
  assert.equal(await runOut('extras:1', 'sh', '-c', 'ls /var/cache/app 2>/dev/null | wc -l'), '0\n', 'the cache mount is not in the layer');
  ok(await berth('build', '--no-cache', '-t', 'extras:2', dir));
  assert.equal((await runOut('extras:2', 'cat', '/runs-seen')).trim(), '2', 'the cache mount kept its content');
});

test('SOURCE_DATE_EPOCH gives the same image ID on a rebuild without cache', async () => {
  const dir = context({ 'Dockerfile': 'FROM busybox\nCOPY f /f\nRUN echo built > /b && mkdir -p /d/e\nENV A=1\n', 'f': 'content\n' });
  const a = ok(await berth('build', '--build-arg', 'SOURCE_DATE_EPOCH=1700000000', '-q', dir)).stdout.trim();
  const b = ok(await berth('build', '--no-cache', '--build-arg', 'SOURCE_DATE_EPOCH=1700000000', '-q', dir)).stdout.trim();
  assert.match(a, /^sha256:[0-9a-f]{64}$/);
  assert.equal(a, b);
  assert.equal((await inspect(a)).Created, '2023-11-14T22:13:20.000Z');
});

test('bad input: line numbers and Docker wording; nothing tagged, no container left', async () => {
  const cases: Array<[string, RegExp]> = [
    ['FROM busybox\nFOO bar\n', /dockerfile parse error on line 2: unknown instruction: FOO/],
    ['RUN echo\n', /dockerfile parse error on line 1: no build stage in current context/],
    ['FROM busybox\nCOPY --parents a /b\n', /dockerfile parse error on line 2: unknown flag: parents/],
    ['FROM busybox\nRUN --network=host true\n', /line 2: RUN --network=host is not supported/],
    ['FROM busybox\nCMD ["a", 1]\n', /line 2: when using JSON array syntax, arrays must be comprised of strings only/],
    ['FROM busybox\nCOPY --from=127.0.0.1:9/nostage /x /y\n', /invalid from flag value 127\.0\.0\.1:9\/nostage.*line 2/],
    ['FROM busybox\nCOPY ../outside /y\n', /forbidden path outside the build context: \.\.\/outside \(\).*line 2/],
    ['FROM busybox\nCOPY missing.txt /y\n', /COPY failed: file not found in build context or excluded by \.dockerignore: stat missing\.txt: file does not exist/],
    // a registry that is not there (nothing listens on 127.0.0.1:9): the pull fails, locally
    ['FROM 127.0.0.1:9/no-such-image-here\n', /127\.0\.0\.1:9.*line 1/],
    ['', /cannot be empty/],
  ];
  for (const [df, re] of cases) {
    const dir = context({ 'Dockerfile': df });
    const r = await berth('build', '-t', 'bad:input', dir);
    assert.notEqual(r.code, 0, df);
    assert.match(r.stderr, re, df);
  }
  const noDf = context({ 'other': 'x' });
  assert.match((await berth('build', noDf)).stderr, /Cannot locate specified Dockerfile: Dockerfile/);
  const notTar = await d.api('POST', '/build', 'this is not a tar archive at all', { 'Content-Type': 'application/x-tar' });
  assert.equal(notTar.status, 400);
  assert.match(notTar.body.message, /tar/);
  assert.equal((await d.api('GET', '/images/bad:input/json')).status, 404);
  assert.equal(ok(await berth('ps', '-aq')).stdout, '');
});

test('berth build - reads a Dockerfile or a context tar from stdin; -f names another Dockerfile', async () => {
  const r = ok(await d.cli(['build', '-t', 'stdin:df', '-'], { input: 'FROM busybox\nRUN echo from-stdin > /s\n', timeoutMs: 60_000 }));
  assert.match(r.stdout, /Successfully tagged stdin:df/);
  assert.equal(await runOut('stdin:df', 'cat', '/s'), 'from-stdin\n');
  const dir = context({ 'Dockerfile.dev': 'FROM busybox\nARG VERSION\nRUN echo v$VERSION > /v\n' });
  ok(await berth('build', '-f', path.join(dir, 'Dockerfile.dev'), '--build-arg', 'VERSION=2', '-t', 'dev:a', '-t', 'dev:b', dir));
  assert.equal(await runOut('dev:b', 'cat', '/v'), 'v2\n');
  const tarball = spawnSync('tar', ['-c', '-C', dir, '.'], { maxBuffer: 1 << 24 }).stdout;
  ok(await d.cli(['build', '-f', 'Dockerfile.dev', '-t', 'stdin:tar', '-'], { input: tarball, timeoutMs: 60_000 }));
  assert.equal(await runOut('stdin:tar', 'cat', '/v'), 'v\n');
});

test('independent stages build concurrently; their output comes in stage order', async () => {
  // Each stage waits (bounded) for the other's marker in a shared cache mount: built one after
  // the other, the first stage would give up and fail the build.
  const wait = (mine: string, other: string) =>
    `RUN --mount=type=cache,id=rendezvous,target=/r sh -c 'touch /r/${mine}; i=0; while [ ! -e /r/${other} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; test -e /r/${other} && echo ${mine} > /${mine}'`;
  const dir = context({
    'Dockerfile': ['FROM busybox AS a', wait('a', 'b'), 'FROM busybox AS b', wait('b', 'a'),
      'FROM busybox', 'COPY --from=a /a /a', 'COPY --from=b /b /b', ''].join('\n'),
  });
  const r = ok(await berth('build', '-t', 'concurrent', dir));
  assert.ok(r.stdout.indexOf('Step 2/7') < r.stdout.indexOf('Step 3/7'), 'stage a is printed before stage b');
  assert.equal(await runOut('concurrent', 'cat', '/a', '/b'), 'a\nb\n');
});

test('ADD: a URL (served on 127.0.0.1) is downloaded, not unpacked; local .tar.gz and .tar.xz are unpacked', async () => {
  const server = http.createServer((req, res) => {
    if (req.url === '/pkg/file.txt') { res.writeHead(200, { 'Last-Modified': 'Wed, 01 Jan 2020 00:00:00 GMT' }); res.end('downloaded\n'); }
    else { res.writeHead(404); res.end(); }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const port = (server.address() as import('node:net').AddressInfo).port;
    const src = context({ 'd/in-gz.txt': 'from gz\n', 'e/in-xz.txt': 'from xz\n' });
    const dir = context({ 'Dockerfile': `FROM busybox\nADD http://127.0.0.1:${port}/pkg/file.txt /web/\nADD a.tar.gz /gz/\nADD b.tar.xz /xz/\n` });
    assert.equal(spawnSync('tar', ['-czf', path.join(dir, 'a.tar.gz'), '-C', src, 'd']).status, 0);
    assert.equal(spawnSync('tar', ['-cJf', path.join(dir, 'b.tar.xz'), '-C', src, 'e']).status, 0);
    ok(await berth('build', '-t', 'adds', dir));
    assert.equal(await runOut('adds', 'sh', '-c', 'cat /web/file.txt /gz/d/in-gz.txt /xz/e/in-xz.txt; stat -c %a /web/file.txt'), 'downloaded\nfrom gz\nfrom xz\n600\n');
    const bad = context({ 'Dockerfile': `FROM busybox\nADD http://127.0.0.1:${port}/missing /x\n` });
    const r = await berth('build', bad);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /failed to GET http:\/\/127\.0\.0\.1:\d+\/missing with status 404/);
  } finally {
    server.close();
  }
});

test('a base image that is not local is pulled (from a registry on 127.0.0.1); --pull pulls again', async () => {
  const { startRegistry } = await import('../helpers/registry');
  const reg = await startRegistry('berth');
  try {
    const ref = `${reg.addr}/base/bb:1`;
    ok(await berth('tag', 'busybox', ref));
    ok(await berth('push', ref));
    ok(await berth('rmi', ref));
    const dir = context({ 'Dockerfile': `FROM ${ref}\nRUN echo pulled-base > /p\n` });
    const r = ok(await berth('build', '-t', 'from-registry', dir));
    assert.match(r.stdout, /Step 1\/2 : FROM 127\.0\.0\.1:\d+\/base\/bb:1\n/);
    assert.equal(await runOut('from-registry', 'cat', '/p'), 'pulled-base\n');
    assert.equal((await d.api('GET', `/images/${encodeURIComponent(ref)}/json`)).status, 200, 'the base is in the store now');
    ok(await berth('build', '--pull', '-t', 'from-registry:2', dir));
  } finally {
    await reg.stop();
  }
});

test('RUN --mount=type=secret (berth build --secret) and type=tmpfs: seen by the step, never in a layer; ssh refused', async () => {
  const secretFile = path.join(d.base, 'token.txt');
  fs.writeFileSync(secretFile, 's3cr3t-value\n');
  const dir = context({
    'Dockerfile': [
      'FROM busybox',
      'RUN --mount=type=secret,id=token sh -c \'tr a-z A-Z < /run/secrets/token > /seen-default; stat -c "%a %u" /run/secrets/token >> /seen-default\'',
      'RUN --mount=type=secret,id=token,target=/etc/tok,mode=0440,uid=1000 sh -c \'tr a-z A-Z < /etc/tok > /seen-target; stat -c "%a %u" /etc/tok >> /seen-target\'',
      'RUN --mount=type=secret,id=absent sh -c \'test -e /run/secrets/absent && echo present > /absent || echo absent > /absent\'',
      'RUN --mount=type=tmpfs,target=/scratch,size=1m sh -c \'echo t > /scratch/f && grep " /scratch " /proc/mounts | cut -d" " -f3 > /tmpfs-type\'',
      '',
    ].join('\n'),
  });
  ok(await berth('build', '--secret', `id=token,src=${secretFile}`, '-t', 'secrets:1', dir));
  assert.equal(await runOut('secrets:1', 'cat', '/seen-default', '/seen-target', '/absent', '/tmpfs-type'),
    'S3CR3T-VALUE\n400 0\nS3CR3T-VALUE\n440 1000\nabsent\ntmpfs\n');
  // Neither the secret nor its mount point, nor the tmpfs content, is in any layer.
  assert.equal(await runOut('secrets:1', 'sh', '-c', 'ls -d /run/secrets /etc/tok /scratch 2>/dev/null | wc -l'), '0\n');
  const saved = await d.api('GET', '/images/secrets:1/get');
  assert.equal(saved.status, 200);
  assert.ok(saved.raw.length > 0 && !saved.raw.includes('s3cr3t-value'), 'the secret is in no layer');
  // A required secret that is not given fails the step with its line number.
  const req = context({ 'Dockerfile': 'FROM busybox\nRUN --mount=type=secret,id=needed,required=true true\n' });
  const r1 = await berth('build', req);
  assert.notEqual(r1.code, 0);
  assert.match(r1.stderr, /secret needed: not found .*\(Dockerfile line 2\)/);
  const ssh = context({ 'Dockerfile': 'FROM busybox\nRUN --mount=type=ssh true\n' });
  const r2 = await berth('build', ssh);
  assert.notEqual(r2.code, 0);
  assert.match(r2.stderr, /line 2: mount type ssh is not supported/);
  assert.equal(ok(await berth('ps', '-aq')).stdout, '');
});

/** Runs a host command (tar, git) for a test's fixtures; it must succeed. */
function sh(cmd: string, args: string[], cwd?: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: d.base } });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
}

test('remote contexts: a context tar.gz URL, a bare Dockerfile URL, and a git repository (#ref:subdir) served on 127.0.0.1', async () => {
  // The context tar.gz.
  const src = context({ 'Dockerfile': 'FROM busybox\nCOPY hello.txt /hello.txt\n', 'hello.txt': 'from a tar URL\n' });
  const served = fs.mkdtempSync(path.join(d.base, 'served-'));
  sh('tar', ['-czf', path.join(served, 'ctx.tar.gz'), '-C', src, '.']);
  fs.writeFileSync(path.join(served, 'Dockerfile.txt'), 'FROM busybox\nRUN echo from-a-dockerfile-url > /df\n');
  // A repository with two branches; the context is a subdirectory; served over dumb http.
  const work = fs.mkdtempSync(path.join(d.base, 'repo-'));
  const git = (...a: string[]) => sh('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', '-c', 'init.defaultBranch=main', ...a], work);
  git('init', '-q');
  fs.mkdirSync(path.join(work, 'app'));
  fs.writeFileSync(path.join(work, 'app', 'Dockerfile'), 'FROM busybox\nCOPY v.txt /v.txt\n');
  fs.writeFileSync(path.join(work, 'app', 'v.txt'), 'main branch\n');
  git('add', '-A'); git('commit', '-qm', 'one');
  git('checkout', '-qb', 'feature');
  fs.writeFileSync(path.join(work, 'app', 'v.txt'), 'feature branch\n');
  git('commit', '-qam', 'two');
  git('checkout', '-q', 'main');
  sh('git', ['clone', '-q', '--bare', work, path.join(served, 'repo.git')]);
  sh('git', ['update-server-info'], path.join(served, 'repo.git'));
  const server = http.createServer((req, res) => {
    const p = path.join(served, decodeURIComponent((req.url ?? '/').split('?')[0]));
    if (!p.startsWith(served + '/') || !fs.existsSync(p) || !fs.statSync(p).isFile()) { res.writeHead(404); res.end(); return; }
    res.writeHead(200); fs.createReadStream(p).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const base = `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`;
    ok(await berth('build', '-t', 'remote:tar', `${base}/ctx.tar.gz`));
    assert.equal(await runOut('remote:tar', 'cat', '/hello.txt'), 'from a tar URL\n');
    ok(await berth('build', '-t', 'remote:df', `${base}/Dockerfile.txt`));
    assert.equal(await runOut('remote:df', 'cat', '/df'), 'from-a-dockerfile-url\n');
    ok(await berth('build', '-t', 'remote:git-main', `${base}/repo.git#:app`));
    assert.equal(await runOut('remote:git-main', 'cat', '/v.txt'), 'main branch\n');
    ok(await berth('build', '-t', 'remote:git-feature', `${base}/repo.git#feature:app`));
    assert.equal(await runOut('remote:git-feature', 'cat', '/v.txt'), 'feature branch\n');
    // The Engine API's remote parameter, as docker-py sends it.
    const api = await d.api('POST', `/build?t=remote:api&remote=${encodeURIComponent(`${base}/repo.git#feature:app`)}`, '', { 'Content-Type': 'application/x-tar' });
    assert.equal(api.status, 200);
    assert.doesNotMatch(api.raw.toString(), /errorDetail/);
    assert.equal(await runOut('remote:api', 'cat', '/v.txt'), 'feature branch\n');
    const missing = await berth('build', `${base}/nothing.tar.gz`);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /unable to download remote context .*404/);
    const badRef = await berth('build', `${base}/repo.git#no-such-branch`);
    assert.notEqual(badRef.code, 0);
    assert.match(badRef.stderr, /unable to prepare context: unable to 'git fetch/);
  } finally {
    server.close();
  }
  assert.deepEqual(fs.readdirSync(path.join(d.dataRoot, 'builder', 'tmp')), [], 'no context directory left');
});

test('FROM scratch then COPY: the copied files are the image\'s only layer', async () => {
  const dir = context({ 'Dockerfile': 'FROM scratch\nCOPY a.txt /files/a.txt\nCMD ["/files/a.txt"]\n', 'a.txt': 'alone\n' });
  ok(await berth('build', '-t', 'scratch-copy', dir));
  const img = await inspect('scratch-copy');
  assert.equal(img.RootFS.Layers.length, 1);
  const c = await d.api('POST', '/containers/create', { Image: 'scratch-copy' });
  assert.equal(c.status, 201, c.raw.toString());
  const a = await d.api('GET', `/containers/${c.body.Id}/archive?path=/files/a.txt`);
  assert.equal(a.status, 200);
  assert.match(a.raw.toString('latin1'), /alone\n/);
  ok(await berth('rm', c.body.Id));
});

test("remote contexts go through the daemon's HTTP proxy: a tar URL, a Dockerfile URL that redirects, a git repository, all on hosts only the proxy knows", async () => {
  const served = fs.mkdtempSync(path.join(d.base, 'proxied-'));
  const src = context({ 'Dockerfile': 'FROM scratch\nCOPY hello.txt /hello.txt\n', 'hello.txt': 'through the proxy\n' });
  sh('tar', ['-czf', path.join(served, 'ctx.tar.gz'), '-C', src, '.']);
  fs.writeFileSync(path.join(served, 'Dockerfile.txt'), 'FROM scratch\nLABEL via=proxy\n');
  const work = fs.mkdtempSync(path.join(d.base, 'prepo-'));
  const git = (...a: string[]) => sh('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', '-c', 'init.defaultBranch=main', ...a], work);
  git('init', '-q');
  fs.writeFileSync(path.join(work, 'Dockerfile'), 'FROM scratch\nCOPY v.txt /v.txt\n');
  fs.writeFileSync(path.join(work, 'v.txt'), 'git through the proxy\n');
  git('add', '-A'); git('commit', '-qm', 'one');
  sh('git', ['clone', '-q', '--bare', work, path.join(served, 'repo.git')]);
  sh('git', ['update-server-info'], path.join(served, 'repo.git'));
  // A forward proxy on 127.0.0.1 that answers every absolute-form request itself: the .invalid
  // hosts exist only here, so a build that succeeds went through it (no name is ever resolved).
  const seen: string[] = [];
  const proxy = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    let u: URL;
    try { u = new URL(req.url ?? ''); } catch { res.writeHead(400); res.end(); return; }
    if (u.pathname === '/moved') { res.writeHead(302, { Location: 'http://files.invalid/Dockerfile.txt' }); res.end(); return; }
    const p = path.join(served, decodeURIComponent(u.pathname));
    if (!p.startsWith(served + '/') || !fs.existsSync(p) || !fs.statSync(p).isFile()) { res.writeHead(404); res.end(); return; }
    res.writeHead(200); fs.createReadStream(p).pipe(res);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as import('node:net').AddressInfo).port}`;
  const p = await startDaemon({ config: { proxies: { 'http-proxy': proxyUrl } } });
  const fileIn = async (image: string, file: string) => {
    const c = await p.api('POST', '/containers/create', { Image: image, Cmd: ['/none'] });
    assert.equal(c.status, 201, c.raw.toString());
    const a = await p.api('GET', `/containers/${c.body.Id}/archive?path=${encodeURIComponent(file)}`);
    assert.equal(a.status, 200, a.raw.toString());
    return a.raw.toString('latin1');
  };
  try {
    ok(await p.cli(['build', '-t', 'proxied:df', 'http://context.invalid/moved']));
    assert.equal((await p.api('GET', '/images/proxied:df/json')).body.Config.Labels.via, 'proxy');
    ok(await p.cli(['build', '-t', 'proxied:tar', 'http://context.invalid/ctx.tar.gz']));
    assert.match(await fileIn('proxied:tar', '/hello.txt'), /through the proxy\n/);
    ok(await p.cli(['build', '-t', 'proxied:git', 'http://context.invalid/repo.git']));
    assert.match(await fileIn('proxied:git', '/v.txt'), /git through the proxy\n/);
    assert.ok(seen.includes('http://context.invalid/moved') && seen.includes('http://files.invalid/Dockerfile.txt'), seen.join(' '));
    assert.ok(seen.some((u) => u.startsWith('http://context.invalid/repo.git/')), seen.join(' '));
    const missing = await p.cli(['build', 'http://context.invalid/nothing.tar.gz']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /unable to download remote context http:\/\/context\.invalid\/nothing\.tar\.gz: 404 Not Found/);
  } finally {
    await p.stop();
    proxy.close();
  }
});

test('kill -9 of berthd during a RUN step: at start-up the step container, its snapshot and the context are swept; the build then works', async () => {
  const { spawn } = await import('node:child_process');
  const dir = context({ 'Dockerfile': 'FROM busybox\nCOPY f /f\nRUN echo step-started && sleep 120\n', 'f': 'x\n' });
  const child = spawn(process.execPath, [path.join(process.env.BERTH_REPO_ROOT ?? process.cwd(), 'bin', 'berth'), 'build', '-t', 'crash:1', dir],
    { env: { ...process.env, ...d.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the RUN step did not start: ${out}`)), 60_000);
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('step-started')) { clearTimeout(timer); resolve(); }
    });
  });
  const snapshotsFile = path.join(d.dataRoot, 'metadata', 'snapshots.json');
  const stepSnapshots = () => Object.keys(JSON.parse(fs.readFileSync(snapshotsFile, 'utf8')).containers ?? {});
  await d.kill9();
  await exited;
  await d.restart();
  assert.equal(ok(await berth('ps', '-aq')).stdout, '', 'no step container left');
  assert.deepEqual(stepSnapshots(), [], 'no step snapshot left');
  assert.deepEqual(fs.readdirSync(path.join(d.dataRoot, 'builder', 'inflight')), []);
  assert.ok(!fs.existsSync(path.join(d.dataRoot, 'builder', 'tmp')) || fs.readdirSync(path.join(d.dataRoot, 'builder', 'tmp')).length === 0, 'no context left');
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(d.execRoot + '/build'));
  assert.deepEqual(mounts, []);
  assert.equal((await d.api('GET', '/images/crash:1/json')).status, 404, 'nothing tagged');
  fs.writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox\nCOPY f /f\nRUN echo done > /done\n');
  ok(await berth('build', '-t', 'crash:1', dir));
  assert.equal(await runOut('crash:1', 'cat', '/f', '/done'), 'x\ndone\n');
});
