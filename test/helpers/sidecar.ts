/**
 * Runs the real `bridge-sidecar serve` as a child process with a policy written to a temp dir, and tells the test
 * where it listens (parsed from its "listening" log line). Nothing is mocked: the test talks HTTP to it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRoot } from './repo';

export interface SidecarProcess {
  proc: ChildProcess;
  /** Proxy listener port. */
  port: number;
  adminPort: number;
  url: string;
  adminUrl: string;
  dir: string;
  policyFile: string;
  /** Every stdout line, parsed as JSON where possible. */
  logs: Array<Record<string, unknown>>;
  stderr: string[];
  /** Resolves with the exit code when the process exits. */
  exited: Promise<number | null>;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Wait for a log line matching `pred`. */
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export const CLI = (): string => join(buildRoot(), 'cmd', 'bridge-sidecar.js');

/**
 * Start `serve` with `policyYaml`. Use `listen: 127.0.0.1:0` / `admin_listen: 127.0.0.1:0` in the policy to get
 * free ports (the real ones are read from the log). `dir` lets a test reuse a directory (e.g. for L3 files).
 */
export async function startSidecar(policyYaml: string, opts: { dir?: string; env?: Record<string, string>; timeoutMs?: number; nodeArgs?: string[] } = {}): Promise<SidecarProcess> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'bridge-sidecar-test-'));
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, policyYaml);
  const proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), CLI(), 'serve', '--policy', policyFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  const logs: Array<Record<string, unknown>> = [];
  const stderr: string[] = [];
  const waiters = new Set<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }>();
  let buf = '';
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(line) as Record<string, unknown>;
      } catch {
        obj = { raw: line };
      }
      logs.push(obj);
      for (const w of waiters) if (w.pred(obj)) { waiters.delete(w); w.resolve(obj); }
    }
  });
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (c: string) => stderr.push(c));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));

  const waitForLog = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000) => {
    const found = logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const w = { pred, resolve: (l: Record<string, unknown>) => { clearTimeout(t); resolve(l); } };
      const t = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`timed out waiting for a log line; stderr: ${stderr.join('')}; last logs: ${JSON.stringify(logs.slice(-5))}`));
      }, timeoutMs);
      waiters.add(w);
      void exited.then((code) => {
        if (waiters.has(w)) {
          waiters.delete(w);
          clearTimeout(t);
          reject(new Error(`sidecar exited (${code}) before the expected log line; stderr: ${stderr.join('')}`));
        }
      });
    });
  };

  let listening: Record<string, unknown>;
  try {
    listening = await waitForLog((l) => l.msg === 'listening', opts.timeoutMs ?? 20_000);
  } catch (e) {
    // never leave a half-started sidecar behind: the test file would hang on it
    proc.kill('SIGKILL');
    await exited;
    if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const [, port] = String(listening.listen).split(/:(?=\d+$)/);
  const [, adminPort] = String(listening.admin).split(/:(?=\d+$)/);
  const sc: SidecarProcess = {
    proc, dir, policyFile, logs, stderr, exited, waitForLog,
    port: Number(port),
    adminPort: Number(adminPort),
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const kill = setTimeout(() => proc.kill('SIGKILL'), 40_000);
      const code = await exited;
      clearTimeout(kill);
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
  return sc;
}

/** A `server` value as YAML: a flow mapping (`{ enabled: false }`) as written, a string with a colon quoted. */
function yamlValue(v: string | number): string | number {
  return typeof v === 'string' && v.includes(':') && !v.startsWith('{') ? JSON.stringify(v) : v;
}

/** A minimal policy in front of `upstreamPort`, on free ports; `extra` is appended YAML (other sections). */
export function basicPolicy(upstreamPort: number, extra = '', server: Record<string, string | number> = {}): string {
  const s = { listen: '127.0.0.1:0', admin_listen: '127.0.0.1:0', workers: 0, log_level: 'info', ...server };
  return [
    'version: 1',
    'server:',
    ...Object.entries(s).map(([k, v]) => `  ${k}: ${yamlValue(v)}`),
    'upstream:',
    `  url: http://127.0.0.1:${upstreamPort}`,
    extra,
  ].join('\n') + '\n';
}
