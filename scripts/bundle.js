// Bundles the CLI and the daemon into single files so Node starts them
// without resolving hundreds of modules (CLI start time matters for `run`).
const esbuild = require('esbuild');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
// berthd's file is also a bash script: its second line, a no-op string plus a
// comment to Node, re-runs the file under node with argv[0] "berthd" so that
// `pidof berthd` and `kill -HUP $(pidof berthd)` find the daemon, as they find
// dockerd (env(1) here cannot set argv[0]).
const daemonLauncher = '#!/bin/bash\n\':\' //; exec -a berthd node "$0" "$@"';
const targets = [
  { entry: 'src/cli/main.ts', out: 'bin/berth', banner: '#!/usr/bin/env node' },
  { entry: 'src/daemon/main.ts', out: 'bin/berthd', banner: daemonLauncher },
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
    banner: { js: t.banner },
    sourcemap: false,
    logLevel: 'warning',
  });
  fs.chmodSync(path.join(root, t.out), 0o755);
}
