/** berthd's log on stderr, filtered by the live `log-level`/`debug` settings (both reloadable by SIGHUP). */
import { LOG_LEVELS, type DaemonConfig, type LogLevel } from '../engine/config';

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export function createLogger(config: DaemonConfig, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const at = (level: LogLevel) => (msg: string) => {
    const threshold = config.debug ? 'debug' : config.logLevel;
    if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(threshold)) return;
    write(`${new Date().toISOString()} level=${level} ${msg}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
