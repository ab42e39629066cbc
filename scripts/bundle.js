// Bundles the CLI and the daemon into single files so Node starts them
// without resolving hundreds of modules (CLI start time matters for `run`).
const esbuild = require('esbuild');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const targets = [
  { entry: 'src/cli/main.ts', out: 'bin/berth' },
  { entry: 'src/daemon/main.ts', out: 'bin/berthd' },
];
for (const t of targets) {
  esbuild.buildSync({
    entryPoints: [path.join(root, t.entry)],
    outfile: path.join(root, t.out),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // The native SOCK_SEQPACKET addon is loaded from node_modules at run time.
    external: ['node-unix-socket-linux-x64-gnu'],
    banner: { js: '#!/usr/bin/env node' },
    sourcemap: false,
    logLevel: 'warning',
  });
  fs.chmodSync(path.join(root, t.out), 0o755);
}
