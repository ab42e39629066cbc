// `docker cp` of many small files in and out of a running container, through the API of a private
// berthd (test helper): median of 3 PUTs and 3 GETs of a 10k-file tree.
// Usage: node bench/cp-files.js [repo dir (default: this one)] [files (default 10000)]
const path = require('node:path');
const repo = path.resolve(process.argv[2] || path.join(__dirname, '..'));
const files = Number(process.argv[3] || 10000);
const { startDaemon, bootstrapBusybox } = require(path.join(repo, 'dist/test/helpers/daemon.js'));
const tar = require(path.join(repo, 'node_modules/tar-stream'));

function tarOf(n) {
  const pack = tar.pack();
  const chunks = [];
  pack.on('data', (c) => chunks.push(c));
  const done = new Promise((r) => pack.on('end', () => r(Buffer.concat(chunks))));
  for (let d = 0; d < n / 100; d++) {
    pack.entry({ name: `t/d${d}/`, type: 'directory', mode: 0o755 });
    for (let f = 0; f < 100; f++) pack.entry({ name: `t/d${d}/f${f}`, mode: 0o644 }, `file ${d}/${f}\n`);
  }
  pack.finalize();
  return done;
}
const median = (a) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)];

(async () => {
  const d = await startDaemon();
  try {
    await bootstrapBusybox(d);
    const c = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['sleep', '600'] });
    await d.api('POST', `/containers/${c.body.Id}/start`);
    const body = await tarOf(files);
    const put = [], get = [];
    for (let i = 0; i < 3; i++) {
      await d.api('POST', `/containers/${c.body.Id}/exec`, { Cmd: ['true'] });
      let t = process.hrtime.bigint();
      const p = await d.api('PUT', `/containers/${c.body.Id}/archive?path=/tmp`, body, { 'Content-Type': 'application/x-tar' });
      if (p.status !== 200) throw new Error(`PUT ${p.status} ${p.raw}`);
      put.push(Number(process.hrtime.bigint() - t) / 1e6);
      t = process.hrtime.bigint();
      const g = await d.api('GET', `/containers/${c.body.Id}/archive?path=/tmp/t`);
      if (g.status !== 200) throw new Error(`GET ${g.status}`);
      get.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    console.log(JSON.stringify({ repo, files, putMs: Math.round(median(put)), getMs: Math.round(median(get)), puts: put.map(Math.round), gets: get.map(Math.round) }));
    await d.api('DELETE', `/containers/${c.body.Id}?force=1`);
  } finally {
    await d.stop();
  }
})().catch((e) => { console.error(e); process.exit(1); });
