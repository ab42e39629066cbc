// `berth registry serve|gc`: the registry server runs in this process; it never talks to berthd.
import { CliError } from '../client';
import type { CommandDef } from '../context';
import type { CommandSpec, FlagSpec } from '../flags';

const spec = (path: string, usage: string, description: string, flags: FlagSpec[], extra: Partial<CommandSpec> = {}): CommandSpec => ({ path, usage, description, flags, ...extra });

const serve: CommandDef = {
  spec: spec('registry serve', 'registry serve [OPTIONS]', 'Run a registry server (OCI distribution API)', [
    { long: 'addr', kind: 'string', def: '127.0.0.1:5000', usage: 'Address to listen on (host:port)' },
    { long: 'root', kind: 'string', def: '/var/lib/berth-registry', usage: 'Storage directory' },
    { long: 'htpasswd', kind: 'string', usage: 'htpasswd file (bcrypt) for basic authentication' },
    { long: 'tls-cert', kind: 'string', usage: 'TLS certificate (PEM)' },
    { long: 'tls-key', kind: 'string', usage: 'TLS private key (PEM)' },
    { long: 'token-realm', kind: 'string', usage: 'Token authentication: the realm URL clients get tokens from (this server answers <url>/token unless --token-rootcertbundle)' },
    { long: 'token-service', kind: 'string', def: 'berth-registry', usage: 'Token authentication: the service name (the tokens\' audience)' },
    { long: 'token-issuer', kind: 'string', usage: 'Token authentication: the issuer name (the tokens\' iss claim)' },
    { long: 'token-rootcertbundle', kind: 'string', usage: 'Token authentication by an outside token server: PEM certificates its signing keys chain to; tokens are only verified' },
    { long: 'log-requests', kind: 'bool', usage: 'Log every request to stderr' },
  ], { maxArgs: 0 }),
  async run(ctx, p) {
    const o = p.opts;
    if (Boolean(o['tls-cert']) !== Boolean(o['tls-key'])) throw new CliError('--tls-cert and --tls-key go together', 1);
    if (o['token-rootcertbundle'] && !(o['token-realm'] && o['token-issuer'])) throw new CliError('--token-rootcertbundle needs --token-realm and --token-issuer (the outside token server)', 1);
    if (o['token-rootcertbundle'] && o.htpasswd) throw new CliError('--htpasswd does not go with --token-rootcertbundle (the token server authenticates users)', 1);
    const { RegistryServer } = await import('../../registry/server/server');
    const log = (s: string) => ctx.err(`${new Date().toISOString()} ${s}\n`);
    let server: InstanceType<typeof RegistryServer>;
    try {
      server = new RegistryServer({
        root: o.root, addr: o.addr, htpasswd: o.htpasswd || undefined, tlsCert: o['tls-cert'] || undefined, tlsKey: o['tls-key'] || undefined,
        tokenRealm: o['token-realm'] || undefined, tokenService: o['token-service'],
        tokenIssuer: o['token-issuer'] || undefined, tokenRootCertBundle: o['token-rootcertbundle'] || undefined,
        log, logRequests: o['log-requests'],
      });
    } catch (e) {
      throw new CliError(`registry: ${(e as Error).message}`, 1);
    }
    const addr = await server.start().catch((e: Error) => { throw new CliError(`registry: ${e.message}`, 1); });
    log(`listening on ${addr} (${o['tls-cert'] ? 'https' : 'http'}, root ${o.root})`);
    await new Promise<void>((resolve) => {
      const stop = () => void server.close().then(resolve);
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    return 0;
  },
};

const gc: CommandDef = {
  spec: spec('registry gc', 'registry gc [OPTIONS]', 'Delete blobs no manifest references (stop the server first)', [
    { long: 'root', kind: 'string', def: '/var/lib/berth-registry', usage: 'Storage directory' },
    { long: 'dry-run', short: 'd', kind: 'bool', usage: 'Only print what would be deleted' },
  ], { maxArgs: 0 }),
  async run(ctx, p) {
    const { collectGarbage } = await import('../../registry/server/gc');
    await collectGarbage(p.opts.root, { dryRun: p.opts['dry-run'], log: (s) => ctx.out(`${s}\n`) });
    return 0;
  },
};

export const defs: Record<string, CommandDef> = { serve, gc };
