// Compiles native/berth-sys.c into native/berth-sys.node: a plain N-API addon,
// built with the C compiler against the headers of the Node that runs this
// script (node-gyp would add python and a download step for nothing).
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const src = path.join(root, 'native', 'berth-sys.c');
const out = path.join(root, 'native', 'berth-sys.node');

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

const fresh = fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(src).mtimeMs;
if (!fresh) {
  const cc = process.env.CC || 'cc';
  execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', `-I${include}`, '-o', out, src], { stdio: 'inherit' });
}
