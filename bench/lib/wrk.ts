/**
 * Runs wrk and parses what it prints (with --latency), so benchmarks report numbers, not text.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface WrkOptions {
  threads?: number;
  connections?: number;
  /** wrk duration, e.g. "10s" */
  duration?: string;
  /** per-request timeout, e.g. "5s" */
  timeout?: string;
  /** a wrk Lua script file (e.g. to POST a body) */
  script?: string;
  headers?: string[];
  wrkPath?: string;
}

export interface WrkResult {
  requestsPerSec: number;
  requests: number;
  durationSec: number;
  /** milliseconds */
  latency: { avg: number; stdev: number; max: number; p50: number; p75: number; p90: number; p99: number };
  errors: { connect: number; read: number; write: number; timeout: number; non2xx3xx: number };
  transferPerSec: string;
  command: string;
  raw: string;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "3.21ms" -> 3.21; "812.00us" -> 0.812; "1.02s" -> 1020 */
export function parseWrkDuration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new Error(`unreadable wrk duration "${text}"`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

export function parseWrkOutput(raw: string): Omit<WrkResult, 'command'> {
  const num = (re: RegExp, what: string): string => {
    const m = re.exec(raw);
    if (!m) throw new Error(`wrk output has no ${what}:\n${raw}`);
    return m[1]!;
  };
  const lat = /^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)/m.exec(raw);
  if (!lat) throw new Error(`wrk output has no latency line:\n${raw}`);
  const pct = (p: string) => parseWrkDuration(num(new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm'), `${p}% latency`));
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(raw);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(raw);
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(raw);
  if (!total) throw new Error(`wrk output has no request count:\n${raw}`);
  return {
    requestsPerSec: Number(num(/Requests\/sec:\s+([\d.]+)/, 'Requests/sec')),
    requests: Number(total[1]),
    durationSec: parseWrkDuration(`${total[2]}${total[3]}`) / 1000,
    latency: {
      avg: parseWrkDuration(lat[1]!), stdev: parseWrkDuration(lat[2]!), max: parseWrkDuration(lat[3]!),
      p50: pct('50'), p75: pct('75'), p90: pct('90'), p99: pct('99'),
    },
    errors: {
      connect: sock ? Number(sock[1]) : 0, read: sock ? Number(sock[2]) : 0, write: sock ? Number(sock[3]) : 0,
      timeout: sock ? Number(sock[4]) : 0, non2xx3xx: non2xx ? Number(non2xx[1]) : 0,
    },
    transferPerSec: num(/Transfer\/sec:\s+(\S+)/, 'Transfer/sec'),
    raw,
  };
}

export function runWrk(url: string, opts: WrkOptions = {}): Promise<WrkResult> {
  const args = ['-t', String(opts.threads ?? 2), '-c', String(opts.connections ?? 50), '-d', opts.duration ?? '10s', '--latency'];
  if (opts.timeout) args.push('--timeout', opts.timeout);
  if (opts.script) args.push('-s', opts.script);
  for (const h of opts.headers ?? []) args.push('-H', h);
  args.push(url);
  const bin = opts.wrkPath ?? 'wrk';
  const command = [bin, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', (e) => reject(new Error(`cannot run ${bin}: ${e.message} (apt-get install wrk)`)));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${command} exited ${code}:\n${out}`));
      try {
        resolve({ ...parseWrkOutput(out), command });
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** wrk's own version line, e.g. "wrk debian/4.1.0-3+b2 [epoll]". */
export function wrkVersion(wrkPath = 'wrk'): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(wrkPath, ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', () => resolve('unknown'));
    child.on('exit', () => resolve(/^(wrk [^\n]*?)(?:\s+Copyright.*)?$/m.exec(out)?.[1]?.trim() ?? 'unknown'));
  });
}

/**
 * A wrk Lua script that sends every request with this method, body and headers (wrk itself only GETs).
 * Returns the file and a cleanup function; pass the file as `script` to runWrk.
 */
export function writeWrkScript(req: { method?: string; body?: string; headers?: Record<string, string> }): { file: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'wrk-script-'));
  const file = join(dir, 'request.lua');
  const lua = (s: string) => JSON.stringify(s); // a JSON string literal is a valid Lua string literal for printable text
  const lines = [`wrk.method = ${lua(req.method ?? 'POST')}`];
  if (req.body !== undefined) lines.push(`wrk.body = ${lua(req.body)}`);
  const headers = { ...(req.body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...req.headers };
  for (const [k, v] of Object.entries(headers)) lines.push(`wrk.headers[${lua(k)}] = ${lua(v)}`);
  writeFileSync(file, lines.join('\n') + '\n');
  return { file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
