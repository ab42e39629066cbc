/**
 * SOURCE_DATE_EPOCH across machines: the same Dockerfile and context built on
 * two fresh daemons (their own data roots, nothing cached) gives the same
 * image ID — files the steps write, COPY of context files with other mtimes,
 * a multi-stage COPY --from and config-only steps included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxDaemonForFile, ok } from '../helpers/daemon';

const one = busyboxDaemonForFile();
const two = busyboxDaemonForFile();

function context(base: string, mtime: Date): string {
  const dir = path.join(base, 'ctx');
  fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'Dockerfile'), [
    'FROM busybox AS gen',
    'RUN mkdir /out && echo generated > /out/g && date > /out/when-built-but-clamped-mtime && rm /out/when-built-but-clamped-mtime',
    'FROM busybox',
    'ARG SOURCE_DATE_EPOCH',
    'LABEL org.example.reproducible=yes',
    'COPY src/ /app/',
    'COPY --from=gen /out/g /app/g',
    'RUN echo one > /app/one && mkdir -p /app/d/e && ln -s one /app/link',
    'ENV MODE=release',
    'CMD ["cat", "/app/one"]',
    '',
  ].join('\n'));
  fs.writeFileSync(path.join(dir, 'src', 'a.txt'), 'a\n');
  fs.writeFileSync(path.join(dir, 'src', 'b.txt'), 'b\n');
  for (const f of ['Dockerfile', 'src/a.txt', 'src/b.txt', 'src']) fs.utimesSync(path.join(dir, f), mtime, mtime);
  return dir;
}

test('SOURCE_DATE_EPOCH: identical image IDs from two fresh data roots', async () => {
  assert.notEqual(one.dataRoot, two.dataRoot);
  // Two machines start from the same base image (as pulled from a registry): the second daemon loads the first one's.
  const saved = path.join(one.base, 'busybox.tar');
  ok(await one.cli(['save', '-o', saved, 'busybox']));
  ok(await two.cli(['load', '-i', saved]));
  const base = async (d: typeof one) => JSON.parse(ok(await d.cli(['image', 'inspect', 'busybox'])).stdout)[0].Id;
  assert.equal(await base(one), await base(two), 'both daemons start from the same busybox image');
  // The contexts differ in their files' times (as two checkouts do); the RUN steps run at different moments.
  const ids: string[] = [];
  for (const [d, mtime] of [[one, new Date('2024-05-01T00:00:00Z')], [two, new Date('2025-06-01T00:00:00Z')]] as const) {
    const r = ok(await d.cli(['build', '-q', '--build-arg', 'SOURCE_DATE_EPOCH=1700000000', '-t', 'repro:1', context(d.base, mtime)], { timeoutMs: 120_000 }));
    ids.push(r.stdout.trim());
  }
  assert.match(ids[0], /^sha256:[0-9a-f]{64}$/);
  assert.equal(ids[0], ids[1]);
  const layers = (d: typeof one) => d.cli(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', 'repro:1']);
  assert.equal(ok(await layers(one)).stdout, ok(await layers(two)).stdout);
  assert.equal(ok(await one.cli(['run', '--rm', 'repro:1'])).stdout, 'one\n');
  // Files a RUN wrote carry the capped time in the image's filesystem too, not only in the layer tar.
  assert.equal(ok(await two.cli(['run', '--rm', 'repro:1', 'stat', '-c', '%Y', '/app/one', '/app/g'])).stdout, '1700000000\n1700000000\n');
});
