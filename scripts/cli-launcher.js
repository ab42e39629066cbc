#!/usr/bin/env node
'use strict';
// bin/berth: runs the CLI bundle (bin/berth-cli.js) with the V8 code cache `npm run build` made of
// it (bin/berth-cli.cache), so that Node does not parse and compile the whole bundle at each start.
// The cache is used only when it names the bundle's content hash (the bundle's first line), and V8
// itself refuses one made by another Node/V8 or with other flags; without a usable cache the bundle
// is compiled as usual. Nothing is written here: the install dir may be read-only, and users of
// the berth group run this as themselves.
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const file = path.join(__dirname, 'berth-cli.js');
// The bundle is ASCII (scripts/bundle.js checks): latin1 is the cheapest exact decoding.
const source = fs.readFileSync(file, 'latin1');
const hash = /^\/\/ berth-cli ([0-9a-f]{64})\n/.exec(source)?.[1];
let cachedData;
try {
  const cache = fs.readFileSync(path.join(__dirname, 'berth-cli.cache'));
  if (hash && cache.toString('latin1', 0, 65) === `${hash}\n`) cachedData = cache.subarray(65);
} catch {
  // no cache (not built yet, or removed): compile without one
}
// The same wrapper as Node's CommonJS loader, so the bundle sees the usual module scope.
const wrapped = `(function (exports, require, module, __filename, __dirname) { ${source}\n})`;
const script = new vm.Script(wrapped, { filename: file, cachedData });
if (process.env.BERTH_CLI_CACHE_DEBUG) process.stderr.write(`berth: code cache ${cachedData ? (script.cachedDataRejected ? 'rejected' : 'used') : 'absent'}\n`);
script.runInThisContext()(exports, require, module, file, __dirname);
