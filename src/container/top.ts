/**
 * `docker top`: run the host's `ps` once and keep the rows whose PID belongs
 * to the container, as dockerd does (daemon/top_unix.go).
 *
 * Usage (container service):
 *   const pids = await readCgroupPids(...);        // host PIDs of the container
 *   return await containerTop(pids, psArgs);       // { Titles, Processes }
 */
import { execFile } from 'node:child_process';
import { BerthError, internal, invalidArgument } from '../common/errors';

export interface TopResult { Titles: string[]; Processes: string[][] }

/** Refuses `-o x=PID`-style renames of the PID column to another key, as Docker does. */
export function validatePsArgs(psArgs: string): void {
  const re = /\s+(\S*)=\s*(PID\S*)/g;
  for (const m of psArgs.matchAll(re)) {
    if (m[1] !== 'pid') throw invalidArgument(`specifying "${m[1]}=${m[2]}" is not allowed`);
  }
}

/** Splits on ASCII whitespace only (Go's fieldsASCII). */
function fieldsAscii(line: string): string[] {
  return line.split(/[ \t\n\v\f\r]+/).filter((f) => f !== '');
}

/**
 * Parses `ps` output and keeps the container's rows. The last column (the
 * command) keeps its spaces. Thread rows (`-` in the PID column, with `ps m`)
 * follow their process.
 */
export function parsePsOutput(output: string, pids: readonly number[]): TopResult {
  const lines = output.split('\n');
  const titles = fieldsAscii(lines[0] ?? '');
  const pidIndex = titles.indexOf('PID');
  if (pidIndex < 0) throw internal("Couldn't find PID field in ps output");
  const wanted = new Set(pids);
  const processes: string[][] = [];
  let previousMatched = false;
  const add = (fields: string[]) => {
    const row = fields.slice(0, titles.length - 1);
    row.push(fields.slice(titles.length - 1).join(' '));
    processes.push(row);
  };
  for (const line of lines.slice(1)) {
    if (line.length === 0) continue;
    const fields = fieldsAscii(line);
    const pidField = fields[pidIndex];
    if (pidField === undefined) continue;
    if (pidField === '-') {
      if (previousMatched) add(fields);
      continue;
    }
    const p = Number(pidField);
    if (!Number.isInteger(p)) throw internal(`Unexpected pid '${pidField}': invalid syntax`);
    previousMatched = wanted.has(p);
    if (previousMatched) add(fields);
  }
  return { Titles: titles, Processes: processes };
}

function runPs(args: string[]): Promise<{ stdout: string } | { error: Error; stderr: string }> {
  return new Promise((resolve) => {
    execFile('ps', args, { maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) resolve({ error, stderr: String(stderr) });
      else resolve({ stdout: String(stdout) });
    });
  });
}

/**
 * Runs `ps <psArgs> -q <pids>` (falling back to plain `ps <psArgs>` when the
 * options do not combine with -q, as dockerd does) and filters by PID.
 */
export async function containerTop(pids: readonly number[], psArgs = ''): Promise<TopResult> {
  const argsText = psArgs === '' ? '-ef' : psArgs;
  validatePsArgs(argsText);
  const args = argsText.split(' ');
  let res = pids.length > 0 ? await runPs([...args, '-q', pids.join(',')]) : await runPs(args);
  if ('error' in res) res = await runPs(args);
  if ('error' in res) {
    const first = res.stderr.split('\n')[0] ?? '';
    throw new BerthError('internal', `ps: ${first || res.error.message}`);
  }
  return parsePsOutput(res.stdout, pids);
}
