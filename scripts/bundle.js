// Bundles the CLI and the daemon into single files so Node starts them
// without resolving hundreds of modules (CLI start time matters for `run`).
// The CLI also gets a V8 code cache of its bundle, loaded by bin/berth (scripts/cli-launcher.js).
const esbuild = require('esbuild');
const crypto = require('node:crypto');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
// berthd's file is also a bash script: its second line, a no-op string plus a
// comment to Node, re-runs the file under node with argv[0] "berthd" so that
// `pidof berthd` and `kill -HUP $(pidof berthd)` find the daemon, as they find
// dockerd (env(1) here cannot set argv[0]).
const daemonLauncher = '#!/bin/bash\n\':\' //; exec -a berthd node "$0" "$@"';
const targets = [
  { entry: 'src/cli/main.ts', out: 'bin/berth-cli.js', banner: '' },
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

// bin/berth-cli.js: its first line names its content's hash, which the code cache must carry.
const cliFile = path.join(root, 'bin/berth-cli.js');
const body = fs.readFileSync(cliFile);
// The launcher reads the bundle as latin1 (cheaper than utf8): only exact when it is ASCII.
const nonAscii = body.findIndex((b) => b > 0x7f);
if (nonAscii >= 0) {
  const line = body.subarray(0, nonAscii).toString('latin1').split('\n').length;
  throw new Error(`bin/berth-cli.js: non-ASCII character on line ${line}; write it as an escape (\\u....) in the source`);
}
const hash = crypto.createHash('sha256').update(body).digest('hex');
fs.writeFileSync(cliFile, Buffer.concat([Buffer.from(`// berth-cli ${hash}\n`), body]));
fs.chmodSync(cliFile, 0o644);
fs.copyFileSync(path.join(root, 'scripts/cli-launcher.js'), path.join(root, 'bin/berth'));
fs.chmodSync(path.join(root, 'bin/berth'), 0o755);

// The code cache: made by a plain node (the flags V8 checks are those of a plain run), compiling
// the bundle exactly as the launcher does. Top-level code only: the functions a command runs are
// compiled when first called, as without a cache.
const cacheFile = path.join(root, 'bin/berth-cli.cache');
const env = { ...process.env };
delete env.NODE_OPTIONS;
fs.rmSync(cacheFile, { force: true });
execFileSync(process.execPath, ['-e', `
  const fs = require('node:fs');
  const vm = require('node:vm');
  const [file, out, hash] = process.argv.slice(1);
  const source = fs.readFileSync(file, 'latin1');
  const wrapped = \`(function (exports, require, module, __filename, __dirname) { \${source}\\n})\`;
  const data = new vm.Script(wrapped, { filename: file }).createCachedData();
  fs.writeFileSync(out + '.tmp', Buffer.concat([Buffer.from(hash + '\\n'), data]), { mode: 0o644 });
  fs.renameSync(out + '.tmp', out);
`, cliFile, cacheFile, hash], { env, stdio: 'inherit' });
// A cache V8 refuses would only cost its reading: check that the launcher takes it.
const check = spawnSync(process.execPath, [path.join(root, 'bin/berth'), '--version'], { env: { ...env, BERTH_CLI_CACHE_DEBUG: '1' }, encoding: 'utf8' });
if (check.status !== 0 || !/^Berth version/.test(check.stdout)) throw new Error(`bin/berth --version failed: ${check.stdout}${check.stderr}`);
if (!/code cache used/.test(check.stderr)) {
  console.warn(`scripts/bundle.js: V8 did not take the CLI's code cache (${check.stderr.trim()}); bin/berth runs without it`);
  fs.rmSync(cacheFile, { force: true });
}
