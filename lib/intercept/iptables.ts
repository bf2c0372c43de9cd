/**
 * Runs `iptables-save` / `iptables-restore --noflush` and turns their failures into one-line messages an
 * operator can act on (binary missing, capability missing). The rules themselves come from rules.ts.
 */
import { spawn } from 'node:child_process';

export class InterceptError extends Error {}

interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The binaries, by name on PATH (the image has them in /usr/sbin, on the default PATH). */
export interface IptablesBinaries {
  readonly save: string;
  readonly restore: string;
}

export const NFT_BINARIES: IptablesBinaries = { save: 'iptables-save', restore: 'iptables-restore' };
/** For nodes whose kernel rules are managed with the legacy (x_tables) backend. */
export const LEGACY_BINARIES: IptablesBinaries = { save: 'iptables-legacy-save', restore: 'iptables-legacy-restore' };

const RUN_TIMEOUT_MS = 30_000;

function run(cmd: string, args: string[], input: string | null): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    // Our own timer rather than spawn's `timeout`: that one is only cleared on exit, and a binary that
    // was never found never exits, so it would keep this process alive for the whole timeout.
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (err: NodeJS.ErrnoException) => { clearTimeout(timer); reject(explainSpawnError(cmd, err)); });
    // A binary that dies before reading stdin makes the write fail with EPIPE: the exit code says more.
    child.stdin.on('error', () => undefined);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }); });
    child.stdin.end(input ?? '');
  });
}

function explainSpawnError(cmd: string, err: NodeJS.ErrnoException): InterceptError {
  if (err.code === 'ENOENT') {
    return new InterceptError(`${cmd} not found: install iptables (Debian: apt-get install iptables); the bridge-sidecar image includes it`);
  }
  if (err.code === 'EACCES' || err.code === 'EPERM') return permissionError(cmd);
  return new InterceptError(`${cmd} could not be started: ${err.message}`);
}

function permissionError(cmd: string): InterceptError {
  return new InterceptError(`${cmd}: permission denied: changing nat rules needs root with the NET_ADMIN and NET_RAW capabilities (the init container's securityContext)`);
}

const PERMISSION_PATTERNS = [/permission denied/i, /you must be root/i, /operation not permitted/i];

function failure(cmd: string, r: RunResult): InterceptError {
  const text = r.stderr.trim() || r.stdout.trim();
  if (PERMISSION_PATTERNS.some((re) => re.test(text))) return permissionError(cmd);
  const firstLine = text.split('\n').find((l) => l.trim() !== '') ?? `exit code ${r.code}`;
  return new InterceptError(`${cmd} failed: ${firstLine.trim()}`);
}

/** The nat table as `iptables-save -t nat` prints it. */
export async function saveNat(bin: IptablesBinaries): Promise<string> {
  const r = await run(bin.save, ['-t', 'nat'], null);
  if (r.code !== 0) throw failure(bin.save, r);
  return r.stdout;
}

/** Applies restore input without touching anything it does not name (one transaction). */
export async function restoreNoflush(bin: IptablesBinaries, input: string): Promise<void> {
  const r = await run(bin.restore, ['--noflush'], input);
  if (r.code !== 0) throw failure(bin.restore, r);
}
