/**
 * docker-compose 1.29 (Debian's, on docker-py) against berthd, as the seed notes' three-tier app: a service
 * built from a Dockerfile, a user-defined network with an alias, a named volume and a port published on
 * 127.0.0.1; then `down -v` leaves no container, network or volume.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as http from 'node:http';
import * as path from 'node:path';
import { busyboxDaemonForFile, ok, run, waitFor } from '../helpers/daemon';

const d = busyboxDaemonForFile();

/** A port on 127.0.0.1 nothing listens on now (the kernel's pick). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

test('docker-compose build, up, DNS by alias, published port, exec, logs, down -v', async () => {
  const dir = path.join(d.base, 'leafy');
  fs.mkdirSync(path.join(dir, 'web'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'web', 'Dockerfile'),
    'FROM busybox\nRUN mkdir -p /www && echo hello-from-compose > /www/index.html\nEXPOSE 80\nCMD ["httpd", "-f", "-p", "80", "-h", "/www"]\n');
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'docker-compose.yml'), [
    'version: "3.8"',
    'services:',
    '  db:',
    '    image: busybox',
    '    command: httpd -f -p 5432',
    '    networks: [back]',
    '  api:',
    '    image: busybox',
    '    command: sh -c "echo api-says-hi > /i.html; exec httpd -f -p 8080 -h /"',
    '    environment:',
    '      DB_URL: db',
    '    networks:',
    '      back:',
    '        aliases: [backend]',
    '  web:',
    '    build: ./web',
    '    image: leafy-web:1',
    `    ports: ["127.0.0.1:${port}:80"]`,
    '    depends_on: [api, db]',
    '    networks: [back]',
    '    volumes: [data:/data]',
    'networks:',
    '  back: {}',
    'volumes:',
    '  data: {}',
    '',
  ].join('\n'));
  const compose = (...args: string[]) => run('docker-compose', ['-p', 'leafy', ...args],
    { cwd: dir, env: { ...d.env, COMPOSE_DOCKER_CLI_BUILD: '0' }, timeoutMs: 120_000 });

  const built = ok(await compose('build'), 'docker-compose build');
  assert.match(built.stdout + built.stderr, /Successfully tagged leafy-web:1/);

  ok(await compose('up', '-d'), 'docker-compose up -d');
  assert.equal(await waitFor('the published port', () => httpGet(port).catch(() => undefined)), 'hello-from-compose\n');

  const ps = ok(await compose('ps')).stdout;
  assert.match(ps, new RegExp(`leafy_web_1 .*Up\\s+127\\.0\\.0\\.1:${port}->80/tcp`));
  assert.match(ps, /leafy_api_1 .*Up/);

  // Name resolution on the project network: by alias and by service name, from the built service.
  const byAlias = ok(await compose('exec', '-T', 'web', 'wget', '-qO-', 'http://backend:8080/i.html'), 'exec by alias');
  assert.equal(byAlias.stdout, 'api-says-hi\n');
  ok(await compose('exec', '-T', 'web', 'wget', '-qO-', 'http://api:8080/i.html'), 'exec by service name');

  const net = JSON.parse(ok(await d.docker(['network', 'inspect', 'leafy_back'])).stdout)[0];
  assert.equal(Object.keys(net.Containers).length, 3);
  assert.equal(net.Labels['com.docker.compose.network'], 'back');
  const vol = JSON.parse(ok(await d.docker(['volume', 'inspect', 'leafy_data'])).stdout)[0];
  assert.equal(vol.Labels['com.docker.compose.volume'], 'data');

  ok(await compose('down', '-v'), 'docker-compose down -v');
  assert.equal(ok(await d.docker(['ps', '-aq', '--filter', 'label=com.docker.compose.project=leafy'])).stdout, '');
  assert.doesNotMatch(ok(await d.docker(['network', 'ls'])).stdout, /leafy_back/);
  assert.doesNotMatch(ok(await d.docker(['volume', 'ls', '-q'])).stdout, /leafy_data/);
  await assert.rejects(httpGet(port), 'nothing answers on the port once the project is down');
});
