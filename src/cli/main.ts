// `berth`: a Docker-compatible CLI that talks to berthd only over the Engine API.
// Start-up is kept cheap: command modules are loaded only when their command runs.
import { ApiError, CliError } from './client';
import { checkArgs, helpText, parseFlags, UsageError } from './flags';
import { makeCtx, PROG, type CommandDef } from './context';

type Loader = () => Promise<Record<string, CommandDef>>;
const load: Record<string, Loader> = {
  run: () => import('./commands/run').then((m) => m.defs),
  container: () => import('./commands/container').then((m) => m.defs),
  image: () => import('./commands/image').then((m) => m.defs),
  system: () => import('./commands/system').then((m) => m.defs),
  usage: () => import('./commands/usage').then((m) => m.defs),
  prune: () => import('./commands/prune').then((m) => m.defs),
  volume: () => import('./commands/volume').then((m) => m.defs),
  registry: () => import('./commands/registry').then((m) => m.defs),
  build: () => import('./commands/build').then((m) => m.defs),
  distribution: () => import('./commands/distribution').then((m) => m.defs),
  network: () => import('./commands/network').then((m) => m.defs),
};

/** command path -> [module, def name] */
const top: Record<string, [string, string]> = {
  run: ['run', 'run'],
  create: ['run', 'create'],
  start: ['container', 'start'],
  stop: ['container', 'stop'],
  restart: ['container', 'restart'],
  kill: ['container', 'kill'],
  rm: ['container', 'rm'],
  ps: ['container', 'ps'],
  logs: ['container', 'logs'],
  exec: ['container', 'exec'],
  attach: ['container', 'attach'],
  wait: ['container', 'wait'],
  pause: ['container', 'pause'],
  unpause: ['container', 'unpause'],
  top: ['container', 'top'],
  rename: ['container', 'rename'],
  port: ['container', 'port'],
  diff: ['container', 'diff'],
  commit: ['container', 'commit'],
  cp: ['container', 'cp'],
  export: ['container', 'export'],
  update: ['container', 'update'],
  stats: ['usage', 'stats'],
  inspect: ['system', 'inspect'],
  version: ['system', 'version'],
  info: ['system', 'info'],
  events: ['system', 'events'],
  bootstrap: ['system', 'bootstrap'],
  images: ['image', 'images'],
  history: ['image', 'history'],
  tag: ['image', 'tag'],
  rmi: ['image', 'rmi'],
  import: ['image', 'import'],
  save: ['image', 'save'],
  load: ['image', 'load'],
  build: ['build', 'build'],
  pull: ['distribution', 'pull'],
  push: ['distribution', 'push'],
  login: ['distribution', 'login'],
  logout: ['distribution', 'logout'],
  search: ['distribution', 'search'],
};

const groups: Record<string, Record<string, [string, string]>> = {
  // Every top-level container command is also `berth container <cmd>`, plus Docker's group-only aliases.
  container: {
    ...Object.fromEntries(Object.entries(top).filter(([, [mod]]) => mod === 'run' || mod === 'container')),
    stats: ['usage', 'stats'],
    prune: ['prune', 'containerPrune'],
    ls: ['container', 'ps'],
    list: ['container', 'ps'],
    remove: ['container', 'rm'],
    inspect: ['container', 'inspect'],
  },
  image: {
    ls: ['image', 'images'],
    list: ['image', 'images'],
    inspect: ['image', 'inspect'],
    history: ['image', 'history'],
    tag: ['image', 'tag'],
    rm: ['image', 'rmi'],
    remove: ['image', 'rmi'],
    prune: ['prune', 'imagePrune'],
    import: ['image', 'import'],
    save: ['image', 'save'],
    load: ['image', 'load'],
    build: ['build', 'build'],
    why: ['build', 'image why'],
    pull: ['distribution', 'pull'],
    push: ['distribution', 'push'],
  },
  builder: {
    build: ['build', 'build'],
    prune: ['prune', 'builderPrune'],
  },
  volume: {
    create: ['volume', 'create'],
    inspect: ['volume', 'inspect'],
    ls: ['volume', 'ls'],
    list: ['volume', 'ls'],
    prune: ['prune', 'volumePrune'],
    rm: ['volume', 'rm'],
    remove: ['volume', 'rm'],
  },
  registry: {
    serve: ['registry', 'serve'],
    gc: ['registry', 'gc'],
  },
  network: {
    create: ['network', 'create'],
    inspect: ['network', 'inspect'],
    ls: ['network', 'ls'],
    list: ['network', 'ls'],
    prune: ['prune', 'networkPrune'],
    rm: ['network', 'rm'],
    remove: ['network', 'rm'],
    connect: ['network', 'connect'],
    disconnect: ['network', 'disconnect'],
  },
  system: {
    df: ['usage', 'df'],
    events: ['system', 'events'],
    info: ['system', 'info'],
    prune: ['prune', 'systemPrune'],
  },
};

const MAIN_HELP = `
Usage:  ${PROG} [OPTIONS] COMMAND

A Docker-compatible container engine

Options:
  -H, --host string   Daemon socket to connect to (default: $BERTH_HOST, $DOCKER_HOST, unix:///run/berth/berth.sock)
  -v, --version       Print version information and quit

Management Commands:
  builder     Manage builds
  container   Manage containers
  image       Manage images
  network     Manage networks
  registry    Run a registry server
  system      Manage Berth
  volume      Manage volumes

Commands:
  attach      Attach local standard input, output, and error streams to a running container
  bootstrap   Build a base image with debootstrap inside the daemon
  build       Build an image from a Dockerfile
  commit      Create a new image from a container's changes
  cp          Copy files/folders between a container and the local filesystem
  create      Create a new container
  diff        Inspect changes to files or directories on a container's filesystem
  events      Get real time events from the server
  exec        Run a command in a running container
  export      Export a container's filesystem as a tar archive
  history     Show the history of an image
  images      List images
  import      Import the contents from a tarball to create a filesystem image
  info        Display system-wide information
  inspect     Return low-level information on Berth objects
  kill        Kill one or more running containers
  load        Load an image from a tar archive or STDIN
  login       Log in to a registry
  logout      Log out from a registry
  logs        Fetch the logs of a container
  pause       Pause all processes within one or more containers
  port        List port mappings or a specific mapping for the container
  ps          List containers
  pull        Download an image from a registry
  push        Upload an image to a registry
  rename      Rename a container
  restart     Restart one or more containers
  rm          Remove one or more containers
  rmi         Remove one or more images
  run         Run a command in a new container
  save        Save one or more images to a tar archive (streamed to STDOUT by default)
  search      Search registries for images
  start       Start one or more stopped containers
  stats       Display a live stream of container(s) resource usage statistics
  stop        Stop one or more running containers
  tag         Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
  top         Display the running processes of a container
  unpause     Unpause all processes within one or more containers
  update      Update configuration of one or more containers
  version     Show the Berth version information
  wait        Block until one or more containers stop, then print their exit codes

Run '${PROG} COMMAND --help' for more information on a command.
`;

/** `berth <group> --help`: the group's commands with their one-line descriptions. */
async function groupHelp(g: string): Promise<string> {
  const titles: Record<string, string> = { builder: 'Manage builds', container: 'Manage containers', image: 'Manage images', registry: 'Run a registry server', network: 'Manage networks', system: 'Manage Berth', volume: 'Manage volumes' };
  const lines: string[] = [];
  // Aliases are accepted but not listed, as in docker's help.
  const aliases = new Set(['container list', 'container ps', 'container remove', 'image list', 'image remove', 'volume list', 'volume remove', 'network list', 'network remove']);
  for (const c of Object.keys(groups[g]).sort()) {
    if (aliases.has(`${g} ${c}`)) continue;
    const [mod, name] = groups[g][c];
    const description = (await load[mod]())[name].spec.description;
    lines.push(`  ${c.padEnd(11)} ${description}`);
  }
  return `\nUsage:  ${PROG} ${g} COMMAND\n\n${titles[g]}\n\nCommands:\n${lines.join('\n')}\n\nRun '${PROG} ${g} COMMAND --help' for more information on a command.\n`;
}

async function main(argv: string[]): Promise<number> {
  let host: string | undefined;
  let i = 0;
  // Global options come before the command.
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-H' || a === '--host') {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: ${a === '-H' ? "'H' in -H" : '--host'}`, mainSpec);
      host = argv[++i];
    } else if (a.startsWith('--host=')) host = a.slice(7);
    else if (a.startsWith('-H') && a.length > 2) host = a.slice(2).replace(/^=/, '');
    else if (a === '-D' || a === '--debug') continue;
    else if (a === '-v' || a === '--version') {
      process.stdout.write(`Berth version 0.1.0\n`);
      return 0;
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(MAIN_HELP);
      return 0;
    } else if (a.startsWith('-')) throw new UsageError(a.startsWith('--') ? `unknown flag: ${a.split('=')[0]}` : `unknown shorthand flag: '${a[1]}' in ${a}`, mainSpec);
    else break;
  }
  const cmd = argv[i];
  if (cmd === undefined) {
    process.stdout.write(MAIN_HELP);
    return 0;
  }
  let route: [string, string] | undefined;
  let rest: string[];
  if (groups[cmd]) {
    const sub = argv[i + 1];
    if (sub === undefined || sub === '--help' || sub === '-h') {
      process.stdout.write(await groupHelp(cmd));
      return 0;
    }
    route = groups[cmd][sub];
    if (!route) {
      process.stderr.write(`${PROG}: '${cmd} ${sub}' is not a ${PROG} command.\nSee '${PROG} ${cmd} --help'\n`);
      return 1;
    }
    rest = argv.slice(i + 2);
  } else {
    route = top[cmd];
    if (!route) {
      process.stderr.write(`${PROG}: '${cmd}' is not a ${PROG} command.\nSee '${PROG} --help'\n`);
      return 1;
    }
    rest = argv.slice(i + 1);
  }
  const def = (await load[route[0]]())[route[1]];
  const spec = def.spec;
  const parsed = parseFlags(spec, rest);
  if (parsed.help) {
    process.stdout.write(helpText(spec, PROG));
    return 0;
  }
  const argErr = checkArgs(spec, parsed.args, PROG);
  if (argErr) {
    process.stderr.write(`${argErr}\nSee '${PROG} ${spec.path} --help'.\n\nUsage:  ${PROG} ${spec.usage}\n\n${spec.description}\n`);
    return 1;
  }
  const ctx = makeCtx(host);
  return def.run(ctx, parsed);
}

const mainSpec = { path: '', usage: '[OPTIONS] COMMAND', description: '', flags: [] };

// A closed pipe on stdout (`berth events | head`) ends the command quietly, as in docker.
for (const s of [process.stdout, process.stderr]) {
  s.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}

main(process.argv.slice(2)).then(
  async (code) => {
    await new Promise<void>((r) => process.stdout.write('', () => r()));
    process.exit(code);
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      const where = e.spec.path ? `${PROG} ${e.spec.path}` : PROG;
      process.stderr.write(`${e.message}\nSee '${where} --help'.\n`);
      process.exit(e.code);
    } else if (e instanceof ApiError) {
      process.stderr.write(`Error response from daemon: ${e.message}\n`);
      process.exit(1);
    } else if (e instanceof CliError) {
      if (e.message) process.stderr.write(`${e.message}\n`);
      process.exit(e.exitCode);
    } else {
      process.stderr.write(`${(e as Error)?.message ?? String(e)}\n`);
      process.exit(1);
    }
  },
);
