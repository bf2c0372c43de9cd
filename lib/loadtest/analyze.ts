/**
 * Judges the figures against the guide's targets and derives the recommendations the report ends with.
 * Everything here is computed from the run: no advice is printed that the figures do not support.
 */
import type { Environment } from './environment';
import type { ProfileRun, StepResult } from './profiles';
import { fmtMs } from './profiles';

/** The guide's targets (§ "目标性能指标"). */
export const TARGETS = {
  latencyMs: { p50: 100, p95: 500, p99: 1000 },
  /** 99.9 % available */
  maxErrorRate: 0.001,
  instanceRps: 1000,
  /** share of the machine */
  maxCpu: 0.7,
  maxMemory: 0.8,
  /** the guide's report example quotes an 85 % cache hit ratio */
  cacheHitRatio: 0.85,
} as const;

export type PercentileKey = keyof typeof TARGETS.latencyMs;
export const PERCENTILES: PercentileKey[] = ['p50', 'p95', 'p99'];

export interface Verdict {
  percentile: PercentileKey;
  targetMs: number;
  /** the percentile of the SUCCESSFUL answers */
  valueMs: number | null;
  ok: boolean | null;
  /** why it failed, in words; null when it held or could not be judged */
  why: string | null;
}

/**
 * A step whose answers are more than this share refusals (429/503) did not serve the traffic asked of it: its
 * targets fail whatever the latency of the few answers served (a refusal is fast, and says nothing of the service).
 */
export const MAX_REFUSED_SHARE = 0.5;

export function refusedShare(s: StepResult): number {
  return s.completed > 0 ? s.refused / s.completed : 0;
}

export function verdicts(step: StepResult): Verdict[] {
  const share = refusedShare(step);
  return PERCENTILES.map((p) => {
    const valueMs = step.successLatency ? step.successLatency[p] : null;
    const targetMs = TARGETS.latencyMs[p];
    if (share > MAX_REFUSED_SHARE) return { percentile: p, targetMs, valueMs, ok: false, why: `${pct(share, 0)} of the answers were refusals (429/503)` };
    // no successful answer at all fails; successful answers without their own latency (an older report) are unknown
    if (valueMs === null) return step.completed > 0 && step.succeeded === 0
      ? { percentile: p, targetMs, valueMs, ok: false, why: 'no successful answer' } : { percentile: p, targetMs, valueMs, ok: null, why: null };
    return valueMs < targetMs ? { percentile: p, targetMs, valueMs, ok: true, why: null } : { percentile: p, targetMs, valueMs, ok: false, why: `${fmtMs(valueMs)}, not under ${targetMs} ms` };
  });
}

/** Why a step did not meet its targets, in words; empty when it held. */
export function stepFailures(s: StepResult): string[] {
  const out: string[] = [];
  const share = refusedShare(s);
  if (share > MAX_REFUSED_SHARE) out.push(`${pct(share, 0)} of the answers were refusals (${refusalKinds(s)})`);
  else for (const v of verdicts(s)) if (v.ok === false) out.push(`${v.percentile.toUpperCase()} ${v.why}`);
  if (s.requestedRate !== null && s.achievedRate < 0.95 * s.requestedRate) out.push(`${s.achievedRate} of ${s.requestedRate} req/s answered successfully`);
  if (s.errorRate > TARGETS.maxErrorRate) out.push(`errors ${pct(s.errorRate, 2)} (target ≤ 0.1 %)`);
  return out;
}

/** A step "holds" when its successful answers met all latency targets, errors stayed within 0.1 % and 95 % of the rate was served. */
export function stepHolds(s: StepResult): boolean {
  return stepFailures(s).length === 0;
}

function refusalKinds(s: StepResult): string {
  return ['429', '503'].filter((k) => (s.outcomes[k] ?? 0) > 0).map((k) => `${describeOutcome(k)} ×${s.outcomes[k]}`).join(', ') || '429/503';
}

const pct = (r: number, digits = 1) => `${(r * 100).toFixed(digits)} %`;

export function recommendations(run: ProfileRun, env: Environment): string[] {
  const out: string[] = [];
  const steps = run.steps;
  if (steps.length === 0) return ['No step completed: nothing to judge.'];
  const open = steps.filter((s) => s.requestedRate !== null);

  // latency targets, judged on the successful answers; a step that mostly refused did not meet them
  const refusing = steps.filter((s) => refusedShare(s) > MAX_REFUSED_SHARE);
  const broken = PERCENTILES.map((p) => ({ p, step: steps.find((s) => refusedShare(s) <= MAX_REFUSED_SHARE && s.successLatency !== null && s.successLatency[p] >= TARGETS.latencyMs[p]) }))
    .filter((b) => b.step !== undefined);
  if (broken.length === 0 && refusing.length === 0) {
    const last = steps[steps.length - 1];
    out.push(`All latency targets (P50 < 100 ms, P95 < 500 ms, P99 < 1000 ms) held at every step, up to ${last.label} ` +
      `(P99 of the successful answers there: ${last.successLatency ? fmtMs(last.successLatency.p99) : 'n/a'}).`);
  }
  if (broken.length > 0) {
    const parts = broken.map(({ p, step }) => `${p.toUpperCase()} target first broken at ${step!.label} (${fmtMs(step!.successLatency![p])} against < ${TARGETS.latencyMs[p]} ms)`);
    out.push(parts.join('; ') + '.');
  }
  if (refusing.length > 0) {
    const first = refusing[0];
    out.push(`The latency targets were NOT met at ${refusing.map((s) => s.label).join(', ')}: most answers were refusals ` +
      `(at ${first.label}: ${pct(refusedShare(first), 0)}, ${refusalKinds(first)}; ${first.achievedRate} successful req/s of ` +
      `${first.requestedRate ?? first.answeredRate} asked). A refusal is fast and says nothing of the service: the figures there measure the rate limiter or the shedding, ` +
      `so raise the limits (or lower the rate) to measure the service itself.`);
  }

  // capacity against the per-instance throughput target
  if (open.length > 0) {
    const held = open.filter(stepHolds);
    const best = held.length > 0 ? held[held.length - 1] : null;
    if (best) {
      const meets = best.requestedRate! >= TARGETS.instanceRps;
      out.push(`Highest step that met every target: ${best.label} (achieved ${best.achievedRate} req/s, errors ${pct(best.errorRate, 2)}). ` +
        (meets ? `This reaches the guide's ${TARGETS.instanceRps} RPS per instance.` :
          `Below the guide's > ${TARGETS.instanceRps} RPS per instance: add instances or find the bottleneck below before raising traffic.`));
    } else {
      out.push(`No step met every target (latency, errors ≤ 0.1 %, achieved ≥ 95 % of requested): the target is overloaded already at ${open[0].label}.`);
    }
  } else {
    const b = steps[0];
    out.push(`Closed-loop maximum: ${b.achievedRate} req/s with ${run.settings.connections} connections` +
      (b.achievedRate >= TARGETS.instanceRps ? ` (above the guide's ${TARGETS.instanceRps} RPS per instance).` : ` (below the guide's ${TARGETS.instanceRps} RPS per instance).`));
  }

  // shortfalls: who was the bottleneck
  for (const s of open) {
    if (s.achievedRate >= 0.95 * s.requestedRate!) continue;
    const reasons: string[] = [];
    if (s.generatorCpuCores >= 0.85 * Math.min(run.settings.threads, env.cores)) {
      reasons.push(`the load generator itself used ${s.generatorCpuCores} cores with ${run.settings.threads} thread(s), so part of the shortfall is the generator: rerun with more --threads or from another machine`);
    }
    const serviceMs = s.uncorrected?.mean ?? 0;
    const needed = (s.requestedRate! * serviceMs) / 1000;
    if (needed > 0.8 * run.settings.connections) {
      reasons.push(`at ${fmtMs(serviceMs)} per request the rate needs ~${Math.ceil(needed)} requests in flight, near or over the ${run.settings.connections} connections (raise --connections to tell a connection limit from a server limit)`);
    }
    if (reasons.length === 0) reasons.push('the target could not answer faster (requests queued in front of it)');
    out.push(`At ${s.label} only ${s.achievedRate} req/s were achieved (${pct(s.achievedRate / s.requestedRate!, 0)} of requested)` +
      (s.unsent > 0 ? `, ${s.unsent} requests could not even be sent in the window` : '') + `: ${reasons.join('; ')}.`);
    break;
  }

  // queueing hidden from a closed-loop tool
  const co = open.find((s) => s.latency && s.uncorrected && s.latency.p99 > 2 * s.uncorrected.p99 && s.latency.p99 - s.uncorrected.p99 > 50);
  if (co) {
    out.push(`From ${co.label} on, most of the P99 is waiting for a free connection rather than service time ` +
      `(P99 from the schedule ${fmtMs(co.latency!.p99)}, from the actual send ${fmtMs(co.uncorrected!.p99)}): a closed-loop tool would hide this queueing.`);
  }

  // errors
  const errStep = steps.find((s) => s.errorRate > TARGETS.maxErrorRate);
  if (errStep) {
    const kinds = Object.entries(errStep.outcomes).filter(([k]) => !/^[23]\d\d$/.test(k)).sort((a, b) => b[1] - a[1]);
    const top = kinds.slice(0, 3).map(([k, v]) => `${describeOutcome(k)} ×${v}`).join(', ');
    out.push(`Error rate first above the guide's 0.1 % (99.9 % availability) at ${errStep.label}: ${pct(errStep.errorRate, 2)} (${top}).` + adviceFor(kinds[0]?.[0]));
  } else {
    out.push(`Error rate stayed within 0.1 % (the guide's 99.9 % availability) at every step.`);
  }

  // the sidecar's own figures, when its /metrics was given
  const withTarget = steps.filter((s) => s.target !== null);
  if (withTarget.length > 0) {
    const cpuHigh = withTarget.find((s) => s.target!.cpuCores !== null && s.target!.cpuCores / env.cores > TARGETS.maxCpu);
    const maxCpu = Math.max(...withTarget.map((s) => s.target!.cpuCores ?? 0));
    if (cpuHigh) {
      out.push(`Target CPU above the guide's 70 % at ${cpuHigh.label} (${pct(cpuHigh.target!.cpuCores! / env.cores, 0)} of ${env.cores} cores): add instances or workers before this rate.`);
    } else if (maxCpu > 0) {
      out.push(`Target CPU peaked at ${pct(maxCpu / env.cores, 0)} of the machine (${maxCpu.toFixed(2)} cores), within the guide's 70 %.`);
    }
    const peak = Math.max(...withTarget.map((s) => s.target!.peakRssBytes ?? 0));
    if (peak > 0) {
      const share = peak / env.memoryBytes;
      out.push(`Target memory peaked at ${(peak / 2 ** 20).toFixed(0)} MB (${pct(share)} of ${(env.memoryBytes / 2 ** 30).toFixed(1)} GB)` +
        (share > TARGETS.maxMemory ? `: above the guide's 80 %, lower the cache budgets (cache.l1.size).` : ', within the guide\'s 80 %.'));
    }
    const cached = withTarget.filter((s) => s.target!.cacheHitRatio !== null);
    if (cached.length > 0) {
      const last = cached[cached.length - 1];
      const r = last.target!.cacheHitRatio!;
      out.push(`Cache hit ratio ${pct(r)} at ${last.label}` +
        (r < TARGETS.cacheHitRatio ? ` (below the ${pct(TARGETS.cacheHitRatio, 0)} the guide's report quotes): check which routes miss (keys too specific, TTL too short, writes invalidating too much) or add a warm-up strategy.`
          : ` (at or above the ${pct(TARGETS.cacheHitRatio, 0)} the guide's report quotes).`));
    }
    const shedStep = withTarget.find((s) => s.target!.shedTotal > 0);
    if (shedStep) {
      const reasons = Object.entries(shedStep.target!.shed).map(([k, v]) => `${k} ×${v}`).join(', ');
      out.push(`The sidecar started shedding at ${shedStep.label} (${reasons}): its queues were full, which kept the latency of the requests it accepted bounded. Raise queues.max_in_flight only if the upstream has headroom; otherwise add instances.`);
    }
    const rlStep = withTarget.find((s) => s.target!.rateLimitedTotal > 0);
    if (rlStep) {
      const scopes = Object.entries(rlStep.target!.rateLimited).map(([k, v]) => `${k} ×${v}`).join(', ');
      out.push(`Rate limiting refused requests from ${rlStep.label} on (${scopes}): the figures above that rate measure the limiter, not the service; raise rate_limiting limits for a capacity test.`);
    }
  }

  // soak: memory trend
  if (run.intervals.length >= 3) {
    const rss = run.intervals.map((i) => i.target?.rssBytes ?? null).filter((v): v is number => v !== null);
    if (rss.length >= 3) {
      const growth = rss[rss.length - 1] / rss[0] - 1;
      out.push(growth > 0.2
        ? `Target memory grew ${pct(growth, 0)} over the soak (${(rss[0] / 2 ** 20).toFixed(0)} → ${(rss[rss.length - 1] / 2 ** 20).toFixed(0)} MB): look for a leak (heap profile) before a long production run.`
        : `Target memory was stable over the soak (${(rss[0] / 2 ** 20).toFixed(0)} → ${(rss[rss.length - 1] / 2 ** 20).toFixed(0)} MB).`);
    }
    const p99s = run.intervals.map((i) => i.latency?.p99 ?? 0);
    const firstHalf = p99s.slice(0, Math.floor(p99s.length / 2));
    const secondHalf = p99s.slice(Math.floor(p99s.length / 2));
    const avg = (a: number[]) => a.reduce((s, v) => s + v, 0) / Math.max(1, a.length);
    if (avg(secondHalf) > 2 * avg(firstHalf) && avg(secondHalf) - avg(firstHalf) > 20) {
      out.push(`P99 rose during the soak (first half ${fmtMs(avg(firstHalf))}, second half ${fmtMs(avg(secondHalf))}): the target degrades under steady load.`);
    }
  }

  // a target that broke its targets without using its share of the CPU while the machine's CPUs were saturated
  const contended = steps.find((s) => !stepHolds(s) && s.machineCpu !== null && s.machineCpu > 0.9 &&
    (s.target?.cpuCores ?? 0) / env.cores < TARGETS.maxCpu);
  if (contended) {
    out.push(`At ${contended.label} the machine's CPUs were ${pct(contended.machineCpu!, 0)} busy over the step while the target itself ` +
      (contended.target?.cpuCores != null ? `used ${contended.target.cpuCores.toFixed(2)} cores` : 'was measured') +
      `: processes waited for a CPU, so part of the latency above is contention on this machine, not the target's own limit. Repeat on a quiet or bigger machine before sizing from these figures.`);
  }

  if (env.targetIsLocal) {
    out.push(`The load generator ran on the same ${env.cores}-core machine as the target and took CPU from it ` +
      `(up to ${Math.max(...steps.map((s) => s.generatorCpuCores)).toFixed(2)} cores): treat the figures as a lower bound of what the target does alone.`);
  }
  return out;
}

export function describeOutcome(k: string): string {
  switch (k) {
    case '429': return '429 rate limited';
    case '503': return '503 shed/unavailable';
    case '502': return '502 upstream unreachable';
    case '504': return '504 upstream timeout';
    case '413': return '413 body too large';
    case 'timeout': return 'client timeout';
    case 'refused': return 'connection refused';
    case 'reset': return 'connection reset';
    case 'error': return 'transport error';
    default: return k;
  }
}

function adviceFor(k: string | undefined): string {
  switch (k) {
    case '429': return ' Mostly rate limiting: intended if the policy caps traffic at this rate; raise the limits for a capacity test.';
    case '503': return ' Mostly 503: backpressure shedding (queue full or queue timeout): the upstream is the bottleneck at this rate.';
    case '502': case '504': return ' Mostly upstream failures: the service behind the sidecar fails or times out at this rate.';
    case 'timeout': return ' Mostly client timeouts: requests waited longer than --timeout.';
    case 'refused': case 'reset': return ' Mostly connection errors: check the target\'s connection limits (server.worker_connections) and file descriptors.';
    default: return '';
  }
}
