// `berth run` / `berth create`: flags -> create body exactly as the docker CLI builds it,
// then docker's run flow: create (pull on 404) -> attach -> wait -> start -> stream.
// Long (~790 lines) because docker run has ~100 flags, each mapped here once; the
// container commands reuse its helpers (resource flags, tty, signals, wait).
import * as fs from 'node:fs';
import { forEachLine } from '../jsonlines';
import { ApiClient, ApiError, CliError, type Hijacked } from '../client';
import type { CommandDef, Ctx } from '../context';
import { keyValueMap, type FlagSpec, type Parsed } from '../flags';
import { ramInBytes } from '../units';
import { flushStdio, pump, terminalSize } from '../streams';
import { familiarName, parseReference, withDefaultTag } from '../../common/reference';
import { withClientProxies } from '../proxyenv';
import { registryAuthHeader } from '../registryauth';
import { healthcheckFromFlags, healthFlags } from '../health-flags';

const memFlag = (long: string, short: string | undefined, usage: string): FlagSpec => ({ long, short, kind: 'string', valueName: 'bytes', usage, convert: (v) => ramInBytes(v) });

// Like Go's big.Rat.SetString as the docker CLI uses it: signed decimals, exponents and a/b
// fractions parse; the range check (0.01..N) is the daemon's, so `--cpus -1` reaches it.
const cpusConvert = (v: string): number => {
  const frac = /^([+-]?\d+)\/(\d+)$/.exec(v);
  const value = frac ? Number(frac[1]) / Number(frac[2]) : /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(value)) throw new Error(`failed to parse ${v} as a rational number`);
  const nanos = value * 1e9;
  if (Math.abs(nanos - Math.round(nanos)) > 1e-6) throw new Error('value is too precise');
  return Math.round(nanos);
};

const commonFlags: FlagSpec[] = [
  { long: 'add-host', kind: 'list', usage: 'Add a custom host-to-IP mapping (host:ip)' },
  { long: 'attach', short: 'a', kind: 'list', usage: 'Attach to STDIN, STDOUT or STDERR' },
  { long: 'cap-add', kind: 'list', usage: 'Add Linux capabilities' },
  { long: 'cap-drop', kind: 'list', usage: 'Drop Linux capabilities' },
  { long: 'cgroup-parent', kind: 'string', usage: 'Optional parent cgroup for the container' },
  { long: 'cgroupns', kind: 'string', usage: 'Cgroup namespace to use (host|private); the daemon\'s default when empty' },
  { long: 'cidfile', kind: 'string', usage: 'Write the container ID to the file' },
  { long: 'cpu-period', kind: 'int', usage: 'Limit CPU CFS (Completely Fair Scheduler) period' },
  { long: 'cpu-quota', kind: 'int', usage: 'Limit CPU CFS (Completely Fair Scheduler) quota' },
  { long: 'cpu-shares', short: 'c', kind: 'int', usage: 'CPU shares (relative weight)' },
  { long: 'cpus', kind: 'string', valueName: 'decimal', usage: 'Number of CPUs', convert: cpusConvert },
  { long: 'cpuset-cpus', kind: 'string', usage: 'CPUs in which to allow execution (0-3, 0,1)' },
  { long: 'cpuset-mems', kind: 'string', usage: 'MEMs in which to allow execution (0-3, 0,1)' },
  { long: 'device', kind: 'list', usage: 'Add a host device to the container' },
  { long: 'dns', kind: 'list', usage: 'Set custom DNS servers' },
  { long: 'dns-option', kind: 'list', usage: 'Set DNS options' },
  { long: 'dns-search', kind: 'list', usage: 'Set custom DNS search domains' },
  { long: 'domainname', kind: 'string', usage: 'Container NIS domain name' },
  { long: 'entrypoint', kind: 'string', usage: 'Overwrite the default ENTRYPOINT of the image' },
  { long: 'env', short: 'e', kind: 'list', usage: 'Set environment variables' },
  { long: 'env-file', kind: 'list', usage: 'Read in a file of environment variables' },
  { long: 'expose', kind: 'list', usage: 'Expose a port or a range of ports' },
  { long: 'group-add', kind: 'list', usage: 'Add additional groups to join' },
  ...healthFlags,
  { long: 'hostname', short: 'h', kind: 'string', usage: 'Container host name' },
  { long: 'init', kind: 'bool', usage: 'Run an init inside the container that forwards signals and reaps processes' },
  { long: 'interactive', short: 'i', kind: 'bool', usage: 'Keep STDIN open even if not attached' },
  { long: 'ipc', kind: 'string', usage: 'IPC mode to use' },
  { long: 'label', short: 'l', kind: 'list', usage: 'Set meta data on a container' },
  { long: 'label-file', kind: 'list', usage: 'Read in a line delimited file of labels' },
  { long: 'log-driver', kind: 'string', usage: 'Logging driver for the container' },
  { long: 'log-opt', kind: 'list', usage: 'Log driver options' },
  memFlag('memory', 'm', 'Memory limit'),
  memFlag('memory-reservation', undefined, 'Memory soft limit'),
  { long: 'memory-swap', kind: 'string', valueName: 'bytes', usage: "Swap limit equal to memory plus swap: '-1' to enable unlimited swap", convert: (v) => (v === '-1' ? -1 : ramInBytes(v)) },
  { long: 'memory-swappiness', kind: 'int', def: -1, usage: 'Tune container memory swappiness (0 to 100)' },
  { long: 'mount', kind: 'list', valueName: 'mount', usage: 'Attach a filesystem mount to the container' },
  { long: 'name', kind: 'string', usage: 'Assign a name to the container' },
  { long: 'network', kind: 'string', valueName: 'network', usage: 'Connect a container to a network' },
  { long: 'network-alias', kind: 'list', usage: 'Add network-scoped alias for the container' },
  { long: 'ip', kind: 'string', usage: 'IPv4 address (e.g., 172.30.100.104)' },
  { long: 'ip6', kind: 'string', usage: 'IPv6 address (e.g., 2001:db8::33)' },
  { long: 'mac-address', kind: 'string', usage: 'Container MAC address (e.g., 92:d0:c6:0a:29:33)' },
  { long: 'link', kind: 'list', usage: 'Add link to another container' },
  { long: 'net', kind: 'string', hidden: true },
  { long: 'no-healthcheck', kind: 'bool', usage: 'Disable any container-specified HEALTHCHECK' },
  { long: 'oom-kill-disable', kind: 'bool', usage: 'Disable OOM Killer' },
  { long: 'oom-score-adj', kind: 'int', usage: "Tune host's OOM preferences (-1000 to 1000)" },
  { long: 'pid', kind: 'string', usage: 'PID namespace to use' },
  { long: 'pids-limit', kind: 'int', usage: 'Tune container pids limit (set -1 for unlimited)' },
  { long: 'platform', kind: 'string', usage: 'Set platform if server is multi-platform capable' },
  { long: 'privileged', kind: 'bool', usage: 'Give extended privileges to this container' },
  { long: 'publish', short: 'p', kind: 'list', usage: "Publish a container's port(s) to the host" },
  { long: 'publish-all', short: 'P', kind: 'bool', usage: 'Publish all exposed ports to random ports' },
  { long: 'pull', kind: 'string', def: 'missing', usage: 'Pull image before running ("always", "missing", "never")' },
  { long: 'quiet', short: 'q', kind: 'bool', usage: 'Suppress the pull output' },
  { long: 'read-only', kind: 'bool', usage: "Mount the container's root filesystem as read only" },
  { long: 'restart', kind: 'string', def: 'no', usage: 'Restart policy to apply when a container exits' },
  { long: 'runtime', kind: 'string', usage: 'Runtime to use for this container' },
  { long: 'rm', kind: 'bool', usage: 'Automatically remove the container and its associated anonymous volumes when it exits' },
  { long: 'security-opt', kind: 'list', usage: 'Security Options' },
  memFlag('shm-size', undefined, 'Size of /dev/shm'),
  { long: 'stop-signal', kind: 'string', usage: 'Signal to stop the container' },
  { long: 'stop-timeout', kind: 'int', usage: 'Timeout (in seconds) to stop a container' },
  { long: 'sysctl', kind: 'list', valueName: 'map', usage: 'Sysctl options' },
  { long: 'tmpfs', kind: 'list', usage: 'Mount a tmpfs directory' },
  { long: 'tty', short: 't', kind: 'bool', usage: 'Allocate a pseudo-TTY' },
  { long: 'ulimit', kind: 'list', valueName: 'ulimit', usage: 'Ulimit options' },
  { long: 'user', short: 'u', kind: 'string', usage: 'Username or UID (format: <name|uid>[:<group|gid>])' },
  { long: 'userns', kind: 'string', usage: 'User namespace to use' },
  { long: 'uts', kind: 'string', usage: 'UTS namespace to use' },
  { long: 'volume', short: 'v', kind: 'list', usage: 'Bind mount a volume' },
  { long: 'volumes-from', kind: 'list', usage: 'Mount volumes from the specified container(s)' },
  { long: 'workdir', short: 'w', kind: 'string', usage: 'Working directory inside the container' },
];

/** The resource flags `update` shares with run/create (same names, parsing and help). */
export function resourceFlags(): FlagSpec[] {
  const names = ['blkio-weight', 'cpu-period', 'cpu-quota', 'cpu-rt-period', 'cpu-rt-runtime', 'cpu-shares', 'cpus', 'cpuset-cpus', 'cpuset-mems', 'memory', 'memory-reservation', 'memory-swap', 'pids-limit'];
  return commonFlags.filter((f) => names.includes(f.long));
}

const runOnly: FlagSpec[] = [
  { long: 'detach', short: 'd', kind: 'bool', usage: 'Run container in background and print container ID' },
  { long: 'detach-keys', kind: 'string', usage: 'Override the key sequence for detaching a container' },
  { long: 'sig-proxy', kind: 'bool', def: true, usage: 'Proxy received signals to the process' },
];

// Byte order, as Go's sort.Strings in the docker CLI; localeCompare's ICU collator costs ~9 ms to set up.
const byLong = (a: FlagSpec, b: FlagSpec): number => (a.long < b.long ? -1 : a.long > b.long ? 1 : 0);

export const runSpec = {
  path: 'run',
  usage: 'run [OPTIONS] IMAGE [COMMAND] [ARG...]',
  description: 'Run a command in a new container',
  flags: [...commonFlags, ...runOnly].sort(byLong),
  interspersed: false,
  minArgs: 1,
  aliases: ['berth container run', 'berth run'],
};

export const createSpec = {
  path: 'create',
  usage: 'create [OPTIONS] IMAGE [COMMAND] [ARG...]',
  description: 'Create a new container',
  flags: [...commonFlags].sort(byLong),
  interspersed: false,
  minArgs: 1,
  aliases: ['berth container create', 'berth create'],
};

/** A run/create failure in docker's shape: `berth: <msg>.` + `See 'berth run --help'.` */
export class RunError extends CliError {}

function runFail(cmd: string, msg: string, code = 125): RunError {
  return new RunError(`berth: ${msg}.\nSee 'berth ${cmd} --help'.`, code);
}

function readKVFile(file: string, what: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`open ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
  }
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) continue;
    if (what === 'env' && !line.includes('=')) {
      // `NAME` alone: take the value from our environment, skip when unset
      const v = process.env[line.trimEnd()];
      if (v !== undefined) out.push(`${line.trimEnd()}=${v}`);
      continue;
    }
    out.push(line.trimEnd());
  }
  return out;
}

function envList(o: Record<string, any>): string[] {
  const out: string[] = [];
  for (const f of o['env-file'] as string[]) out.push(...readKVFile(f, 'env'));
  for (const e of o.env as string[]) {
    if (e.includes('=')) out.push(e);
    else if (process.env[e] !== undefined) out.push(`${e}=${process.env[e]}`);
  }
  return out;
}

function labelMap(o: Record<string, any>): Record<string, string> {
  const lines: string[] = [];
  for (const f of o['label-file'] as string[]) lines.push(...readKVFile(f, 'label'));
  lines.push(...(o.label as string[]));
  return keyValueMap(lines);
}

// The docker CLI (opts.ParseRestartPolicy) only splits "name[:count]"; unknown names, counts on
// other policies and negative counts are the daemon's to reject, with its words.
export function parseRestart(s: string): { Name: string; MaximumRetryCount: number } {
  if (s === '') return { Name: 'no', MaximumRetryCount: 0 };
  const i = s.indexOf(':');
  const name = i < 0 ? s : s.slice(0, i);
  const count = i < 0 ? '' : s.slice(i + 1);
  if (name === '') throw new Error('invalid restart policy format: no policy provided before colon');
  if (count !== '') {
    if (!/^[+-]?\d+$/.test(count)) throw new Error('invalid restart policy format: maximum retry count must be an integer');
    return { Name: name, MaximumRetryCount: Number(count) };
  }
  return { Name: name, MaximumRetryCount: 0 };
}

const ulimitNames = new Set(['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack']);

function parseUlimit(s: string): { Name: string; Hard: number; Soft: number } {
  const [name, limits] = s.split('=');
  if (limits === undefined) throw new Error(`invalid ulimit argument: ${s}`);
  if (!ulimitNames.has(name)) throw new Error(`invalid ulimit type: ${name}`);
  const [soft, hard] = limits.split(':');
  const n = (x: string): number => {
    if (!/^-?\d+$/.test(x)) throw new Error(`invalid ulimit value: ${x}`);
    return Number(x);
  };
  const sv = n(soft);
  const hv = hard === undefined ? sv : n(hard);
  if (sv > hv && hv !== -1) throw new Error(`ulimit soft limit must be less than or equal to hard limit: ${sv} > ${hv}`);
  return { Name: name, Hard: hv, Soft: sv };
}

/** -p [ip:][hostPort:]containerPort[/proto] -> ExposedPorts + PortBindings */
function parsePorts(specs: string[], expose: string[]): { exposed: Record<string, object>; bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> } {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  const range = (s: string): [number, number] => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(s);
    if (!m) throw new Error(`invalid containerPort: ${s}`);
    return [Number(m[1]), Number(m[2] ?? m[1])];
  };
  for (const spec of specs) {
    let rest = spec;
    let proto = 'tcp';
    const slash = rest.lastIndexOf('/');
    if (slash >= 0) {
      proto = rest.slice(slash + 1).toLowerCase();
      rest = rest.slice(0, slash);
      if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new Error(`invalid proto: ${proto}`);
    }
    let ip = '';
    let hostPort = '';
    let ctr: string;
    const ipv6 = /^\[([^\]]+)\]:(.*)$/.exec(rest);
    if (ipv6) {
      ip = ipv6[1];
      rest = ipv6[2];
    }
    const parts = rest.split(':');
    if (parts.length === 1) ctr = parts[0];
    else if (parts.length === 2) [hostPort, ctr] = parts;
    else if (parts.length === 3 && !ipv6) [ip, hostPort, ctr] = parts;
    else throw new Error(`invalid port format for --publish: ${spec}`);
    if (ctr === '') throw new Error(`no port specified: ${spec}<empty>`);
    const [c0, c1] = range(ctr);
    let h0 = 0;
    let h1 = 0;
    if (hostPort) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(hostPort);
      if (!m) throw new Error(`invalid hostPort: ${hostPort}`);
      h0 = Number(m[1]);
      h1 = Number(m[2] ?? m[1]);
      if (m[2] === undefined && c1 !== c0) h1 = h0;
    }
    for (let p = c0; p <= c1; p++) {
      const key = `${p}/${proto}`;
      exposed[key] = {};
      let hp = '';
      if (hostPort) hp = h1 !== h0 || c1 !== c0 ? String(h0 === h1 ? h0 : h0 + (p - c0)) : String(h0);
      (bindings[key] ??= []).push({ HostIp: ip, HostPort: hp });
    }
  }
  for (const e of expose) {
    let rest = e;
    let proto = 'tcp';
    const slash = rest.indexOf('/');
    if (slash >= 0) {
      proto = rest.slice(slash + 1);
      rest = rest.slice(0, slash);
    }
    const [a, b] = range(rest);
    for (let p = a; p <= b; p++) exposed[`${p}/${proto}`] = {};
  }
  return { exposed, bindings };
}

function parseDevice(s: string): { PathOnHost: string; PathInContainer: string; CgroupPermissions: string } {
  const parts = s.split(':');
  let perms = 'rwm';
  let src = parts[0];
  let dst = parts[0];
  if (parts.length === 2) {
    if (/^[rwm]+$/.test(parts[1])) perms = parts[1];
    else dst = parts[1];
  } else if (parts.length === 3) {
    dst = parts[1];
    perms = parts[2];
    if (!/^[rwm]+$/.test(perms)) throw new Error(`invalid device mode: ${perms}`);
  } else if (parts.length > 3) throw new Error(`invalid device specification: ${s}`);
  if (!dst.startsWith('/')) throw new Error(`invalid device path: ${dst}`);
  src = src || dst;
  return { PathOnHost: src, PathInContainer: dst, CgroupPermissions: perms };
}

export interface BuiltCreate {
  body: Record<string, unknown>;
  name: string;
  pull: string;
  platform: string;
  attach: { stdin: boolean; stdout: boolean; stderr: boolean };
}

/** Builds the POST /containers/create body the way the docker CLI does (field order included). */
export function buildCreate(o: Record<string, any>, args: string[], detach: boolean, changed: Set<string>): BuiltCreate {
  const image = args[0];
  const cmd = args.length > 1 ? args.slice(1) : null;
  const tty: boolean = o.tty;
  const interactive: boolean = o.interactive;
  let attachStdin = false;
  let attachStdout = false;
  let attachStderr = false;
  const attachList = (o.attach as string[]).map((a) => a.toLowerCase());
  for (const a of attachList) if (!['stdin', 'stdout', 'stderr'].includes(a)) throw new Error(`invalid argument "${a}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR`);
  if (detach) {
    if (attachList.length) throw new Error('Conflicting options: -a and -d');
  } else if (attachList.length) {
    attachStdin = attachList.includes('stdin');
    attachStdout = attachList.includes('stdout');
    attachStderr = attachList.includes('stderr');
  } else {
    attachStdout = true;
    attachStderr = true;
    attachStdin = interactive;
  }
  if (!['always', 'missing', 'never'].includes(o.pull)) throw new Error(`invalid pull option: '${o.pull}': must be one of "always", "missing" or "never"`);
  const restart = parseRestart(o.restart);
  if (o.rm && restart.Name !== 'no' && restart.Name !== '') throw new Error('conflicting options: cannot specify both --restart and --rm');

  const binds: string[] = [];
  const volumes: Record<string, object> = {};
  for (const v of o.volume as string[]) {
    const parts = v.split(':');
    if (parts.length === 1) {
      if (!v.startsWith('/')) throw new Error(`invalid volume specification: '${v}': invalid mount config for type "volume": invalid mount path: '${v}' mount path must be absolute`);
      volumes[v] = {};
    } else {
      if (parts.length > 3 || parts[1] === '') throw new Error(`invalid volume specification: '${v}'`);
      if (!parts[1].startsWith('/')) throw new Error(`invalid volume specification: '${v}': invalid mount config for type "bind": invalid mount path: '${parts[1]}' mount path must be absolute`);
      binds.push(v);
    }
  }
  const tmpfs: Record<string, string> = {};
  for (const t of o.tmpfs as string[]) {
    const i = t.indexOf(':');
    if (i < 0) tmpfs[t] = '';
    else tmpfs[t.slice(0, i)] = t.slice(i + 1);
  }
  const sysctls: Record<string, string> = {};
  for (const s of o.sysctl as string[]) {
    const i = s.indexOf('=');
    if (i < 0) throw new Error(`invalid argument "${s}" for "--sysctl" flag: ${s} is not a valid sysctl value`);
    sysctls[s.slice(0, i)] = s.slice(i + 1);
  }
  const { exposed, bindings } = parsePorts(o.publish, o.expose);
  for (const h of o['add-host'] as string[]) if (!/^[^:]+:.+$/.test(h)) throw new Error(`invalid argument "${h}" for "--add-host" flag: bad format for add-host: "${h}"`);
  const network: string = o.network || o.net || 'default';
  let entrypoint: string[] | null = null;
  if (changed.has('entrypoint')) entrypoint = o.entrypoint === '' ? [''] : [o.entrypoint];
  let hostname: string = o.hostname;
  let domainname: string = o.domainname;
  if (hostname && !domainname && hostname.includes('.') === false) domainname = '';
  const consoleSize = tty && !detach ? terminalSize() : null;
  const stopTimeout = changed.has('stop-timeout') ? o['stop-timeout'] : undefined;
  const logConfig: Record<string, unknown> = { Type: o['log-driver'], Config: {} as Record<string, string> };
  for (const lo of o['log-opt'] as string[]) {
    const i = lo.indexOf('=');
    (logConfig.Config as Record<string, string>)[i < 0 ? lo : lo.slice(0, i)] = i < 0 ? '' : lo.slice(i + 1);
  }

  const config: Record<string, unknown> = {
    Hostname: hostname,
    Domainname: domainname,
    User: o.user,
    AttachStdin: attachStdin,
    AttachStdout: attachStdout,
    AttachStderr: attachStderr,
  };
  if (Object.keys(exposed).length) config.ExposedPorts = exposed;
  Object.assign(config, {
    Tty: tty,
    OpenStdin: interactive,
    StdinOnce: interactive && attachStdin,
    Env: (() => {
      const e = envList(o);
      return e.length ? e : null;
    })(),
    Cmd: cmd,
  });
  const healthcheck = healthcheckFromFlags(o);
  if (healthcheck) config.Healthcheck = healthcheck;
  Object.assign(config, {
    Image: image,
    Volumes: volumes,
    WorkingDir: o.workdir,
    Entrypoint: entrypoint,
    OnBuild: null,
    Labels: labelMap(o),
  });
  if (o['stop-signal']) config.StopSignal = o['stop-signal'];
  if (stopTimeout !== undefined) config.StopTimeout = stopTimeout;

  const ulimits = (o.ulimit as string[]).map(parseUlimit);
  const hostConfig: Record<string, unknown> = {
    Binds: binds.length ? binds : null,
    ContainerIDFile: o.cidfile,
    LogConfig: logConfig,
    NetworkMode: network,
    PortBindings: bindings,
    RestartPolicy: restart,
    AutoRemove: o.rm,
    VolumeDriver: '',
    VolumesFrom: (o['volumes-from'] as string[]).length ? o['volumes-from'] : null,
    ConsoleSize: consoleSize ? [consoleSize.h, consoleSize.w] : [0, 0],
    CapAdd: (o['cap-add'] as string[]).length ? o['cap-add'] : null,
    CapDrop: (o['cap-drop'] as string[]).length ? o['cap-drop'] : null,
    CgroupnsMode: o.cgroupns,
    Dns: o.dns,
    DnsOptions: o['dns-option'],
    DnsSearch: o['dns-search'],
    ExtraHosts: (o['add-host'] as string[]).length ? o['add-host'] : null,
    GroupAdd: (o['group-add'] as string[]).length ? o['group-add'] : null,
    IpcMode: o.ipc,
    Cgroup: '',
    Links: (o.link as string[]).length ? o.link : null,
    OomScoreAdj: o['oom-score-adj'],
    PidMode: o.pid,
    Privileged: o.privileged,
    PublishAllPorts: o['publish-all'],
    ReadonlyRootfs: o['read-only'],
    SecurityOpt: (o['security-opt'] as string[]).length ? o['security-opt'] : null,
  };
  if (Object.keys(tmpfs).length) hostConfig.Tmpfs = tmpfs;
  Object.assign(hostConfig, {
    UTSMode: o.uts,
    UsernsMode: o.userns,
    ShmSize: changed.has('shm-size') ? o['shm-size'] : 0,
  });
  if (Object.keys(sysctls).length) hostConfig.Sysctls = sysctls;
  if (o.runtime) hostConfig.Runtime = o.runtime;
  Object.assign(hostConfig, {
    Isolation: '',
    CpuShares: o['cpu-shares'],
    Memory: changed.has('memory') ? o.memory : 0,
    NanoCpus: changed.has('cpus') ? o.cpus : 0,
    CgroupParent: o['cgroup-parent'],
    BlkioWeight: 0,
    BlkioWeightDevice: [],
    BlkioDeviceReadBps: [],
    BlkioDeviceWriteBps: [],
    BlkioDeviceReadIOps: [],
    BlkioDeviceWriteIOps: [],
    CpuPeriod: o['cpu-period'],
    CpuQuota: o['cpu-quota'],
    CpuRealtimePeriod: 0,
    CpuRealtimeRuntime: 0,
    CpusetCpus: o['cpuset-cpus'],
    CpusetMems: o['cpuset-mems'],
    Devices: (o.device as string[]).map(parseDevice),
    DeviceCgroupRules: null,
    DeviceRequests: null,
    MemoryReservation: changed.has('memory-reservation') ? o['memory-reservation'] : 0,
    MemorySwap: changed.has('memory-swap') ? o['memory-swap'] : 0,
    MemorySwappiness: o['memory-swappiness'],
    OomKillDisable: o['oom-kill-disable'],
    PidsLimit: o['pids-limit'],
    Ulimits: ulimits,
    CpuCount: 0,
    CpuPercent: 0,
    IOMaximumIOps: 0,
    IOMaximumBandwidth: 0,
  });
  const mounts = (o.mount as string[]).map(parseMount);
  if (mounts.length) hostConfig.Mounts = mounts;
  Object.assign(hostConfig, { MaskedPaths: null, ReadonlyPaths: null });
  if (o.init) hostConfig.Init = true;

  const endpoint = {
    IPAMConfig: o.ip || o.ip6 ? { ...(o.ip ? { IPv4Address: o.ip } : {}), ...(o.ip6 ? { IPv6Address: o.ip6 } : {}) } : null,
    Links: (o.link as string[]).length ? o.link : null,
    Aliases: (o['network-alias'] as string[]).length ? o['network-alias'] : null,
    MacAddress: o['mac-address'] ?? '',
    DriverOpts: null,
    GwPriority: 0,
    NetworkID: '',
    EndpointID: '',
    Gateway: '',
    IPAddress: '',
    IPPrefixLen: 0,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    DNSNames: null,
  };
  const body = { ...config, HostConfig: hostConfig, NetworkingConfig: { EndpointsConfig: { [network]: endpoint } } };
  return { body, name: o.name, pull: o.pull, platform: o.platform, attach: { stdin: attachStdin, stdout: attachStdout, stderr: attachStderr } };
}

/** --mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,bind-propagation=…][,volume-…][,tmpfs-…] as HostConfig.Mounts */
function parseMount(s: string): Record<string, unknown> {
  const m: Record<string, any> = { Type: 'volume' };
  const flag = (v: string, i: number): boolean => i < 0 || ['true', '1'].includes(v.toLowerCase());
  const bad = (msg: string): Error => new Error(`invalid argument "${s}" for "--mount" flag: ${msg}`);
  const volumeOptions = () => (m.VolumeOptions ??= {});
  for (const kv of s.split(',')) {
    const i = kv.indexOf('=');
    const k = (i < 0 ? kv : kv.slice(0, i)).trim().toLowerCase();
    const v = i < 0 ? '' : kv.slice(i + 1);
    switch (k) {
      case 'type': m.Type = v; break;
      case 'source': case 'src': m.Source = v; break;
      case 'target': case 'destination': case 'dst': m.Target = v; break;
      case 'readonly': case 'ro': m.ReadOnly = flag(v, i); break;
      case 'consistency': m.Consistency = v; break;
      case 'bind-propagation': m.BindOptions = { ...(m.BindOptions ?? {}), Propagation: v }; break;
      case 'volume-nocopy': volumeOptions().NoCopy = flag(v, i); break;
      case 'volume-label': {
        const j = v.indexOf('=');
        volumeOptions().Labels = { ...(volumeOptions().Labels ?? {}), [j < 0 ? v : v.slice(0, j)]: j < 0 ? '' : v.slice(j + 1) };
        break;
      }
      case 'volume-driver': volumeOptions().DriverConfig = { ...(volumeOptions().DriverConfig ?? {}), Name: v }; break;
      case 'volume-opt': {
        const j = v.indexOf('=');
        const dc = (volumeOptions().DriverConfig ??= {});
        dc.Options = { ...(dc.Options ?? {}), [j < 0 ? v : v.slice(0, j)]: j < 0 ? '' : v.slice(j + 1) };
        break;
      }
      case 'tmpfs-size': {
        let n: number;
        try { n = ramInBytes(v); } catch { throw bad(`invalid value for tmpfs-size: ${v}`); }
        m.TmpfsOptions = { ...(m.TmpfsOptions ?? {}), SizeBytes: n };
        break;
      }
      case 'tmpfs-mode': {
        if (!/^[0-7]+$/.test(v)) throw bad(`invalid value for tmpfs-mode: ${v}`);
        m.TmpfsOptions = { ...(m.TmpfsOptions ?? {}), Mode: parseInt(v, 8) };
        break;
      }
      default:
        throw bad(`unexpected key '${k}' in '${kv}'`);
    }
  }
  if (!m.Target) throw bad('target is required');
  return m;
}

/** Prints a JSON-lines progress stream (pull, load, import, bootstrap) like jsonmessage without a TTY. */
export async function printProgress(r: { res: NodeJS.ReadableStream }, write: (s: string) => void, quiet = false): Promise<Record<string, unknown>[]> {
  const msgs: Record<string, unknown>[] = [];
  await forEachLine(r.res, handle);
  return msgs;

  function handle(line: string): void {
    let m: Record<string, any>;
    try {
      m = JSON.parse(line);
    } catch {
      if (!quiet) write(line + '\n');
      return;
    }
    msgs.push(m);
    if (m.errorDetail || m.error) throw new CliError(String(m.errorDetail?.message ?? m.error), 1);
    if (quiet) return;
    if (m.stream !== undefined) {
      write(String(m.stream));
      return;
    }
    if (m.status === undefined) return;
    // Lines that only carry a progress bar are skipped without a TTY.
    if (m.progressDetail && Object.keys(m.progressDetail).length && m.status !== 'Pull complete') return;
    write(`${m.id ? `${m.id}: ` : ''}${m.status}${m.progress && process.stderr.isTTY ? ' ' + m.progress : ''}\n`);
  }
}

export async function pullImage(api: ApiClient, image: string, platform: string, write: (s: string) => void, quiet: boolean, allTags = false): Promise<void> {
  const ref = allTags ? parseReference(image) : withDefaultTag(parseReference(image));
  const query: Record<string, string> = { fromImage: familiarName(ref) };
  if (ref.digest) query.tag = ref.digest;
  else if (!allTags) query.tag = ref.tag!;
  if (platform) query.platform = platform;
  const r = await api.request('POST', '/images/create', { query, headers: { 'X-Registry-Auth': registryAuthHeader(ref.domain) } });
  await printProgress(r, write, quiet);
}

function familiarImage(image: string): string {
  try {
    const ref = withDefaultTag(parseReference(image));
    return `${familiarName(ref)}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
  } catch {
    return image;
  }
}

async function createContainer(ctx: Ctx, api: ApiClient, b: BuiltCreate, cmdName: string, quiet: boolean): Promise<string> {
  const query: Record<string, string> = {};
  if (b.name) query.name = b.name;
  if (b.platform && b.platform !== 'linux/amd64' && b.platform !== 'linux') query.platform = b.platform;
  const image = String(b.body.Image);
  const attempt = async (): Promise<Record<string, any>> => {
    const r = await api.request('POST', '/containers/create', { query, body: b.body, allowError: true });
    if (r.status >= 400) throw await ApiClient.errorOf(r);
    return r.json();
  };
  let res: Record<string, any>;
  try {
    if (b.pull === 'always') await pullImage(api, image, b.platform, ctx.err, quiet);
    res = await attempt();
  } catch (e) {
    if (e instanceof ApiError && e.status === 404 && /^No such image/.test(e.message) && b.pull === 'missing') {
      ctx.err(`Unable to find image '${familiarImage(image)}' locally\n`);
      try {
        await pullImage(api, image, b.platform, ctx.err, quiet);
        res = await attempt();
      } catch (e2) {
        throw runFail(cmdName, `Error response from daemon: ${(e2 as Error).message}`);
      }
    } else if (e instanceof ApiError) throw runFail(cmdName, `Error response from daemon: ${e.message}`);
    else throw e;
  }
  for (const w of (res.Warnings as string[] | null) ?? []) ctx.err(`WARNING: ${w}\n`);
  const cidfile = b.body.HostConfig && (b.body.HostConfig as Record<string, string>).ContainerIDFile;
  if (typeof cidfile === "string" && cidfile) fs.writeFileSync(cidfile, String(res.Id));
  return res.Id;
}

/** docker's exit code for a failed start: 126 permission problems, 127 missing executable. */
function startErrorCode(msg: string): number {
  if (/executable file not found|no such file or directory|not found/.test(msg)) return 127;
  if (/permission denied|cannot execute|exec format error/.test(msg)) return 126;
  return 125;
}

const SIG_PROXY = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

/** Forwards our signals to the container as kill?signal=. Returns the remover. */
export function proxySignals(api: ApiClient, id: string): () => void {
  const handlers = SIG_PROXY.map((sig) => {
    const h = (): void => {
      api.request('POST', `/containers/${id}/kill`, { query: { signal: sig.slice(3) } }).then(
        (r) => r.res.resume(),
        () => undefined,
      );
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  return () => handlers.forEach(([s, h]) => process.removeListener(s, h));
}

/**
 * Keeps the container's TTY size in step with ours: once now, then on SIGWINCH.
 * One resize request is in flight at a time and the size is read again when it
 * ends: `stty rows R cols C` changes the size in two steps, and two requests on
 * two connections may be applied out of order, leaving the half-way size.
 */
export function monitorTty(resize: (h: number, w: number) => Promise<void>): () => void {
  if (!process.stdout.isTTY) return () => undefined;
  let inFlight = false;
  let again = false;
  let sent = '';
  const send = (): void => {
    if (inFlight) {
      again = true;
      return;
    }
    const s = terminalSize();
    if (!s || `${s.h}x${s.w}` === sent) return;
    inFlight = true;
    resize(s.h, s.w)
      .then(() => void (sent = `${s.h}x${s.w}`), () => undefined)
      .finally(() => {
        inFlight = false;
        if (again) {
          again = false;
          send();
        }
      });
  };
  send();
  process.on('SIGWINCH', send);
  return () => process.removeListener('SIGWINCH', send);
}

export async function resizeContainer(api: ApiClient, id: string, h: number, w: number): Promise<void> {
  const r = await api.request('POST', `/containers/${id}/resize`, { query: { h, w }, allowError: true });
  r.res.resume();
}

/** A pending `wait` whose body arrives when the container exits. */
export function waitExit(api: ApiClient, id: string, condition: string): Promise<number> {
  return (async () => {
    const r = await api.request('POST', `/containers/${id}/wait`, { query: condition ? { condition } : undefined, allowError: true });
    if (r.status >= 400) throw await ApiClient.errorOf(r);
    const j = await r.json();
    if (j?.Error?.Message) throw new CliError(`Error response from daemon: ${j.Error.Message}`, 125);
    return Number(j?.StatusCode ?? 0);
  })();
}

async function runCmd(ctx: Ctx, p: Parsed, isRun: boolean): Promise<number> {
  const o = p.opts;
  const cmdName = isRun ? 'run' : 'create';
  const detach = isRun ? Boolean(o.detach) : true;
  let built: BuiltCreate;
  try {
    // `create` sets the attach flags (and StdinOnce) as a foreground run would, as docker's does.
    built = buildCreate(o, p.args, isRun && detach, p.changed);
  } catch (e) {
    throw runFail(cmdName, (e as Error).message);
  }
  if (isRun && !detach && o.tty && built.attach.stdin && !process.stdin.isTTY) {
    throw new CliError('the input device is not a TTY', 1);
  }
  const api = await ctx.api();
  const env = withClientProxies((built.body.Env as string[] | null) ?? [], api.host);
  built.body.Env = env.length ? env : null;
  const id = await createContainer(ctx, api, built, cmdName, o.quiet);
  if (!isRun) {
    ctx.out(`${id}\n`);
    return 0;
  }
  const tty: boolean = o.tty;
  const { stdin, stdout, stderr } = built.attach;
  // Sent before the attach, not after it (one round trip less before start).
  const exitP = waitExit(api, id, o.rm ? 'removed' : 'next-exit');
  exitP.catch(() => undefined);
  let hijacked: Hijacked | null = null;
  if (!detach && (stdin || stdout || stderr)) {
    const q: Record<string, number> = { stream: 1 };
    if (stdin) q.stdin = 1;
    if (stdout) q.stdout = 1;
    if (stderr) q.stderr = 1;
    if (o['detach-keys']) (q as Record<string, unknown>).detachKeys = o['detach-keys'];
    try {
      hijacked = await api.hijack(`/containers/${id}/attach`, q);
    } catch (e) {
      if (e instanceof ApiError) throw runFail(cmdName, `Error response from daemon: ${e.message}`);
      throw e;
    }
  }
  let pumpP: Promise<string> | null = null;
  let stopSignals = (): void => undefined;
  let stopResize = (): void => undefined;
  if (hijacked) {
    // Streams are wired before start so no early output is lost; stdin may be sent
    // before the process runs (the daemon buffers it).
    pumpP = pump(hijacked, { tty, stdin, detachKeys: o['detach-keys'] });
    pumpP.catch(() => undefined);
    if (!tty && o['sig-proxy']) stopSignals = proxySignals(api, id);
  }
  try {
    const r = await api.request('POST', `/containers/${id}/start`, { allowError: true });
    if (r.status >= 400) throw await ApiClient.errorOf(r);
    r.res.resume();
  } catch (e) {
    stopSignals();
    hijacked?.socket.destroy();
    if (e instanceof ApiError) {
      // Like docker, let the daemon finish removing an --rm container, but never hang on it.
      if (o.rm) await Promise.race([exitP.catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
      // docker prints start failures without the `See ... --help` hint.
      throw new RunError(`berth: Error response from daemon: ${e.message}.`, startErrorCode(e.message));
    }
    throw e;
  }
  if (detach) {
    ctx.out(`${id}\n`);
    return 0;
  }
  if (tty && process.stdout.isTTY) stopResize = monitorTty((h, w) => resizeContainer(api, id, h, w));
  let result = 'eof';
  if (pumpP) result = await pumpP;
  stopResize();
  if (result === 'detached') {
    stopSignals();
    await flushStdio();
    ctx.err('read escape sequence\n');
    return 0;
  }
  let code: number;
  try {
    code = await exitP;
  } finally {
    stopSignals();
  }
  await flushStdio();
  return code;
}

export const defs: Record<string, CommandDef> = {
  run: { spec: runSpec, run: (ctx, p) => runCmd(ctx, p, true) },
  create: { spec: createSpec, run: (ctx, p) => runCmd(ctx, p, false) },
};


