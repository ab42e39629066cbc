import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytesSize, ellipsis, formatG, getTimestamp, goQuote, humanDuration, humanSize, jsonIndent, parseGoDuration, ramInBytes, tabwrite, truncateId } from '../../src/cli/units';
import { renderRows } from '../../src/cli/format';
import { psHeaders, psRow } from '../../src/cli/commands/container';

test('HumanDuration like go-units', () => {
  assert.equal(humanDuration(500), 'Less than a second');
  assert.equal(humanDuration(1000), '1 second');
  assert.equal(humanDuration(45_000), '45 seconds');
  assert.equal(humanDuration(90_000), 'About a minute');
  assert.equal(humanDuration(10 * 60_000), '10 minutes');
  assert.equal(humanDuration(3600_000), 'About an hour');
  assert.equal(humanDuration(5 * 3600_000), '5 hours');
  assert.equal(humanDuration(3 * 86400_000), '3 days');
  assert.equal(humanDuration(20 * 86400_000), '2 weeks');
  assert.equal(humanDuration(100 * 86400_000), '3 months');
  assert.equal(humanDuration(800 * 86400_000), '2 years');
});

test('sizes like go-units', () => {
  assert.equal(humanSize(0), '0B');
  assert.equal(humanSize(123), '123B');
  assert.equal(humanSize(4860), '4.86kB');
  assert.equal(humanSize(1_990_000), '1.99MB');
  assert.equal(humanSize(1_240_000), '1.24MB');
  assert.equal(humanSize(12_345_678), '12.3MB');
  assert.equal(humanSize(123_456_789), '123MB');
  assert.equal(humanSize(2_000_000), '2MB');
  assert.equal(bytesSize(25_276_862_464), '23.54GiB');
  assert.equal(formatG(999.9999, 3), '1e+03');
});

test('RAMInBytes and its error', () => {
  assert.equal(ramInBytes('512m'), 512 * 1024 * 1024);
  assert.equal(ramInBytes('1g'), 1024 ** 3);
  assert.equal(ramInBytes('100kb'), 102400);
  assert.equal(ramInBytes('1024'), 1024);
  assert.equal(ramInBytes('1.5k'), 1536);
  assert.throws(() => ramInBytes('12x'), { message: "invalid size: '12x'" });
});

test('ids, ellipsis, quoting', () => {
  assert.equal(truncateId('sha256:' + 'ab'.repeat(32)), 'abababababab');
  assert.equal(ellipsis("sh -c 'while true; do sleep 1; done'", 20), "sh -c 'while true; …");
  assert.equal(goQuote(ellipsis("sh -c 'while true; do sleep 1; done'", 20)), `"sh -c 'while true; …"`);
  assert.equal(goQuote('a"b\n'), '"a\\"b\\n"');
});

test('tabwriter alignment like the docker CLI', () => {
  const out = tabwrite('CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox\tweb\n');
  assert.equal(out, 'CONTAINER ID   IMAGE     NAMES\nabc            busybox   web\n');
});

test('json.Indent keeps raw strings and compact empties', () => {
  const raw = '[{"a":[],"b":{},"c":"x\\u003cy","d":[1,{"e":null}]}]';
  assert.equal(jsonIndent(raw), '[\n    {\n        "a": [],\n        "b": {},\n        "c": "x\\u003cy",\n        "d": [\n            1,\n            {\n                "e": null\n            }\n        ]\n    }\n]');
});

test('durations and timestamps for --since/--until', () => {
  assert.equal(parseGoDuration('1h30m'), 5_400_000);
  assert.equal(parseGoDuration('250ms'), 250);
  assert.equal(parseGoDuration('abc'), null);
  assert.equal(getTimestamp('10s', 1_000_000_000), '999990.000000000');
  assert.equal(getTimestamp('1700000000'), '1700000000');
  assert.equal(getTimestamp('2023-11-14T22:13:20Z'), '1700000000.000000000');
  assert.throws(() => getTimestamp('yesterday'));
});

test('ps rows and table output', () => {
  const now = Date.parse('2026-01-01T00:01:00Z');
  const c = {
    Id: 'f'.repeat(64),
    Names: ['/web'],
    Image: 'busybox',
    Command: "sh -c 'while true; do sleep 1; done'",
    Created: now / 1000 - 60,
    Ports: [{ IP: '127.0.0.1', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }],
    Labels: { a: '1' },
    State: 'running',
    Status: 'Up About a minute',
  };
  const row = psRow(c, true, now);
  assert.equal(row.ID, 'ffffffffffff');
  assert.equal(row.Command, `"sh -c 'while true; …"`);
  assert.equal(row.RunningFor, 'About a minute ago');
  assert.equal(row.Ports, '127.0.0.1:8080->80/tcp');
  assert.equal(row.CreatedAt, '2026-01-01 00:00:00 +0000 UTC');
  const out = renderRows('table {{.ID}}\\t{{.Names}}\\t{{.Label "a"}}', [row], psHeaders);
  assert.equal(out, 'CONTAINER ID   NAMES     LABEL\nffffffffffff   web       1\n');
  assert.equal(renderRows('{{.Names}}', [row], psHeaders), 'web\n');
});
