// Compiles native/berth-sys.c and native/berth-net.c into .node files: plain N-API addons,
// built with the C compiler against the headers of the Node that runs this
// script (node-gyp would add python and a download step for nothing).
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');

const candidates = [
  process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
  path.join(path.dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].filter(Boolean);
const include = candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h')));
if (!include) {
  console.error(`build-native: node_api.h not found (looked in ${candidates.join(', ')})`);
  process.exit(1);
}

for (const name of ['berth-sys', 'berth-net']) {
  const src = path.join(root, 'native', `${name}.c`);
  const out = path.join(root, 'native', `${name}.node`);
  const header = path.join(root, 'native', 'berth-napi.h');
  const fresh = fs.existsSync(out) && fs.statSync(out).mtimeMs >= Math.max(fs.statSync(src).mtimeMs, fs.statSync(header).mtimeMs);
  if (!fresh) {
    const cc = process.env.CC || 'cc';
    execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', `-I${include}`, '-o', out, src], { stdio: 'inherit' });
  }
}
