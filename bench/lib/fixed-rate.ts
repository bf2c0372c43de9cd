/**
 * A small open-loop load generator (wrk2's model): request k is due at start + k/rate whatever happened
 * to the earlier ones, and its latency is measured from that due time, so a stall is charged to every
 * request that should have gone out during it (no coordinated omission). Used to measure the latency a
 * proxy adds at a fixed, moderate rate, where wrk (closed loop, as fast as possible) says nothing useful.
 */
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';

export interface FixedRateOptions {
  /** full URL: origin + path (+ query) */
  url: string;
  rate: number;
  durationMs: number;
  connections?: number;
  /** same schedule first, not recorded: JIT, pools, caches */
  warmupMs?: number;
  method?: 'GET' | 'POST';
  body?: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export interface FixedRateResult {
  rate: number;
  sent: number;
  ok: number;
  /** transport errors and timeouts */
  errors: number;
  /** answers with status >= 400 */
  badStatus: number;
  /** completed requests per second over the measured window */
  achievedRate: number;
  /** milliseconds, from the due time to the last byte of the body (includes any wait to be sent) */
  latency: Percentiles;
  /**
   * milliseconds, from the moment the request was handed to the client pool to the last byte: without the
   * generator's own timer lateness (Node timers have 1 ms granularity), so small differences show better.
   */
  serviceLatency: Percentiles;
  /** `latency` of the answers with status < 400 only, and of those >= 400 (e.g. a proxy's quick 503s) */
  okLatency: Percentiles;
  badLatency: Percentiles;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

function summarize(values: Float64Array): Percentiles {
  const ok = values.filter((v) => !Number.isNaN(v)).sort();
  let sum = 0;
  for (const v of ok) sum += v;
  return {
    p50: percentile(ok, 50), p90: percentile(ok, 90), p99: percentile(ok, 99), p999: percentile(ok, 99.9),
    max: ok.length ? ok[ok.length - 1]! : NaN, mean: ok.length ? sum / ok.length : NaN,
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export async function runFixedRate(opts: FixedRateOptions): Promise<FixedRateResult> {
  const u = new URL(opts.url);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const pool = new Pool(u.origin, { connections: opts.connections ?? 32, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const path = u.pathname + u.search;
  const headers = opts.body !== undefined ? { 'content-type': 'application/json', ...opts.headers } : opts.headers;

  const phase = (durationMs: number, record: boolean) => {
    const interval = 1000 / opts.rate;
    const total = Math.max(1, Math.round((opts.rate * durationMs) / 1000));
    const lat = new Float64Array(total).fill(NaN);
    const fromSend = new Float64Array(total).fill(NaN);
    const bad = new Uint8Array(total);
    let issued = 0;
    let done = 0;
    let errors = 0;
    let badStatus = 0;
    let lastDone = 0;
    const t0 = performance.now() + 5;
    return new Promise<FixedRateResult | null>((resolve) => {
      const finish = () => {
        if (++done < total) return;
        if (!record) return resolve(null);
        const answered = total - errors;
        resolve({
          rate: opts.rate, sent: total, ok: answered - badStatus, errors, badStatus,
          achievedRate: (answered / (lastDone - t0)) * 1000,
          latency: summarize(lat),
          serviceLatency: summarize(fromSend),
          okLatency: summarize(lat.map((v, k) => (bad[k] ? NaN : v))),
          badLatency: summarize(lat.map((v, k) => (bad[k] ? v : NaN))),
        });
      };
      const send = (k: number, due: number) => {
        const sentAt = performance.now();
        pool.request({ path, method: opts.method ?? 'GET', headers, body: opts.body }).then(async (res) => {
          for await (const _chunk of res.body) { /* drain */ }
          const end = performance.now();
          lat[k] = end - due;
          fromSend[k] = end - sentAt;
          lastDone = end;
          if (res.statusCode >= 400) {
            badStatus++;
            bad[k] = 1;
          }
        }, () => { errors++; }).finally(finish);
      };
      const fire = () => {
        const now = performance.now();
        const due = Math.min(total, Math.floor((now - t0) / interval) + 1);
        while (issued < due) {
          const k = issued++;
          send(k, t0 + k * interval);
        }
        if (issued < total) setTimeout(fire, Math.max(0, t0 + issued * interval - performance.now()));
      };
      setTimeout(fire, Math.max(0, t0 - performance.now()));
    });
  };

  try {
    if (opts.warmupMs && opts.warmupMs > 0) await phase(opts.warmupMs, false);
    return (await phase(opts.durationMs, true))!;
  } finally {
    await pool.close();
  }
}
