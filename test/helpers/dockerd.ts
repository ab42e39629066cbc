/**
 * A real dockerd (Debian docker.io) with its own data root, exec root,
 * socket and pidfile, no bridge and no iptables, for round-trip tests.
 * stop() ends it (and the containerd it started) and removes its roots.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { apiRequest, cleanupRoots, defaultDockerCli, pidsMentioning, run, sleep, type RunOptions, type RunResult } from './daemon';

export interface Dockerd {
  socket: string;
  host: string;
  base: string;
  pid: number;
  docker(args: string[], opts?: RunOptions): Promise<RunResult>;
  stop(): Promise<void>;
}

/** Debian's docker.io installs dockerd in /usr/sbin. */
export const DOCKERD_BIN = ['/usr/sbin/dockerd', '/usr/bin/dockerd'].find((p) => fs.existsSync(p)) ?? 'dockerd';

export async function startDockerd(): Promise<Dockerd> {
  // Short paths: containerd's sockets live under the exec root.
  const base = fs.mkdtempSync('/tmp/bd-');
  const dataRoot = path.join(base, 'd');
  const execRoot = path.join(base, 'x');
  const socket = path.join(base, 'docker.sock');
  const configFile = path.join(base, 'daemon.json');
  const dockerConfig = path.join(base, 'cli');
  fs.mkdirSync(dockerConfig);
  fs.writeFileSync(configFile, '{}');
  const host = `unix://${socket}`;
  let log = '';
  const child: ChildProcess = spawn(DOCKERD_BIN, [
    '--data-root', dataRoot, '--exec-root', execRoot, '-H', host, '--pidfile', path.join(base, 'docker.pid'),
    '--config-file', configFile, '--bridge', 'none', '--iptables=false', '--ip-masq=false', '--ip6tables=false',
    '--storage-driver', 'overlay2',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let spawnFailed = false;
  child.on('error', (e) => {
    spawnFailed = true;
    log += `spawn ${DOCKERD_BIN}: ${e.message}\n`;
  });
  child.stdout!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-64 * 1024)));
  child.stderr!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-64 * 1024)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const done = await Promise.race([new Promise<boolean>((r) => child.once('exit', () => r(true))), sleep(20_000).then(() => false)]);
      if (!done) child.kill('SIGKILL');
    }
    // containerd and shims it started mention our roots; end only those.
    for (const pid of pidsMentioning(base)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await cleanupRoots(base, execRoot, dataRoot, new Set());
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || spawnFailed) {
      await stop();
      throw new Error(`dockerd exited during start-up:\n${log}`);
    }
    try {
      if (fs.existsSync(socket) && (await apiRequest(socket, 'GET', '/_ping')).status === 200) break;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`dockerd did not start within 60 s:\n${log}`);
    }
    await sleep(100);
  }
  return {
    socket, host, base, pid: child.pid!,
    docker: (args, o = {}) => run(defaultDockerCli(), args, { ...o, env: { DOCKER_HOST: host, DOCKER_CONFIG: dockerConfig, ...o.env } }),
    stop,
  };
}
