// Turns hyperfine JSON into a markdown section of docs/benchmarks.md,
// replacing the previous results of the same benchmark.
// usage: node bench/report.js <run-rm|load-save> <json[,json]> <rssBeforeKB> <rssAfterKB> <runs> <benchmarks.md>
const fs = require('node:fs');
const { writeSection } = require('./md-section');
const os = require('node:os');
const [kind, jsonFiles, rssBefore, rssAfter, runs, mdFile] = process.argv.slice(2);

const results = jsonFiles.split(',').flatMap((f) => JSON.parse(fs.readFileSync(f, 'utf8')).results);
const median = (name) => results.find((r) => r.command === name || r.command.startsWith(name))?.median;
const ms = (s) => (s === undefined ? 'n/a' : `${(s * 1000).toFixed(1)} ms`);
const ratio = (a, b) => (median(a) === undefined || median(b) === undefined ? 'n/a' : `${(median(a) / median(b)).toFixed(2)}×`);
const goal = (a, b, max) => {
  if (median(a) === undefined || median(b) === undefined) return 'n/a';
  return median(a) / median(b) <= max ? `met (≤ ${max}×)` : `**not met** (goal ≤ ${max}×)`;
};

const lines = [];
const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
lines.push(`Measured ${date} on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}), ${runs} runs each, hyperfine medians.`, '');
lines.push('| command | median | mean ± σ | min | max |', '|---|---|---|---|---|');
for (const r of results) {
  lines.push(`| ${r.command} | ${ms(r.median)} | ${ms(r.mean)} ± ${ms(r.stddev)} | ${ms(r.min)} | ${ms(r.max)} |`);
}
lines.push('');
if (kind === 'run-rm') {
  lines.push('| ratio | value | goal |', '|---|---|---|');
  lines.push(`| docker CLI: berthd / dockerd | ${ratio('docker CLI → berthd', 'docker CLI → dockerd')} | ${goal('docker CLI → berthd', 'docker CLI → dockerd', 0.35)} |`);
  lines.push(`| berth run --rm / docker run --rm (dockerd) | ${ratio('berth CLI → berthd', 'docker CLI → dockerd')} | ${goal('berth CLI → berthd', 'docker CLI → dockerd', 0.5)} |`);
  lines.push(`| podman / dockerd | ${ratio('podman', 'docker CLI → dockerd')} | |`);
} else if (kind === 'build') {
  lines.push('| ratio | value | goal |', '|---|---|---|');
  lines.push(`| cold build: berth / dockerd classic | ${ratio('cold: berth CLI', 'cold: docker CLI → dockerd')} | ${goal('cold: berth CLI', 'cold: docker CLI → dockerd', 0.5)} |`);
  lines.push(`| cold build: docker CLI → berthd / dockerd | ${ratio('cold: docker CLI → berthd', 'cold: docker CLI → dockerd')} | |`);
  lines.push(`| cached rebuild: berth / dockerd classic | ${ratio('cached: berth CLI', 'cached: docker CLI → dockerd')} | ${goal('cached: berth CLI', 'cached: docker CLI → dockerd', 1.0)} |`);
  lines.push(`| cached rebuild: docker CLI → berthd / dockerd | ${ratio('cached: docker CLI → berthd', 'cached: docker CLI → dockerd')} | |`);
  lines.push(`| podman / dockerd (cold, cached) | ${ratio('cold: podman', 'cold: docker CLI → dockerd')}, ${ratio('cached: podman', 'cached: docker CLI → dockerd')} | |`);
} else {
  lines.push('| ratio | value | goal |', '|---|---|---|');
  lines.push(`| berth load / docker load | ${ratio('berth load', 'docker load')} | ${goal('berth load', 'docker load', 0.8)} |`);
  lines.push(`| berth save / docker save | ${ratio('berth save', 'docker save')} | ${goal('berth save', 'docker save', 0.8)} |`);
}
if (kind === 'build') lines.push('', `berthd peak RSS (VmHWM) over the whole benchmark: ${rssBefore} kB; ${rssAfter} kB (VmRSS) at the end. Cold runs: ${runs} each, cached runs: ${Number(runs) * 3} each.`);
else lines.push('', `berthd RSS (VmRSS): ${rssBefore} kB before, ${rssAfter} kB after the runs.`);

writeSection(mdFile, kind, lines);
