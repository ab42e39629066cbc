/**
 * The Dockerfile parser and word expansion against the reference
 * implementation's public test vectors (BuildKit's frontend/dockerfile test
 * data, copied unchanged into test/fixtures/dockerfile-vectors; formats in its README).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dumpNode, parse } from '../../src/build/dockerfile/parser';
import { expandWord, expandWords, envLookup } from '../../src/build/dockerfile/shell';

const root = path.join(process.env.BERTH_REPO_ROOT ?? path.resolve(__dirname, '../../..'), 'test/fixtures/dockerfile-vectors');

test('parser dumps match the reference for every test file', () => {
  const dir = path.join(root, 'parser-testfiles');
  const cases = fs.readdirSync(dir).sort();
  assert.equal(cases.length, 33);
  for (const c of cases) {
    const src = fs.readFileSync(path.join(dir, c, 'Dockerfile'));
    const want = fs.readFileSync(path.join(dir, c, 'result'), 'utf8');
    const got = parse(src).children.map((n) => `(${dumpNode(n)})\n`).join('');
    assert.equal(got, want, `case ${c}`);
  }
});

test('negative cases are refused (or, for a build-time failure, fail when dispatched)', () => {
  const dir = path.join(root, 'parser-testfiles-negative');
  const cases = fs.readdirSync(dir).sort();
  assert.ok(cases.length >= 4);
  for (const c of cases) {
    const src = fs.readFileSync(path.join(dir, c, 'Dockerfile'));
    assert.throws(() => parse(src), /./, `case ${c}`);
  }
});

test('envVarTest: expansion table (Unix and all-platform rows)', () => {
  const env = envLookup(['PWD=/home', 'SHELL=bash', 'KOREAN=한국어', 'NULL=']);
  let rows = 0;
  for (const line of fs.readFileSync(path.join(root, 'envVarTest'), 'utf8').split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const [platform, word, expected] = line.split('|').map((s) => s.trim());
    if (platform === 'W') continue;
    rows++;
    if (expected === 'error') {
      assert.throws(() => expandWord(word, env), /./, `word ${word}`);
    } else {
      assert.equal(expandWord(word, env), expected, `word ${word}`);
    }
  }
  assert.ok(rows > 200);
});

test('wordsTest: word splitting after expansion', () => {
  const vars = new Map<string, string>();
  let rows = 0;
  for (const line of fs.readFileSync(path.join(root, 'wordsTest'), 'utf8').split('\n')) {
    if (line.startsWith('#') || !line.trim()) continue;
    if (line.startsWith('ENV ')) {
      const kv = line.slice(4);
      const i = kv.indexOf('=');
      vars.set(kv.slice(0, i), kv.slice(i + 1));
      continue;
    }
    const sep = line.indexOf('|');
    const word = line.slice(0, sep).trim();
    const expected = line.slice(sep + 1).replace(/^ /, '');
    rows++;
    if (expected.trim() === 'error') {
      assert.throws(() => expandWords(word, envLookup(vars)), /./, `word ${word}`);
    } else {
      assert.deepEqual(expandWords(word, envLookup(vars)), expected.split(','), `word ${word}`);
    }
  }
  assert.ok(rows > 20);
});
