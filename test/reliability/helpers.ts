/**
 * Shared pieces of the reliability suite: an HTTP client with a hard bound (a hang is a failure, never a stuck
 * test), a raw TCP client for malformed requests, /metrics readers, and a recorder of measured figures (recovery
 * times, memory, latency) that RELIABILITY.md quotes. Nothing is mocked.
 */
import { request, type Agent, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join, basename } from 'node:path';
import { repoRoot } from '../helpers/repo';

export interface Reply { status: number; headers: IncomingHttpHeaders; body: string; ms: number }

/**
 * One HTTP request. Rejects with `hang` after `timeoutMs`: every fault test asserts a bound, so a request that
 * never ends must fail loudly instead of keeping the test file alive.
 */
export function send(url: string, opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer; agent?: Agent | false; timeoutMs?: number } = {}): Promise<Reply> {
  const u = new URL(opts.path ?? '/', url);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(u, { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => { clearTimeout(timer); resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), ms: performance.now() - t0 }); });
      res.on('error', (e) => { clearTimeout(timer); reject(e); });
      res.on('aborted', () => { clearTimeout(timer); reject(new Error('aborted')); });
    });
    const timer = setTimeout(() => { req.destroy(new Error(`hang: no complete answer after ${opts.timeoutMs ?? 15_000} ms`)); }, opts.timeoutMs ?? 15_000);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    req.end(opts.body);
  });
}

/** POST a JSON body. */
export function postJson(url: string, path: string, body: unknown, headers: Record<string, string> = {}, timeoutMs?: number): Promise<Reply> {
  return send(url, { method: 'POST', path, body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers }, timeoutMs });
}

export interface RawOutcome {
  /** Everything the server wrote before closing (or before our timeout). */
  data: string;
  /** The server closed (or reset) the connection. */
  closed: boolean;
  /** ms until close (or the timeout). */
  ms: number;
}

/**
 * Write `payload` on a fresh TCP connection (as given: malformed on purpose) and collect the answer until the
 * server closes or `waitMs` passes. `chunks` with `gapMs` trickle the payload (slowloris).
 */
export function raw(port: number, payload: string | Buffer | Array<string | Buffer>, opts: { waitMs?: number; gapMs?: number; keepOpen?: boolean } = {}): Promise<RawOutcome> {
  const parts = Array.isArray(payload) ? payload : [payload];
  const t0 = performance.now();
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    let done = false;
    let trickle: NodeJS.Timeout | null = null;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (trickle) clearInterval(trickle);
      s.destroy();
      resolve({ data, closed, ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), opts.waitMs ?? 3000);
    s.on('data', (d) => (data += d.toString('latin1')));
    s.on('close', () => finish(true));
    s.on('error', () => { /* a reset after (or instead of) the answer: 'close' follows */ });
    s.on('connect', () => {
      if (!opts.gapMs) {
        for (const p of parts) s.write(p);
        return;
      }
      let i = 0;
      trickle = setInterval(() => {
        if (i >= parts.length || s.destroyed) { if (trickle) clearInterval(trickle); return; }
        s.write(parts[i++]!);
      }, opts.gapMs);
    });
  });
}

/** Count the HTTP responses in a raw byte stream (status lines). */
export function responseCount(data: string): number {
  return (data.match(/HTTP\/1\.1 \d{3} /g) ?? []).length;
}

/** The sum of every sample of `name` whose label set contains `labelFilter`. */
export function sumSeries(metrics: string, name: string, labelFilter = ''): number {
  let sum = 0;
  for (const line of metrics.split('\n')) {
    if (line.startsWith(name) && (line[name.length] === '{' || line[name.length] === ' ') && line.includes(labelFilter)) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

export async function metrics(adminUrl: string): Promise<string> {
  return (await send(adminUrl, { path: '/metrics', timeoutMs: 10_000 })).body;
}

/** Resident set size of a process, in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * Record a measured figure for RELIABILITY.md: one JSON line per figure in .build/reliability-figures.jsonl
 * (appends are atomic for lines this short, so parallel test files do not clobber each other), and printed.
 */
export function recordFigure(name: string, value: number | string, unit = ''): void {
  const line = { file: basename(process.argv[1] ?? ''), name, value, unit, at: new Date().toISOString() };
  console.log(`# figure: ${name} = ${value}${unit ? ' ' + unit : ''}`);
  try {
    const dir = join(repoRoot(), '.build');
    mkdirSync(dir, { recursive: true });
    appendFileSync(join(dir, 'reliability-figures.jsonl'), JSON.stringify(line) + '\n');
  } catch {
    /* a read-only checkout still runs the suite; the figure was printed */
  }
}

/** Run `fn` until it returns true or `timeoutMs` passes; returns the ms it took, or throws. */
export async function timeUntil(what: string, fn: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<number> {
  const t0 = performance.now();
  const deadline = t0 + timeoutMs;
  let last: unknown = null;
  while (performance.now() < deadline) {
    try {
      if (await fn()) return performance.now() - t0;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
}
