import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Template, TemplateError, prepareFormat } from '../../src/cli/template';

const run = (src: string, data: unknown): string => new Template(src).execute(data);

const inspect = {
  Id: 'abc',
  Name: '/web',
  State: { Status: 'running', Running: true, ExitCode: 0 },
  Config: { Cmd: ['sh', '-c', 'x'], Labels: { b: '2', a: '1', 'com.x': 'y' }, Entrypoint: null, Env: ['A=1', 'B=2'] },
  Mounts: [{ Source: '/a', Destination: '/b' }, { Source: '/c', Destination: '/d' }],
  Count: 3,
  Ratio: 1.5,
};

test('fields, nested fields, missing keys', () => {
  assert.equal(run('{{.State.Status}} {{.Name}}', inspect), 'running /web');
  assert.equal(run('{{.Nope}}', inspect), '<no value>');
  assert.equal(run('{{.Count}} {{.Ratio}} {{.State.Running}}', inspect), '3 1.5 true');
  assert.equal(run('{{.}}', 'plain'), 'plain');
});

test('Go %v printing of slices, maps and null slices', () => {
  assert.equal(run('{{.Config.Cmd}}', inspect), '[sh -c x]');
  assert.equal(run('{{.Config.Labels}}', inspect), 'map[a:1 b:2 com.x:y]');
  assert.equal(run('{{.Config.Entrypoint}}', inspect), '[]');
});

test('json, index, join, len, functions and pipelines', () => {
  assert.equal(run('{{json .Config.Cmd}}', inspect), '["sh","-c","x"]');
  assert.equal(run('{{json .State}}', inspect), '{"Status":"running","Running":true,"ExitCode":0}');
  assert.equal(run('{{index .Config.Labels "com.x"}}', inspect), 'y');
  assert.equal(run('{{index .Config.Cmd 1}}', inspect), '-c');
  assert.equal(run('{{join .Config.Env ","}}', inspect), 'A=1,B=2');
  assert.equal(run('{{len .Mounts}}', inspect), '2');
  assert.equal(run('{{.Name | json}}', inspect), '"/web"');
  assert.equal(run('{{.State.Status | upper}} {{lower "AbC"}} {{title "hello world"}}', inspect), 'RUNNING abc Hello World');
  assert.equal(run('{{println .Name}}x', inspect), '/web\nx');
  assert.equal(run('{{printf "%s-%d" .Name .Count}}', inspect), '/web-3');
  assert.equal(run('{{split "a:b" ":"}}', inspect), '[a b]');
});

test('range, if/else, else if, with, variables, comparisons', () => {
  assert.equal(run('{{range .Mounts}}{{.Source}}->{{.Destination}} {{end}}', inspect), '/a->/b /c->/d ');
  assert.equal(run('{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}', inspect), 'a=1;b=2;com.x=y;');
  assert.equal(run('{{range $i, $m := .Mounts}}{{$i}}:{{$m.Source}} {{end}}', inspect), '0:/a 1:/c ');
  assert.equal(run('{{range .Config.Entrypoint}}x{{else}}empty{{end}}', inspect), 'empty');
  assert.equal(run('{{if .State.Running}}up{{else}}down{{end}}', inspect), 'up');
  assert.equal(run('{{if eq .State.Status "exited"}}e{{else if eq .State.Status "running"}}r{{else}}o{{end}}', inspect), 'r');
  assert.equal(run('{{if and .State.Running (gt .Count 2)}}yes{{end}}', inspect), 'yes');
  assert.equal(run('{{if not .State.Running}}no{{else}}yes{{end}}', inspect), 'yes');
  assert.equal(run('{{with .State}}{{.Status}}{{end}}', inspect), 'running');
  assert.equal(run('{{$n := .Name}}{{$n}}', inspect), '/web');
  assert.equal(run('{{range .Mounts}}{{$.Name}}{{end}}', inspect), '/web/web');
});

test('trim markers and comments', () => {
  assert.equal(run('a  {{- .Name -}}  b', inspect), 'a/webb');
  assert.equal(run('{{/* note */}}x', inspect), 'x');
});

test('methods with arguments (ps .Label "k")', () => {
  const row = { Names: 'web', Label: (k: string) => ({ a: '1' } as Record<string, string>)[k] ?? '' };
  assert.equal(run('{{.Names}} {{.Label "a"}} [{{.Label "z"}}]', row), 'web 1 []');
});

test('errors are reported like Go templates', () => {
  assert.throws(() => new Template('{{nope .X}}').execute({}), TemplateError);
  assert.throws(() => new Template('{{if .X}}'), /unexpected EOF/);
  assert.throws(() => new Template('{{end}}'), /unexpected/);
  assert.throws(() => run('{{.Name.Foo}}', inspect), /can't evaluate field Foo in type string/);
});

test('docker format preprocessing: table prefix and escapes', () => {
  assert.deepEqual(prepareFormat('table {{.ID}}\\t{{.Image}}'), { table: true, body: '{{.ID}}\t{{.Image}}' });
  assert.deepEqual(prepareFormat('{{.ID}}\\n'), { table: false, body: '{{.ID}}\n' });
});
