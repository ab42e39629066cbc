// Writes the registry benchmark's section of docs/benchmarks.md.
// usage: node bench/registry-report.js push.json pull.json servers.jsonl runs layers sizeBytes benchmarks.md
// With push.json, pull.json, runs, layers and sizeBytes given as "-" (SERVERS_ONLY=1), the section's
// pull/push part is kept as it stands and only the servers' tables are rewritten.
const fs = require('node:fs');
const os = require('node:os');
const { writeSection } = require('./md-section');
const [pushFile, pullFile, serversFile, runs, layers, size, mdFile] = process.argv.slice(2);

const serversOnly = pushFile === '-';
const results = serversOnly ? [] : [pushFile, pullFile].flatMap((f) => JSON.parse(fs.readFileSync(f, 'utf8')).results);
const median = (name) => results.find((r) => r.command === name)?.median;
const s = (v) => (v === undefined ? 'n/a' : `${v.toFixed(2)} s`);
const ratioLine = (what, a, b, max) => {
  const r = median(a) / median(b);
  return `| ${what} | ${Number.isFinite(r) ? r.toFixed(2) + '×' : 'n/a'} | ${Number.isFinite(r) ? (r <= max ? `met (≤ ${max}×)` : `**not met** (goal ≤ ${max}×)`) : 'n/a'} |`;
};
const servers = fs.readFileSync(serversFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const berth = servers.find((x) => x.name.startsWith('berth'));
const dist = servers.find((x) => x.name.startsWith('distribution'));

const lines = [];
const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const serversHeading = 'Servers, back to back with wrk on 127.0.0.1';
if (serversOnly) {
  // The pull/push part of the current section, up to the servers' heading.
  const md = fs.readFileSync(mdFile, 'utf8');
  const start = md.indexOf('<!-- bench:registry -->\n');
  const head = start < 0 ? '' : md.slice(start + '<!-- bench:registry -->\n'.length, md.indexOf('<!-- /bench:registry -->'));
  const cut = head.indexOf(serversHeading);
  if (cut > 0) lines.push(...head.slice(0, cut).trimEnd().split('\n'), '');
  lines.push(`${serversHeading} (measured ${date} on ${os.cpus().length} cores, \`SERVERS_ONLY=1\`, a 5-layer schema 2 manifest put with curl):`, '');
} else {
  lines.push(`Measured ${date} on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}); a ${layers}-layer image of ${(Number(size) / 1e6).toFixed(0)} MB unpacked, ${runs} runs each, hyperfine medians.`, '');
  lines.push('| command | median | mean ± σ | min | max |', '|---|---|---|---|---|');
  for (const r of results) lines.push(`| ${r.command} | ${s(r.median)} | ${s(r.mean)} ± ${s(r.stddev)} | ${s(r.min)} | ${s(r.max)} |`);
  lines.push('', '| ratio | value | goal |', '|---|---|---|');
  lines.push(ratioLine('pull: berth / docker (dockerd)', 'berth pull', 'docker pull (dockerd)', 0.5));
  lines.push(ratioLine('push: berth / docker (dockerd)', 'berth push', 'docker push (dockerd)', 0.7));
  lines.push('', `${serversHeading}:`, '');
}
lines.push('| server | 50 MiB blob GET, 8 connections | manifest GET req/s (8 connections) | server CPU per manifest GET | RSS after / peak |', '|---|---|---|---|---|');
for (const x of servers) {
  lines.push(`| ${x.name} | ${(x.blobBytesPerSec / 1e9).toFixed(2)} GB/s | ${Math.round(x.manifestReqPerSec)} | ${x.cpuMsPerManifest.toFixed(3)} ms | ${(x.rssKB / 1024).toFixed(0)} / ${(x.hwmKB / 1024).toFixed(0)} MiB |`);
}
if (berth && dist) {
  lines.push('', '| ratio (berth / distribution) | value | goal |', '|---|---|---|');
  const row = (what, v, ok, goal) => lines.push(`| ${what} | ${v.toFixed(2)}× | ${ok ? 'met' : '**not met**'} (${goal}) |`);
  row('blob GET throughput', berth.blobBytesPerSec / dist.blobBytesPerSec, berth.blobBytesPerSec >= dist.blobBytesPerSec, '≥ 1.0×');
  row('CPU per manifest GET', berth.cpuMsPerManifest / dist.cpuMsPerManifest, berth.cpuMsPerManifest <= 0.3 * dist.cpuMsPerManifest, '≤ 0.3×');
  row('RSS (peak)', berth.hwmKB / dist.hwmKB, berth.hwmKB <= dist.hwmKB, '≤ 1.0×');
  row('RSS (after)', berth.rssKB / dist.rssKB, berth.rssKB <= dist.rssKB, '≤ 1.0×');
}
writeSection(mdFile, 'registry', lines);
