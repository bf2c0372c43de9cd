/**
 * Child processes for benchmarks: spawn with output kept (for error messages), wait until an HTTP URL
 * answers, stop by pid (SIGTERM, then SIGKILL after a grace period). Nothing is left running.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createServer } from 'node:net';
import { request } from 'node:http';

export interface Proc {
  readonly child: ChildProcess;
  readonly name: string;
  /** stdout+stderr so far (last 64 KB). */
  output(): string;
  /** Resolves with the first output line that contains `text` (or rejects on exit / timeout). */
  waitForLine(text: string, timeoutMs?: number): Promise<string>;
  stop(graceMs?: number): Promise<void>;
}

const KEEP = 64 * 1024;

export function startProcess(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let out = '';
  const waiters: Array<{ text: string; resolve: (l: string) => void }> = [];
  let partial = '';
  const take = (chunk: Buffer) => {
    const s = chunk.toString('utf8');
    out = (out + s).slice(-KEEP);
    const lines = (partial + s).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (line.includes(waiters[i]!.text)) waiters.splice(i, 1)[0]!.resolve(line);
      }
    }
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  child.on('error', (e) => { out += `\n[spawn error: ${e.message}]`; });
  const exited = new Promise<void>((r) => {
    if (child.exitCode !== null) r();
    else child.once('exit', () => r());
  });
  return {
    child,
    name,
    output: () => out,
    waitForLine(text, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const w = { text, resolve: (l: string) => { clearTimeout(timer); resolve(l); } };
        const timer = setTimeout(() => reject(new Error(`${name}: no line with "${text}" within ${timeoutMs} ms\n${out}`)), timeoutMs);
        waiters.push(w);
        void exited.then(() => { clearTimeout(timer); reject(new Error(`${name} exited (code ${child.exitCode})\n${out}`)); });
      });
    },
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** GET url once; the status code, or 0 on a connection error. */
export function httpStatus(url: string, timeoutMs = 2000): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** Polls url until it answers `want` (default 200); throws after timeoutMs, or when `proc` exits. */
export async function waitForHttp(url: string, opts: { want?: number; timeoutMs?: number; proc?: Proc; pollMs?: number } = {}): Promise<void> {
  const want = opts.want ?? 200;
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let last = 0;
  while (Date.now() < deadline) {
    if (opts.proc && opts.proc.child.exitCode !== null) throw new Error(`${opts.proc.name} exited (code ${opts.proc.child.exitCode}) before ${url} answered\n${opts.proc.output()}`);
    last = await httpStatus(url);
    if (last === want) return;
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
  throw new Error(`${url} did not answer ${want} (last: ${last || 'no connection'})${opts.proc ? '\n' + opts.proc.output() : ''}`);
}
