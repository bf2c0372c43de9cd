/** An open-loop fixed-rate HTTP sender for end-to-end tests: counts answers by status, keeps one 429. */
import { Agent, request } from 'node:http';

export interface HttpRun {
  sent: number;
  byStatus: Map<number, number>;
  errors: number;
  sample429: { headers: Record<string, unknown>; body: string } | null;
  sample200: { headers: Record<string, unknown> } | null;
  /** From the first send to the last answer: longer than the duration when the machine or the target lagged. */
  spanMs: number;
}

/**
 * `admitted` against a limit of `perSecond` with `burst`, for runs of `durationMs`: within 5 % of burst + rate x
 * duration below, and of burst + rate x the measured span above. A limiter refills while a slowed run (a busy
 * machine, a backlog in the target) stretches past its duration, so the upper side follows the real span; on a
 * quiet machine the two are the same.
 */
export function withinLimit(admitted: number, perSecond: number, burst: number, durationMs: number, runs: HttpRun[]): boolean {
  const span = Math.max(durationMs, ...runs.map((r) => r.spanMs));
  return admitted >= 0.95 * (burst + (perSecond * durationMs) / 1000) && admitted <= 1.05 * (burst + (perSecond * span) / 1000);
}

export async function httpFixedRate(
  url: string,
  rate: number,
  durationMs: number,
  opts: { method?: string; headers?: (i: number) => Record<string, string>; path?: (i: number) => string } = {},
): Promise<HttpRun> {
  const u = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const run: HttpRun = { sent: 0, byStatus: new Map(), errors: 0, sample429: null, sample200: null, spanMs: 0 };
  const total = Math.floor((rate * durationMs) / 1000);
  const start = performance.now();
  const pending: Array<Promise<void>> = [];
  for (let i = 0; i < total; i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    run.sent++;
    pending.push(new Promise<void>((resolve) => {
      const req = request({
        host: u.hostname, port: u.port, path: opts.path?.(i) ?? u.pathname, method: opts.method ?? 'GET',
        headers: opts.headers?.(i) ?? {}, agent, timeout: 10_000,
      }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          const s = res.statusCode ?? 0;
          run.byStatus.set(s, (run.byStatus.get(s) ?? 0) + 1);
          if (s === 429 && !run.sample429) run.sample429 = { headers: res.headers, body };
          if (s === 200 && !run.sample200) run.sample200 = { headers: res.headers };
          resolve();
        });
      });
      req.on('error', () => { run.errors++; resolve(); });
      req.on('timeout', () => req.destroy());
      req.end();
    }));
  }
  await Promise.all(pending);
  run.spanMs = performance.now() - start;
  agent.destroy();
  return run;
}
