// Replaces (or appends) the marked section `<!-- bench:KIND -->` of docs/benchmarks.md,
// so re-running a benchmark replaces its previous results and keeps the prose around them.
const fs = require('node:fs');

function writeSection(mdFile, kind, lines) {
  const start = `<!-- bench:${kind} -->`;
  const end = `<!-- /bench:${kind} -->`;
  const section = `${start}\n${lines.join('\n')}\n${end}`;
  let md = fs.existsSync(mdFile) ? fs.readFileSync(mdFile, 'utf8') : '# Benchmarks\n';
  if (md.includes(start) && md.includes(end)) {
    md = md.slice(0, md.indexOf(start)) + section + md.slice(md.indexOf(end) + end.length);
  } else {
    md = `${md.trimEnd()}\n\n${section}\n`;
  }
  fs.writeFileSync(mdFile, md);
  process.stdout.write(`${section}\n`);
}

module.exports = { writeSection };
