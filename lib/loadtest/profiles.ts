/**
 * The guide's §12 profiles:
 *   baseline  closed loop, fixed connections, as fast as the target answers (`wrk -t12 -c400 -d30s`)
 *   steps     open loop at each rate in turn (100, 500, 1000, 2000, 5000 req/s), pauses between
 *             (`wrk -R$rps -d60s; sleep 30`); a step that falls short of its rate is recorded, not aborted
 *   soak      one long open-loop run at a steady rate, a line every --report-every with the target's memory
 */
import { summarize, encodeHistogram, type LatencySummary } from './histogram';
import type { MixEntry } from './mix';
import { machineBusyShare, readMachineCpu } from './environment';
import { runPhase, type PhaseSpec } from './runner';
import { Tally } from './tally';
import { PeakSampler, sampleTarget, usageBetween, type TargetProbe, type TargetSample, type TargetUsage } from './target-stats';
import type { ProgressLine } from './progress';

export type ProfileName = 'baseline' | 'steps' | 'soak';

export interface RunSettings {
  profile: ProfileName;
  target: string;
  mixFile: string | null;
  mix: MixEntry[];
  /** '' when the mix paths are used as they are */
  basePath: string;
  connections: number;
  threads: number;
  durationMs: number;
  pauseMs: number;
  /** steps: the rates; soak: [rate]; baseline: [] */
  rates: number[];
  timeoutMs: number;
  reportEveryMs: number;
  metricsUrl: string | null;
  pid: number | null;
}

export interface EntryResult {
  name: string;
  weight: number;
  count: number;
  errors: number;
  latency: LatencySummary | null;
}

export interface StepResult {
  label: string;
  /** null for the closed-loop baseline */
  requestedRate: number | null;
  durationMs: number;
  startedAt: string;
  sent: number;
  completed: number;
  /** due inside the window but never sent: the connections (or the generator) were behind schedule */
  unsent: number;
  errors: number;
  errorRate: number;
  /** answers with status < 400 */
  succeeded: number;
  /** 429 and 503 answers: the target declined to serve (rate limiting, shedding) */
  refused: number;
  /** other error statuses, timeouts and connection errors */
  failed: number;
  /** successful answers within the window per second: what the target really delivered */
  achievedRate: number;
  /** every answer within the window per second, refusals included */
  answeredRate: number;
  bytesPerSecond: number;
  outcomes: Record<string, number>;
  /** every answer, refusals and error statuses included, from the scheduled send time (coordinated omission corrected) */
  latency: LatencySummary | null;
  /** the successful answers only: what the latency targets are judged on */
  successLatency: LatencySummary | null;
  /** from the actual send time (what a closed-loop tool would report) */
  uncorrected: LatencySummary | null;
  perEntry: EntryResult[];
  target: TargetUsage | null;
  /** CPU used by this load generator (all its threads), in cores */
  generatorCpuCores: number;
  /** share of all the machine's CPUs busy during the step, from /proc/stat (others' work shows here); null off Linux */
  machineCpu: number | null;
  /** the corrected latency histogram, HdrHistogram compressed base64, microseconds */
  histogram: string;
}

export interface SoakInterval {
  index: number;
  startedAt: string;
  elapsedMs: number;
  /** successful answers per second */
  achievedRate: number;
  /** 429/503 answers per second */
  refusedRate: number;
  errorRate: number;
  /** successful answers */
  latency: LatencySummary | null;
  target: TargetUsage | null;
}

export interface ProfileRun {
  settings: RunSettings;
  steps: StepResult[];
  intervals: SoakInterval[];
}

export interface Hooks {
  /** a finished line of output (step summary, soak interval) */
  log(line: string): void;
  progress: ProgressLine | null;
  /** stop early (Ctrl-C): the current phase closes its window at once, no further phase starts */
  signal?: AbortSignal;
}

export async function runProfile(settings: RunSettings, hooks: Hooks): Promise<ProfileRun> {
  const run: ProfileRun = { settings, steps: [], intervals: [] };
  const probe: TargetProbe = { metricsUrl: settings.metricsUrl, pid: settings.pid };
  let seq = 0;
  const phases: { label: string; rate: number | null }[] =
    settings.profile === 'baseline' ? [{ label: 'baseline', rate: null }] : settings.rates.map((r) => ({ label: `${r} req/s`, rate: r }));
  for (let i = 0; i < phases.length; i++) {
    if (hooks.signal?.aborted) break;
    if (i > 0 && settings.pauseMs > 0) {
      hooks.progress?.message(`pausing ${settings.pauseMs / 1000} s before ${phases[i].label}`);
      await sleep(settings.pauseMs, hooks.signal);
      if (hooks.signal?.aborted) break;
    }
    const label = phases.length > 1 ? `[${i + 1}/${phases.length}] ${phases[i].label}` : phases[i].label;
    const step = await runStep(settings, phases[i].rate, phases[i].label, probe, seq, hooks, label, run);
    seq += step.sent;
    run.steps.push(step);
    hooks.progress?.clear();
    hooks.log(stepLine(step));
  }
  return run;
}

async function runStep(
  settings: RunSettings, rate: number | null, label: string, probe: TargetProbe, seqStart: number, hooks: Hooks,
  progressLabel: string, run: ProfileRun,
): Promise<StepResult> {
  const machineBefore = readMachineCpu();
  const before = await sampleTarget(probe);
  const sampler = new PeakSampler(probe);
  sampler.start();
  const soak = settings.profile === 'soak' ? new SoakRecorder(settings, probe, before, hooks, run) : null;
  const cpu0 = process.cpuUsage();
  const spec: PhaseSpec = {
    origin: new URL(settings.target).origin,
    basePath: settings.basePath,
    mix: settings.mix,
    mode: rate === null ? 'closed' : 'open',
    rate: rate ?? 0,
    connections: settings.connections,
    durationMs: settings.durationMs,
    timeoutMs: settings.timeoutMs,
    threads: settings.threads,
    seqStart,
    signal: hooks.signal,
  };
  const startedAt = Date.now();
  const result = await runPhase(spec, (tick, soFar) => {
    soak?.add(tick);
    hooks.progress?.update({ label: progressLabel, elapsedMs: Date.now() - startedAt, durationMs: settings.durationMs, tally: soFar });
  });
  const cpu = process.cpuUsage(cpu0);
  sampler.stop();
  await soak?.finish();
  const after = await sampleTarget(probe);
  const t = result.tally;
  const seconds = result.windowMs / 1000;
  return {
    label,
    requestedRate: rate,
    durationMs: Math.round(result.windowMs),
    startedAt: new Date(result.startedAt).toISOString(),
    sent: t.sent,
    completed: t.completed,
    unsent: t.unsent,
    errors: t.errors,
    errorRate: t.completed > 0 ? t.errors / t.completed : 0,
    succeeded: t.succeeded,
    refused: t.refused,
    failed: t.failed,
    achievedRate: round(t.inWindowOk / seconds, 1),
    answeredRate: round(t.inWindow / seconds, 1),
    bytesPerSecond: Math.round(t.bytes / seconds),
    outcomes: t.outcomes,
    latency: summarize(t.latency),
    successLatency: summarize(t.okLatency),
    uncorrected: summarize(t.uncorrected),
    perEntry: entryResults(settings.mix, t),
    target: before && after ? usageBetween(before, after, sampler.peakRss) : null,
    generatorCpuCores: round((cpu.user + cpu.system) / 1000 / Math.max(1, result.elapsedMs), 2),
    machineCpu: machineBusyShare(machineBefore, readMachineCpu()),
    histogram: encodeHistogram(t.latency),
  };
}

function entryResults(mix: MixEntry[], t: Tally): EntryResult[] {
  if (mix.length < 2) return [];
  return mix.map((e, i) => {
    const h = t.entryLatency[i];
    return { name: e.name, weight: e.weight, count: h ? h.totalCount : 0, errors: t.entryErrors[i] ?? 0, latency: h ? summarize(h) : null };
  });
}

/** Soak: cuts the ticks into --report-every intervals, each with the target's readings. */
class SoakRecorder {
  private period = new Tally();
  private periodStart = Date.now();
  private readonly runStart = Date.now();
  private pending: Promise<void> = Promise.resolve();
  constructor(
    private readonly settings: RunSettings, private readonly probe: TargetProbe, private lastSample: TargetSample | null,
    private readonly hooks: Hooks, private readonly run: ProfileRun,
  ) {}

  add(tick: Parameters<Tally['add']>[0]): void {
    this.period.add(tick);
    if (Date.now() - this.periodStart >= this.settings.reportEveryMs) this.close();
  }

  async finish(): Promise<void> {
    if (this.period.completed > 0) this.close();
    await this.pending;
  }

  private close(): void {
    const tally = this.period;
    const start = this.periodStart;
    const end = Date.now();
    this.period = new Tally();
    this.periodStart = end;
    const index = this.run.intervals.length + 1;
    const rssStart = this.lastSample;
    this.pending = this.pending.then(async () => {
      const sample = await sampleTarget(this.probe);
      const interval: SoakInterval = {
        index,
        startedAt: new Date(start).toISOString(),
        elapsedMs: end - this.runStart,
        achievedRate: round(tally.succeeded / ((end - start) / 1000), 1),
        refusedRate: round(tally.refused / ((end - start) / 1000), 1),
        errorRate: tally.completed > 0 ? tally.errors / tally.completed : 0,
        latency: summarize(tally.okLatency),
        target: rssStart && sample ? usageBetween(rssStart, sample) : null,
      };
      this.lastSample = sample;
      this.run.intervals.push(interval);
      this.hooks.progress?.clear();
      this.hooks.log(intervalLine(interval));
    });
  }
}

export function stepLine(s: StepResult): string {
  const l = s.successLatency;
  const lat = l ? `p50 ${fmtMs(l.p50)}  p95 ${fmtMs(l.p95)}  p99 ${fmtMs(l.p99)}  max ${fmtMs(l.max)}` : 'no successful responses';
  const req = s.requestedRate === null ? 'closed loop' : `requested ${s.requestedRate}/s`;
  const unsent = s.unsent > 0 ? `  unsent ${s.unsent}` : '';
  const refused = s.refused > 0 ? `  refused ${s.refused} (429/503)` : '';
  const failed = s.failed > 0 ? `  failed ${s.failed}` : '';
  return `${s.label}: ${req}  achieved ${s.achievedRate}/s${refused}${failed}  errors ${(s.errorRate * 100).toFixed(2)}%${unsent}  ${lat}`;
}

function intervalLine(i: SoakInterval): string {
  const l = i.latency;
  const lat = l ? `p50 ${fmtMs(l.p50)}  p99 ${fmtMs(l.p99)}` : 'no responses';
  const mem = i.target?.rssBytes != null ? `  target rss ${(i.target.rssBytes / 2 ** 20).toFixed(0)} MB` : '';
  const cpu = i.target?.cpuCores != null ? `  cpu ${(i.target.cpuCores * 100).toFixed(0)}%` : '';
  return `soak ${new Date(i.startedAt).toISOString().slice(11, 19)} (+${(i.elapsedMs / 60000).toFixed(1)} min): ${i.achievedRate}/s  errors ${(i.errorRate * 100).toFixed(2)}%  ${lat}${mem}${cpu}`;
}

export function fmtMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done);
  });
}
