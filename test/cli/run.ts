/** Runs the real `bridge-sidecar` CLI as a child process and collects what a person would see. */
import { spawn } from 'node:child_process';
import { CLI } from '../helpers/sidecar';

/**
 * `hung`: the limit passed before every process holding the output pipes (the command and any children it
 * forked, e.g. cluster workers) had closed them.
 */
export interface CliResult { code: number | null; stdout: string; stderr: string; ms: number; hung: boolean }

/** `limitMs` only stops a hung process (then code is null); it is not what the tests measure. */
export function runCli(args: string[], opts: { env?: Record<string, string | undefined>; limitMs?: number; wrap?: string[] } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const argv = [...(opts.wrap ?? []), process.execPath, CLI(), ...args];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
      child.stdout.destroy();
      child.stderr.destroy();
    }, opts.limitMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started, hung });
    });
  });
}
