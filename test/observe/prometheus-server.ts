/**
 * A real Prometheus (the Debian `prometheus` package) for tests: started on a free loopback port with a temp
 * TSDB, scraping the given targets every second and evaluating the given rule file every second; queried
 * through its HTTP API. `PROMETHEUS` overrides the binary.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, waitFor } from '../helpers/ports';

export const PROMETHEUS = process.env.PROMETHEUS ?? '/usr/bin/prometheus';

export interface QueryResult {
  status: 'success' | 'error';
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

export interface PrometheusServer {
  url: string;
  /** An instant query at `time` (epoch seconds; default now). Never throws on a PromQL error: see `status`. */
  query(expr: string, time?: number): Promise<QueryResult>;
  /**
   * A range query from `start` to `end` (epoch seconds) at `step` seconds, as a Grafana panel asks: a panel has
   * data when any point in the range has a value (one slow scrape on a busy machine does not empty it).
   */
  queryRange(expr: string, start: number, end: number, step?: number): Promise<QueryResult>;
  /** Names of the alerts firing now (from the ALERTS series). */
  firing(): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startPrometheus(opts: { targets: string[]; job: string; ruleFile?: string; intervalS?: number }): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-prometheus-'));
  const port = await freePort();
  const every = `${opts.intervalS ?? 1}s`;
  writeFileSync(join(dir, 'prometheus.yml'), stringify({
    global: { scrape_interval: every, evaluation_interval: every, scrape_timeout: every },
    rule_files: opts.ruleFile ? [opts.ruleFile] : [],
    scrape_configs: [{ job_name: opts.job, static_configs: [{ targets: opts.targets }] }],
  }));
  const proc: ChildProcess = spawn(PROMETHEUS, [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (c: string) => stderr.push(c));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.once('error', (e) => stderr.push(`cannot start ${PROMETHEUS}: ${e.message} (install the Debian package prometheus)`));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    const kill = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(kill);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(`prometheus ready (${stderr.join('')})`, async () => (await fetch(`${url}/-/ready`)).ok, 30_000, 200);
  } catch (e) {
    await stop();
    throw e;
  }
  const query = async (expr: string, time?: number): Promise<QueryResult> => {
    const q = new URLSearchParams({ query: expr });
    if (time !== undefined) q.set('time', time.toFixed(3));
    const res = await fetch(`${url}/api/v1/query?${q.toString()}`, { signal: AbortSignal.timeout(10_000) });
    return (await res.json()) as QueryResult;
  };
  const queryRange = async (expr: string, start: number, end: number, step = 1): Promise<QueryResult> => {
    const q = new URLSearchParams({ query: expr, start: start.toFixed(3), end: end.toFixed(3), step: String(step) });
    const res = await fetch(`${url}/api/v1/query_range?${q.toString()}`, { signal: AbortSignal.timeout(10_000) });
    return (await res.json()) as QueryResult;
  };
  return {
    url,
    query,
    queryRange,
    async firing() {
      const r = await query('ALERTS{alertstate="firing"}');
      return [...new Set((r.data?.result ?? []).map((s) => s.metric.alertname))].sort();
    },
    stop,
  };
}

/** The rule file with every duration (range windows and `for:`) divided by `factor`, for a CI-sized run. */
export function scaleRuleDurations(text: string, factor: number): string {
  const seconds = (n: number, unit: string) => n * ({ s: 1, m: 60, h: 3600 } as Record<string, number>)[unit];
  const scaled = (n: number, unit: string) => `${Math.max(1, Math.round(seconds(n, unit) / factor))}s`;
  return text
    .replace(/\[(\d+)([smh])\]/g, (_, n: string, u: string) => `[${scaled(Number(n), u)}]`)
    .replace(/^(\s*for:\s*)(\d+)([smh])\s*$/gm, (_, head: string, n: string, u: string) => head + scaled(Number(n), u));
}
