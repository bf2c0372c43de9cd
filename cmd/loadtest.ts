/**
 * `bridge-sidecar loadtest`: the guide's §12 load tests at a fixed rate, and the §15 report.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { parseFlags, UsageError } from './args';
import { parseDuration, UnitError } from '../lib/policy/units';
import { defaultMix, loadMixFile, MixError } from '../lib/loadtest/mix';
import { runProfile, type ProfileName, type RunSettings } from '../lib/loadtest/profiles';
import { describeEnvironment } from '../lib/loadtest/environment';
import { writeReport } from '../lib/loadtest/report';
import { ProgressLine } from '../lib/loadtest/progress';

const HELP = `usage: bridge-sidecar loadtest --target URL [options]

Fixed-rate (open-loop) HTTP load test: requests are sent on a schedule and latency is measured from the
scheduled time, so a stalled target cannot hide its queueing (coordinated omission corrected, like wrk2).

  --target URL          where to send requests (required); its path is the prefix of the mix paths
  --profile NAME        baseline  closed loop, as fast as the target answers (default without --rate)
                        steps     each rate of --steps in turn, with --pause between
                        soak      one long run at --rate, a report line every --report-every
                        (default with --rate and no --profile: one fixed-rate step at that rate)
  --rate N              requests per second (soak: default 1000)
  --steps LIST          rates for the steps profile (default 100,500,1000,2000,5000)
  --duration D          length of each step / of the run (default: baseline 30s, steps 60s, soak 1h)
  --pause D             pause between steps (default 30s)
  --connections N       keep-alive connections (default: 400, soak 200, as the guide's wrk lines)
  --threads N|auto      generator threads (default auto: one per 8000 req/s, at most one per core)
  --mix FILE            request mix, YAML or JSON (method, path, headers, body, weight; {seq}, {random},
                        {int:A-B}, {zipf:A-B}, {choice:a|b}, {uuid} substitutions); default: GET
                        the target URL
  --timeout D           per-request timeout (default 10s); a timed-out request counts as an error
  --metrics URL         the target's Prometheus page (sidecar: http://HOST:9901/metrics): CPU, memory,
                        cache hit ratio, shedding and rate limiting per step
  --pid N               the target's process id (local): CPU and memory from /proc
  --report-every D      soak: interval of the report lines (default 1m)
  --report FILE.md      write the report: FILE.md, FILE-latency.svg, FILE-throughput.svg, FILE.json
  -h, --help            this text

Durations: 500ms, 30s, 5m, 1h, or a number of seconds.
`;

const OPTIONS = {
  target: { type: 'string' },
  profile: { type: 'string' },
  rate: { type: 'string' },
  steps: { type: 'string' },
  duration: { type: 'string' },
  pause: { type: 'string' },
  connections: { type: 'string' },
  threads: { type: 'string' },
  mix: { type: 'string' },
  timeout: { type: 'string' },
  metrics: { type: 'string' },
  pid: { type: 'string' },
  'report-every': { type: 'string' },
  report: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Requests per second one generator thread sends comfortably (measured: ~15k/s at a full core). */
const RATE_PER_THREAD = 8000;

export async function run(argv: string[]): Promise<number> {
  let settings: RunSettings;
  let reportPath: string | null;
  try {
    const { values } = parseFlags(argv, OPTIONS);
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    ({ settings, reportPath } = settingsFrom(values));
  } catch (e) {
    if (e instanceof UsageError || e instanceof MixError) {
      process.stderr.write(`bridge-sidecar loadtest: ${e.message}\n(see bridge-sidecar loadtest --help)\n`);
      return 2;
    }
    throw e;
  }

  const command = ['bridge-sidecar', 'loadtest', ...argv].map(shellQuote).join(' ');
  const progress = ProgressLine.forStdout();
  const target = new URL(settings.target);
  process.stdout.write(`loadtest: ${settings.profile} against ${settings.target}, ${settings.connections} connections, ${settings.threads} thread(s)\n`);
  const interrupt = new AbortController();
  const onSigint = () => {
    if (interrupt.signal.aborted) process.exit(130);
    interrupt.abort();
    progress?.clear();
    process.stdout.write('loadtest: interrupted: finishing this step early and writing the report (Ctrl-C again to quit at once)\n');
  };
  process.on('SIGINT', onSigint);
  try {
    const result = await runProfile(settings, {
      log: (line) => process.stdout.write(line + '\n'),
      progress,
      signal: interrupt.signal,
    });
    progress?.clear();
    if (reportPath) {
      const files = writeReport(reportPath, { generatedAt: new Date(), command, environment: describeEnvironment(target), run: result, version: version() });
      process.stdout.write(`report: ${files.markdown} (+ ${files.latencySvg}, ${files.throughputSvg}, ${files.json})\n`);
    }
    return 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

/** Flags to settings; every mistake is a UsageError naming the flag. */
export function settingsFrom(values: Values): { settings: RunSettings; reportPath: string | null } {
  if (!values.target) throw new UsageError('--target URL is required');
  let target: URL;
  try {
    target = new URL(values.target);
  } catch {
    throw new UsageError(`--target: "${values.target}" is not a URL`);
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new UsageError(`--target: only http:// and https:// are supported`);

  const rate = values.rate === undefined ? null : positiveNumber('--rate', values.rate);
  let profile: ProfileName;
  if (values.profile === undefined) profile = rate !== null || values.steps !== undefined ? 'steps' : 'baseline';
  else if (values.profile === 'baseline' || values.profile === 'steps' || values.profile === 'soak') profile = values.profile;
  else throw new UsageError(`--profile: "${values.profile}" is not one of baseline, steps, soak`);

  let rates: number[] = [];
  if (profile === 'baseline') {
    if (rate !== null) throw new UsageError('--rate does not apply to the baseline profile (closed loop, as fast as possible); use --profile steps --steps N');
    if (values.steps !== undefined) throw new UsageError('--steps applies only to the steps profile');
  } else if (profile === 'steps') {
    if (rate !== null && values.steps !== undefined) throw new UsageError('give either --rate (one step) or --steps (several), not both');
    if (values.steps !== undefined) rates = values.steps.split(',').map((s) => positiveNumber('--steps', s.trim()));
    else rates = rate !== null ? [rate] : [100, 500, 1000, 2000, 5000];
  } else {
    if (values.steps !== undefined) throw new UsageError('--steps applies only to the steps profile');
    rates = [rate ?? 1000];
  }

  const defaultDuration = { baseline: 30_000, steps: 60_000, soak: 3_600_000 }[profile];
  const durationMs = values.duration === undefined ? defaultDuration : duration('--duration', values.duration, 1);
  const pauseMs = values.pause === undefined ? 30_000 : duration('--pause', values.pause, 0);
  const timeoutMs = values.timeout === undefined ? 10_000 : duration('--timeout', values.timeout, 1);
  const reportEveryMs = values['report-every'] === undefined ? 60_000 : duration('--report-every', values['report-every'], 1000);
  const connections = values.connections === undefined ? (profile === 'soak' ? 200 : 400) : positiveInteger('--connections', values.connections);

  const cores = cpus().length;
  let threads: number;
  if (values.threads === undefined || values.threads === 'auto') {
    threads = profile === 'baseline' ? (cores <= 2 ? 1 : Math.min(4, Math.floor(cores / 2))) : Math.ceil(Math.max(...rates) / RATE_PER_THREAD);
    threads = Math.max(1, Math.min(threads, cores, connections));
  } else {
    threads = positiveInteger('--threads', values.threads);
    if (threads > connections) throw new UsageError(`--threads ${threads} is more than --connections ${connections}: each thread needs a connection`);
  }

  let pid: number | null = null;
  if (values.pid !== undefined) pid = positiveInteger('--pid', values.pid);
  let metricsUrl: string | null = null;
  if (values.metrics !== undefined) {
    try {
      metricsUrl = new URL(values.metrics).href;
    } catch {
      throw new UsageError(`--metrics: "${values.metrics}" is not a URL`);
    }
  }
  if (values.report !== undefined && values.report.trim() === '') throw new UsageError('--report needs a file name');

  const mix = values.mix ? loadMixFile(values.mix) : defaultMix(target);
  return {
    settings: {
      profile,
      target: target.href,
      mixFile: values.mix ?? null,
      mix,
      basePath: values.mix ? target.pathname : '',
      connections,
      threads,
      durationMs,
      pauseMs,
      rates,
      timeoutMs,
      reportEveryMs,
      metricsUrl,
      pid,
    },
    reportPath: values.report ?? null,
  };
}

function positiveNumber(flag: string, v: string): number {
  const n = Number(v);
  if (v === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`${flag}: "${v}" is not a positive number`);
  return n;
}

function positiveInteger(flag: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${flag}: "${v}" is not a positive whole number`);
  return n;
}

function duration(flag: string, v: string, minMs: number): number {
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch (e) {
    if (e instanceof UnitError) throw new UsageError(`${flag}: ${e.message}`);
    throw e;
  }
  if (ms < minMs) throw new UsageError(`${flag}: must be at least ${minMs} ms`);
  return ms;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function version(): string {
  for (const up of [join('..', '..'), join('..', '..', '..')]) {
    try {
      return (JSON.parse(readFileSync(join(__dirname, up, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      // compiled into dist/cmd or .build/NAME/cmd: try one level further up
    }
  }
  return 'unknown';
}
