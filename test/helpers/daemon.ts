/**
 * Test harness: a real berthd with its own temp roots and socket, plus
 * helpers to drive it through the API, `bin/berth` and the real docker CLI.
 * stop() undoes everything the daemon and its containers created on the
 * host (processes, runc state, mounts, cgroups, files), even after failures.
 *
 * Roots are short (/tmp/bt-XXXXXX) because conmon's attach socket path
 * must fit in sun_path (108 bytes).
 */
import { after, before } from 'node:test';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';

/** Repository root (dist/test/helpers -> repo). */
export const REPO_ROOT = process.env.BERTH_REPO_ROOT ?? path.resolve(__dirname, '..', '..', '..');
export const BERTH_BIN = path.join(REPO_ROOT, 'bin', 'berth');
export const BERTHD_BIN = path.join(REPO_ROOT, 'bin', 'berthd');
/** Prefix of every temp root; scripts/test.sh looks for leaks under it. */
export const TEMP_PREFIX = '/tmp/bt-';

export interface RunResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  cwd?: string;
}

export interface ApiResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any; // parsed JSON when the response is JSON, else the text
  raw: Buffer;
}

/** Runs a program to completion, collecting output. Never rejects on a non-zero exit. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, ...opts.env } as NodeJS.ProcessEnv,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      err.push(Buffer.from(`\n[harness] ${cmd} ${args.join(' ')}: killed after ${timeoutMs} ms\n`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? 128 + (signal ? os.constants.signals[signal] : 0),
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.on('error', () => undefined); // the program may exit before reading stdin
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** The docker CLIs to drive berthd with: Debian's first, then the newer one if installed. */
export function dockerClis(): string[] {
  const found = ['/usr/bin/docker', '/usr/local/bin/docker'].filter((p) => fs.existsSync(p));
  if (found.length > 0) return found;
  const which = spawnSync('sh', ['-c', 'command -v docker'], { encoding: 'utf8' });
  return which.status === 0 ? [which.stdout.trim()] : [];
}

export function defaultDockerCli(): string {
  const clis = dockerClis();
  if (clis.length === 0) throw new Error('no docker CLI installed (apt-get install docker.io)');
  return clis[0];
}

/** HTTP request over a unix socket; JSON bodies are encoded and decoded. */
export function apiRequest(socketPath: string, method: string, urlPath: string, body?: unknown,
  headers: Record<string, string> = {}): Promise<ApiResult> {
  return new Promise((resolve, reject) => {
    let payload: Buffer | undefined;
    const h: Record<string, string> = { ...headers };
    if (Buffer.isBuffer(body)) payload = body;
    else if (typeof body === 'string') payload = Buffer.from(body);
    else if (body !== undefined) {
      payload = Buffer.from(JSON.stringify(body));
      h['Content-Type'] = 'application/json';
    }
    if (payload) h['Content-Length'] = String(payload.length);
    else if (method !== 'GET' && method !== 'HEAD' && method !== 'DELETE') h['Content-Length'] = '0';
    const req = http.request({ socketPath, method, path: urlPath, headers: h, timeout: 120_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        const text = raw.toString('utf8');
        let parsed: any = text;
        if (String(res.headers['content-type'] ?? '').includes('json')) {
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = text; // a JSON-lines stream: callers split it themselves
          }
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed, raw });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export interface Daemon {
  /** unix socket path of the API */
  socket: string;
  /** `unix://<socket>`, the value of BERTH_HOST / DOCKER_HOST */
  host: string;
  base: string;
  dataRoot: string;
  execRoot: string;
  /** the daemon.json it reads (rewrite it, then restart() or SIGHUP) */
  configFile: string;
  /** pid of the current berthd process (changes on restart) */
  pid: number;
  api(method: string, urlPath: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResult>;
  /** Runs `bin/berth` with BERTH_HOST pointing at this daemon. */
  cli(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Runs a real docker CLI (default: /usr/bin/docker) with DOCKER_HOST pointing at this daemon. */
  docker(args: string[], opts?: RunOptions & { bin?: string }): Promise<RunResult>;
  /** Environment that points CLIs at this daemon (for `script -c` command lines). */
  env: Record<string, string>;
  /** The daemon's stderr so far (for assertion messages). */
  log(): string;
  /** SIGKILLs berthd (containers keep running under conmon). */
  kill9(): Promise<void>;
  /** Starts berthd again on the same roots (after kill9, or stops it gracefully first). */
  restart(): Promise<void>;
  /** Stops berthd and removes everything it and its containers left on the host. */
  stop(): Promise<void>;
  /** Set by bootstrapBusybox once busybox exists in this daemon. */
  busybox?: Promise<void>;
}

export interface StartOptions {
  /** extra berthd flags */
  args?: string[];
  env?: Record<string, string>;
  /** daemon.json content */
  config?: Record<string, unknown>;
  /**
   * Settings the harness normally passes as flags, given in daemon.json instead (a key may not be
   * both): the data root under `dataRootKey` ('graph' is its old name), the cgroup parent.
   */
  inFile?: { dataRootKey?: 'data-root' | 'graph'; cgroupParent?: boolean };
  /** Start bin/berthd as a user does (its bash launcher execs node with argv[0] "berthd"), not `node bin/berthd`. */
  launcher?: boolean;
  /** As systemd's berth.socket: the socket is bound before berthd runs and passed as fd 3 (`-H fd://`). */
  socketActivation?: boolean;
}

/**
 * Binds and listens on a unix socket, then execs the command with it as fd 3 and LISTEN_FDS/LISTEN_PID
 * set, exactly as systemd starts a socket-activated service (exec keeps the pid, so LISTEN_PID holds).
 */
const SOCKET_ACTIVATOR = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o660); s.listen(128)
if s.fileno() != 3: os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ['LISTEN_FDS'] = '1'; os.environ['LISTEN_PID'] = str(os.getpid())
os.execvp(sys.argv[2], sys.argv[2:])
`;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A directory's entries; none when it cannot be read (gone, or not a directory). */
function entriesOf(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

/** Cgroup directories whose name mentions berth (to tell which ones a run created). */
function berthCgroups(): Set<string> {
  const found = new Set<string>();
  const walk = (dir: string, depth: number) => {
    if (depth > 4) return;
    for (const e of entriesOf(dir)) {
      if (!e.isDirectory()) continue;
      const p = path.join(dir, e.name);
      if (e.name.includes('berth')) found.add(p);
      if (depth < 4) walk(p, depth + 1);
    }
  };
  walk('/sys/fs/cgroup', 0);
  return found;
}

/** The cgroup parent a test daemon's containers live under (unique per daemon). */
export function cgroupParentOf(base: string): string {
  return `/berth-${path.basename(base)}`;
}

/**
 * One daemon with busybox for the calling test file: started in before(), stopped (and everything
 * it left removed) in after(). Returns a stand-in that forwards to that daemon once it runs, so a
 * file can write `const d = busyboxDaemonForFile();` at top level; `d.pid` follows restarts.
 */
export function busyboxDaemonForFile(opts: StartOptions = {}): Daemon {
  let daemon: Daemon | undefined;
  before(async () => {
    daemon = await startDaemon(opts);
    await bootstrapBusybox(daemon);
  });
  after(async () => { await daemon?.stop(); });
  return new Proxy({} as Daemon, {
    get(_target, prop) {
      if (!daemon) throw new Error('the test daemon was used before before() started it');
      const value = (daemon as any)[prop];
      return typeof value === 'function' ? value.bind(daemon) : value;
    },
  });
}

export async function startDaemon(opts: StartOptions = {}): Promise<Daemon> {
  const base = fs.mkdtempSync(TEMP_PREFIX);
  const dataRoot = path.join(base, 'd');
  const execRoot = path.join(base, 'x');
  const socket = path.join(execRoot, 'berth.sock');
  const configFile = path.join(base, 'daemon.json');
  const dockerConfig = path.join(base, 'docker-config'); // keeps ~/.docker out of the tests
  fs.mkdirSync(dataRoot, { mode: 0o711 });
  fs.mkdirSync(execRoot, { mode: 0o711 });
  fs.mkdirSync(dockerConfig);
  const fileConfig: Record<string, unknown> = { ...opts.config };
  if (opts.inFile?.dataRootKey) fileConfig[opts.inFile.dataRootKey] = dataRoot;
  if (opts.inFile?.cgroupParent) fileConfig['cgroup-parent'] = cgroupParentOf(base);
  fs.writeFileSync(configFile, JSON.stringify(fileConfig));
  const cgroupsBefore = berthCgroups();
  // scripts/test.sh's leak check looks for network objects carrying these tags.
  if (process.env.BERTH_NET_TAGS) fs.appendFileSync(process.env.BERTH_NET_TAGS, `${networkTagOf(dataRoot)}\n`);
  const host = `unix://${socket}`;
  const env: Record<string, string> = { BERTH_HOST: host, DOCKER_HOST: host, DOCKER_CONFIG: dockerConfig };

  let child: ChildProcess | undefined;
  let logText = '';
  let stopped = false;
  let expectingExit = false;

  const spawnDaemon = async () => {
    fs.rmSync(socket, { force: true });
    expectingExit = false;
    const berthd = opts.launcher ? [BERTHD_BIN] : [process.execPath, BERTHD_BIN];
    const [cmd, ...pre] = opts.socketActivation ? ['python3', '-c', SOCKET_ACTIVATOR, socket, ...berthd] : berthd;
    const c = spawn(cmd!, [...pre,
      ...(opts.inFile?.dataRootKey ? [] : ['--data-root', dataRoot]), '--exec-root', execRoot,
      '-H', opts.socketActivation ? 'fd://' : host, '--config-file', configFile,
      // Own cgroup parent: the host's /berth (a real daemon's) is never touched, and cleanup removes ours whole.
      ...(opts.inFile?.cgroupParent ? [] : ['--cgroup-parent', cgroupParentOf(base)]),
      // Never change the host's forwarding sysctl: tests only talk to 127.0.0.0/8 and container addresses.
      '--ip-forward=false', ...(opts.args ?? [])], {
      // Registry traffic to anything but loopback goes to a dead proxy: a test that pulls a missing
      // image from Docker Hub fails at once instead of reaching the network (loopback is never proxied).
      env: { ...process.env, HTTP_PROXY: 'http://127.0.0.1:9', HTTPS_PROXY: 'http://127.0.0.1:9', NO_PROXY: '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    const onData = (b: Buffer) => {
      logText += b.toString('utf8');
      if (logText.length > 256 * 1024) logText = logText.slice(-128 * 1024);
    };
    c.stdout!.on('data', onData);
    c.stderr!.on('data', onData);
    let exited = false;
    c.on('exit', (code, signal) => {
      exited = true;
      // A daemon that dies on its own is a bug: show why in the test output.
      if (child === c && !expectingExit) {
        process.stderr.write(`[harness] berthd (pid ${c.pid}) exited unexpectedly (code ${code}, signal ${signal}); last log lines:\n` +
          logText.split('\n').slice(-30).join('\n') + '\n');
      }
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exited) throw new Error(`berthd exited during start-up:\n${logText}`);
      if (fs.existsSync(socket)) {
        try {
          const r = await apiRequest(socket, 'GET', '/_ping');
          if (r.status === 200) break;
        } catch {
          // not listening yet
        }
      }
      if (Date.now() > deadline) throw new Error(`berthd did not answer /_ping within 30 s:\n${logText}`);
      await sleep(50);
    }
  };

  const waitExit = async (c: ChildProcess, ms: number): Promise<boolean> => {
    if (c.exitCode !== null || c.signalCode !== null) return true;
    return await Promise.race([
      new Promise<boolean>((r) => c.once('exit', () => r(true))),
      sleep(ms).then(() => false),
    ]);
  };

  const stopDaemonProcess = async (signal: NodeJS.Signals) => {
    const c = child;
    if (!c || c.pid === undefined) return;
    expectingExit = true;
    if (c.exitCode === null && c.signalCode === null) {
      c.kill(signal);
      if (!(await waitExit(c, 10_000))) {
        c.kill('SIGKILL');
        await waitExit(c, 5_000);
      }
    }
  };

  const d: Daemon = {
    socket, host, base, dataRoot, execRoot, configFile, env,
    get pid() {
      return child?.pid ?? -1;
    },
    api: (method, urlPath, body, headers) => apiRequest(socket, method, urlPath, body, headers),
    cli: (args, o = {}) => run(process.execPath, [BERTH_BIN, ...args], { ...o, env: { ...env, ...o.env } }),
    docker: (args, o = {}) => run(o.bin ?? defaultDockerCli(), args, { ...o, env: { ...env, ...o.env } }),
    log: () => logText,
    kill9: async () => {
      await stopDaemonProcess('SIGKILL');
    },
    restart: async () => {
      await stopDaemonProcess('SIGTERM');
      await spawnDaemon();
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      try {
        await stopDaemonProcess('SIGTERM');
      } finally {
        await cleanupRoots(base, execRoot, dataRoot, cgroupsBefore);
      }
    },
  };
  try {
    await spawnDaemon();
  } catch (err) {
    await d.stop();
    throw err;
  }
  return d;
}

/** Ids of containers this daemon knew: 64-hex directory names under its roots. */
function containerIdsUnder(roots: string[]): Set<string> {
  const ids = new Set<string>();
  const walk = (dir: string, depth: number) => {
    for (const e of entriesOf(dir)) {
      const name = e.name.replace(/\.json$/, '');
      if (/^[0-9a-f]{64}$/.test(name)) ids.add(name);
      if (e.isDirectory() && depth < 4 && !/^[0-9a-f]{64}$/.test(e.name)) walk(path.join(dir, e.name), depth + 1);
    }
  };
  for (const r of roots) walk(r, 0);
  return ids;
}

function runcRoots(execRoot: string): string[] {
  // <execRoot>/runc by convention; also any dir holding runc state (state.json one level down).
  const roots = new Set<string>();
  const walk = (dir: string, depth: number) => {
    for (const e of entriesOf(dir)) {
      if (!e.isDirectory()) continue;
      const p = path.join(dir, e.name);
      if (fs.existsSync(path.join(p, 'state.json'))) roots.add(dir);
      else if (depth < 3) walk(p, depth + 1);
    }
  };
  if (fs.existsSync(path.join(execRoot, 'runc'))) roots.add(path.join(execRoot, 'runc'));
  walk(execRoot, 0);
  return [...roots];
}

function mountsUnder(prefix: string): string[] {
  let text = '';
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const decoded = mp.replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    if (decoded === prefix || decoded.startsWith(prefix + '/')) out.push(decoded);
  }
  return out;
}

/** Pids whose command line mentions `needle` (never this process). */
function pidsMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(needle)) pids.push(pid);
    } catch {
      // gone
    }
  }
  return pids;
}

/** Undoes everything under a test daemon's roots. Best effort at every step; never throws. */
export async function cleanupRoots(base: string, execRoot: string, dataRoot: string, cgroupsBefore: Set<string>): Promise<void> {
  const ids = containerIdsUnder([execRoot, dataRoot]);
  // 1. containers: runc delete -f kills the container's processes and removes its cgroups.
  for (const root of runcRoots(execRoot)) {
    const list = spawnSync('runc', ['--root', root, 'list', '-q'], { encoding: 'utf8', timeout: 20_000 });
    const names = (list.stdout ?? '').split('\n').map((s) => s.trim()).filter(Boolean);
    for (const n of names) {
      ids.add(n);
      spawnSync('runc', ['--root', root, 'delete', '-f', n], { timeout: 20_000 });
    }
  }
  // 2. processes started for this run (conmon, a berthd the CLI auto-started, runc): they mention our roots.
  for (let round = 0; round < 3; round++) {
    const pids = pidsMentioning(base);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await sleep(100);
  }
  // 3. cgroups created during this run for our containers: kill what is left in them, remove deepest first.
  const leftover = [...berthCgroups()]
    .filter((p) => !cgroupsBefore.has(p))
    .filter((p) => p.includes(cgroupParentOf(base)) || [...ids].some((id) => p.includes(id)) || [...ids].some((id) => p.includes(id.slice(0, 12))));
  const withChildren = new Set<string>();
  for (const cg of leftover) {
    const walk = (dir: string) => {
      withChildren.add(dir);
      for (const e of entriesOf(dir)) if (e.isDirectory()) walk(path.join(dir, e.name));
    };
    walk(cg);
  }
  const cgDirs = [...withChildren].sort((a, b) => b.length - a.length);
  for (const cg of cgDirs) {
    try {
      for (const pid of fs.readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone
        }
      }
    } catch {
      // no procs file
    }
  }
  if (cgDirs.length) await sleep(100);
  for (const cg of cgDirs) {
    try {
      // a frozen (paused) cgroup must be thawed before its processes can die
      if (fs.existsSync(path.join(cg, 'freezer.state'))) fs.writeFileSync(path.join(cg, 'freezer.state'), 'THAWED');
    } catch {
      // ignore
    }
    try {
      fs.rmdirSync(cg);
    } catch {
      // busy or gone
    }
  }
  // 4. mounts, deepest first; lazy unmount as a fallback.
  for (let round = 0; round < 3; round++) {
    const mounts = mountsUnder(base).sort((a, b) => b.length - a.length);
    if (mounts.length === 0) break;
    for (const m of mounts) {
      const r = spawnSync('umount', [m], { timeout: 20_000 });
      if (r.status !== 0) spawnSync('umount', ['-l', m], { timeout: 20_000 });
    }
  }
  // 5. network objects named after this daemon's data root: veths, bridges, its nftables table.
  removeNetworkObjects(dataRoot);
  // 6. files; --one-file-system so nothing mounted from elsewhere is ever deleted through.
  spawnSync('rm', ['-rf', '--one-file-system', base], { timeout: 120_000 });
}

/** The tag berthd derives from its data root for host network object names (network/service.ts). */
export function networkTagOf(dataRoot: string): string {
  return createHash('sha256').update(path.resolve(dataRoot)).digest('hex').slice(0, 5);
}

/** Links (`b<tag>…` bridges, `v<tag>…` veths) and the `berth-<tag>` nftables table of one data root. */
export function networkObjectsOf(dataRoot: string): { links: string[]; table: boolean; table6: boolean } {
  const tag = networkTagOf(dataRoot);
  const links = entriesOf('/sys/class/net').map((e) => e.name).filter((n) => n.startsWith(`b${tag}`) || n.startsWith(`v${tag}`));
  const tables = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8', timeout: 20_000 }).stdout ?? '';
  const has = (family: string) => tables.split('\n').some((l) => l.trim() === `table ${family} berth-${tag}`);
  return { links, table: has('ip'), table6: has('ip6') };
}

function removeNetworkObjects(dataRoot: string): void {
  const { links, table, table6 } = networkObjectsOf(dataRoot);
  // veths first (a bridge with ports goes too, but this keeps the order obvious)
  for (const l of links.sort((a, b) => (a[0] === 'v' ? -1 : 1) - (b[0] === 'v' ? -1 : 1))) spawnSync('ip', ['link', 'del', l], { timeout: 20_000 });
  if (table) spawnSync('nft', ['delete', 'table', 'ip', `berth-${networkTagOf(dataRoot)}`], { timeout: 20_000 });
  if (table6) spawnSync('nft', ['delete', 'table', 'ip6', `berth-${networkTagOf(dataRoot)}`], { timeout: 20_000 });
}

/**
 * Makes sure `busybox` exists in this daemon (once per daemon), through the
 * daemon's bootstrap endpoint (the same the CLI's `berth bootstrap busybox` uses).
 */
export function bootstrapBusybox(d: Daemon): Promise<void> {
  if (!d.busybox) {
    d.busybox = (async () => {
      const r = await d.api('POST', '/berth/bootstrap?image=busybox');
      if (r.status !== 200 && r.status !== 201) {
        throw new Error(`bootstrap busybox: HTTP ${r.status}: ${r.raw.toString('utf8')}`);
      }
      const check = await d.api('GET', '/images/busybox/json');
      if (check.status !== 200) throw new Error(`bootstrap busybox: image not found afterwards (HTTP ${check.status})`);
    })();
  }
  return d.busybox;
}

/** A daemon with busybox, stopped and cleaned up after the calling test file/suite. */
export async function daemonWithBusybox(after: (fn: () => Promise<void>) => void, opts?: StartOptions): Promise<Daemon> {
  const d = await startDaemon(opts);
  after(() => d.stop());
  await bootstrapBusybox(d);
  return d;
}

/** Polls fn until it returns a truthy value or the time runs out. */
export async function waitFor<T>(what: string, fn: () => Promise<T> | T, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}

export { sleep, alive };

export { mountsUnder, pidsMentioning };

/** Asserts a CLI run succeeded, with its output in the failure message. */
export function ok(r: RunResult, what = 'command'): RunResult {
  if (r.code !== 0) {
    throw new Error(`${what} exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  }
  return r;
}

/** Rows of busybox `ps` output ("PID USER [TIME] COMMAND"): [{pid, command}]. */
export function parsePs(text: string): Array<{ pid: number; command: string }> {
  const lines = text.split('\n');
  const cols = (lines[0] ?? '').trim().split(/\s+/);
  const ci = cols.indexOf('COMMAND') >= 0 ? cols.indexOf('COMMAND') : cols.indexOf('CMD');
  const rows: Array<{ pid: number; command: string }> = [];
  for (const line of lines.slice(1)) {
    const parts = line.trim().split(/\s+/);
    if (!/^\d+$/.test(parts[0] ?? '') || ci < 0) continue;
    rows.push({ pid: Number(parts[0]), command: parts.slice(ci).join(' ') });
  }
  return rows;
}
