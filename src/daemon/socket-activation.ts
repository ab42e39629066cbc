/**
 * systemd socket activation (`-H fd://`, as dockerd with docker.socket): systemd holds the API
 * socket, so it exists with its owner and mode before berthd starts and clients queue instead of
 * failing while berthd restarts. The protocol (sd_listen_fds): fds 3.. are the sockets, their count
 * in LISTEN_FDS, meant for the process whose pid is LISTEN_PID.
 */
import { ConfigError } from './daemon-config';

const SD_LISTEN_FDS_START = 3;

/** The inherited listening fds, once; the variables are removed so no child (conmon, runc) sees them. */
export function takeActivatedFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number[] {
  const count = Number(env.LISTEN_FDS);
  const forUs = Number(env.LISTEN_PID) === pid;
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (!forUs || !Number.isInteger(count) || count < 1) return [];
  return Array.from({ length: count }, (_, i) => SD_LISTEN_FDS_START + i);
}

/** The fds one `fd://` or `fd://N` host stands for; dockerd's words when there are none. */
export function fdsForHost(host: string, activated: number[]): number[] {
  if (activated.length === 0) throw new ConfigError('no sockets found via socket activation: make sure the service was started by systemd');
  const want = host.slice('fd://'.length);
  if (want === '') return activated;
  const fd = Number(want);
  if (!activated.includes(fd)) throw new ConfigError(`too few socket activated files passed in by systemd: fd ${want} was not passed`);
  return [fd];
}
