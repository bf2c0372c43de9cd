/**
 * The performance report, following the guide's §15 template (test environment, response-time percentiles
 * against the targets, throughput table, recommendations), written as
 *   FILE.md              the report
 *   FILE-latency.svg     latency percentiles of the successful answers per step (per interval for a soak), targets dashed
 *   FILE-throughput.svg  requested rate against successful, refused (429/503) and failed answers per second
 *   FILE.json            every figure, the encoded histograms included, for machines
 * where FILE is the --report path without its .md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Environment } from './environment';
import type { ProfileRun, StepResult } from './profiles';
import { fmtMs } from './profiles';
import { PERCENTILES, TARGETS, describeOutcome, recommendations, stepFailures, stepHolds, verdicts, type Verdict } from './analyze';
import { barChart, lineChart } from './svg';

export interface ReportInput {
  generatedAt: Date;
  command: string;
  environment: Environment;
  run: ProfileRun;
  version: string;
  /** extra lines about how the run was set up, printed under the command */
  notes?: string[];
}

export interface ReportFiles {
  markdown: string;
  latencySvg: string;
  throughputSvg: string;
  json: string;
}

export function reportPaths(mdPath: string): ReportFiles {
  const base = mdPath.replace(/\.md$/i, '');
  return { markdown: base + '.md', latencySvg: base + '-latency.svg', throughputSvg: base + '-throughput.svg', json: base + '.json' };
}

export function writeReport(mdPath: string, input: ReportInput): ReportFiles {
  const files = reportPaths(mdPath);
  mkdirSync(dirname(files.markdown), { recursive: true });
  writeFileSync(files.latencySvg, latencyChart(input.run));
  writeFileSync(files.throughputSvg, throughputChart(input.run));
  writeFileSync(files.json, JSON.stringify(reportJson(input), null, 2) + '\n');
  writeFileSync(files.markdown, renderMarkdown(input, files));
  return files;
}

export function reportJson(input: ReportInput): unknown {
  const { run } = input;
  return {
    format: 'bridge-sidecar-loadtest/1',
    generatedAt: input.generatedAt.toISOString(),
    version: input.version,
    command: input.command,
    notes: input.notes ?? [],
    environment: input.environment,
    settings: run.settings,
    targets: TARGETS,
    steps: run.steps.map((s) => ({ ...s, verdicts: verdicts(s), holds: stepHolds(s) })),
    intervals: run.intervals,
    recommendations: recommendations(run, input.environment),
    units: { latency: 'milliseconds', rates: 'requests per second', histogram: 'HdrHistogram V2 compressed base64, microseconds', cpuCores: 'CPU seconds per wall second' },
  };
}

/** Pass/fail in words (an emoji beside them only decorates: without an emoji font it is an empty box). */
const ok = (v: boolean | null) => (v === null ? '–' : v ? 'pass ✅' : 'FAIL ❌');
const mb = (b: number | null | undefined) => (b == null ? '–' : `${(b / 2 ** 20).toFixed(0)} MB`);
const pct = (r: number, d = 1) => `${(r * 100).toFixed(d)} %`;

export function renderMarkdown(input: ReportInput, files: ReportFiles): string {
  const { run, environment: env } = input;
  const s = run.settings;
  const L: string[] = [];
  L.push('# Performance test report', '');
  L.push(`Made by \`bridge-sidecar loadtest\` ${input.version} on ${input.generatedAt.toISOString().replace('T', ' ').slice(0, 19)} UTC with:`, '');
  L.push('```sh', input.command, '```', '');
  if (input.notes && input.notes.length > 0) {
    for (const n of input.notes) L.push(`- ${n}`);
    L.push('');
  }

  L.push('## Test environment', '');
  L.push(`- CPU: ${env.cpuModel}, ${env.cores} cores${env.cpuMHz ? ` (${(env.cpuMHz / 1000).toFixed(1)} GHz)` : ''}`);
  L.push(`- Memory: ${(env.memoryBytes / 2 ** 30).toFixed(1)} GB`);
  L.push(`- Network: ${env.targetIsLocal ? 'loopback (the target runs on this machine and shares its CPUs with the load generator)' : 'to a remote target'}`);
  L.push(`- OS: ${env.os} (${env.kernel})`);
  L.push(`- Node.js: ${env.node}`);
  L.push(`- Target: ${s.target}` + (s.metricsUrl ? `, metrics from ${s.metricsUrl}` : '') + (s.pid !== null ? `, process ${s.pid}` : ''));
  const profileText = s.profile === 'baseline'
    ? `baseline (closed loop: each connection sends its next request when the previous answer is in) for ${sec(s.durationMs)}`
    : s.profile === 'steps'
      ? `steps at ${s.rates.join(', ')} req/s, ${sec(s.durationMs)} each, ${sec(s.pauseMs)} pauses (open loop, fixed rate)`
      : `soak at ${s.rates[0]} req/s for ${sec(s.durationMs)}, a line every ${sec(s.reportEveryMs)} (open loop, fixed rate)`;
  L.push(`- Load: ${profileText}; ${s.connections} keep-alive connections, ${s.threads} thread(s), timeout ${sec(s.timeoutMs)}`);
  L.push(`- Requests: ${s.mixFile ? `mix ${basename(s.mixFile)} (${s.mix.map((e) => `${e.name} ×${e.weight}`).join(', ')})` : `${s.mix[0].method} ${s.mix[0].path}`}`);
  L.push('');

  L.push('## Test results', '');
  L.push('### Response-time distribution', '');
  L.push(s.profile === 'baseline'
    ? 'Measured from the moment each request was sent (closed loop, as wrk does).'
    : 'Measured from the moment each request was SCHEDULED, not when it could be sent, so time spent waiting behind a slow ' +
      'answer counts (coordinated omission corrected, as wrk2 does).');
  L.push('');
  const steps = run.steps;
  L.push('Successful answers (status below 400), judged against the targets. A step whose answers were mostly refusals (429/503) ' +
    'fails them whatever its few successful answers took.');
  L.push('');
  L.push(`| Percentile | Target | ${steps.map((st) => st.label).join(' | ')} |`);
  L.push(`|---|---|${steps.map(() => '---|').join('')}`);
  for (const p of PERCENTILES) {
    const cells = steps.map((st) => {
      const v = verdicts(st).find((x) => x.percentile === p) as Verdict;
      if (v.valueMs === null) return v.ok === false ? `– ${ok(false)} (${v.why})` : '–';
      return `${fmtMs(v.valueMs)} ${ok(v.ok)}${v.ok === false && v.why && !v.why.startsWith(fmtMs(v.valueMs)) ? ` (${v.why})` : ''}`;
    });
    L.push(`| ${p.toUpperCase()} | < ${TARGETS.latencyMs[p]} ms | ${cells.join(' | ')} |`);
  }
  L.push(`| P99.9 | | ${steps.map((st) => (st.successLatency ? fmtMs(st.successLatency.p999) : '–')).join(' | ')} |`);
  L.push(`| Max | | ${steps.map((st) => (st.successLatency ? fmtMs(st.successLatency.max) : '–')).join(' | ')} |`);
  L.push('');
  if (steps.some((st) => st.refused + st.failed > 0)) {
    L.push('All answers, refusals and error statuses included (not judged: a 429 is fast and says nothing of the service):', '');
    L.push(`| Percentile | ${steps.map((st) => st.label).join(' | ')} |`);
    L.push(`|---|${steps.map(() => '---|').join('')}`);
    for (const p of [...PERCENTILES, 'max'] as const) {
      L.push(`| ${p === 'max' ? 'Max' : p.toUpperCase()} | ${steps.map((st) => (st.latency ? fmtMs(st.latency[p]) : '–')).join(' | ')} |`);
    }
    L.push('');
  }

  L.push('### Throughput', '');
  L.push('| Requested (req/s) | Achieved: successful (req/s) | Refused 429/503 (req/s) | Failed (req/s) | Answers | Error rate | P50 | P99 | Sidecar CPU | Sidecar memory | Generator CPU | Machine CPU busy | Verdict |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const st of steps) {
    const cpu = st.target?.cpuCores != null ? `${pct(st.target.cpuCores / env.cores, 0)} (${st.target.cpuCores.toFixed(2)} cores)` : '–';
    const mem = st.target?.rssBytes != null ? `${mb(st.target.peakRssBytes ?? st.target.rssBytes)} (${pct((st.target.peakRssBytes ?? st.target.rssBytes) / env.memoryBytes)})` : '–';
    const perS = (n: number) => (st.durationMs > 0 ? (n / (st.durationMs / 1000)).toFixed(1) : '–');
    const why = stepFailures(st);
    L.push(`| ${st.requestedRate ?? 'closed loop'} | ${st.achievedRate}${st.unsent > 0 ? ` (${st.unsent} unsent)` : ''} | ${perS(st.refused)} | ${perS(st.failed)} | ${st.completed} | ${pct(st.errorRate, 2)} | ` +
      `${st.successLatency ? fmtMs(st.successLatency.p50) : '–'} | ${st.successLatency ? fmtMs(st.successLatency.p99) : '–'} | ${cpu} | ${mem} | ${st.generatorCpuCores.toFixed(2)} cores | ` +
      `${st.machineCpu === null ? '–' : pct(st.machineCpu, 0)} | ${ok(stepHolds(st))}${why.length > 0 ? `: ${why.join('; ')}` : ''} |`);
  }
  L.push('');
  L.push('Achieved = successful answers (status below 400) received within the step\'s window ÷ its duration; refused (429 rate limited, ' +
    '503 shed) and failed answers (other error statuses, timeouts, connection errors) are counted apart and are not throughput. ' +
    'P50/P99 are those of the successful answers. CPU is the target process\'s CPU time over the step per second ' +
    `as a share of all ${env.cores} cores (target: < 70 %); memory is its peak resident set as a share of the machine (target: < 80 %); ` +
    'machine CPU busy is the share of all the machine\'s CPU time that was not idle during the step (/proc/stat; everything on the machine, this test included).' +
    (steps.some((st) => st.target) ? '' : ' No --metrics or --pid was given, so the target\'s CPU and memory are not known.'));
  L.push('');

  const outcomeKeys = [...new Set(steps.flatMap((st) => Object.keys(st.outcomes)))].sort();
  if (outcomeKeys.length > 0) {
    L.push('### Responses by status', '');
    L.push(`| Step | ${outcomeKeys.map(describeOutcome).join(' | ')} |`);
    L.push(`|---|${outcomeKeys.map(() => '---|').join('')}`);
    for (const st of steps) L.push(`| ${st.label} | ${outcomeKeys.map((k) => st.outcomes[k] ?? 0).join(' | ')} |`);
    L.push('');
  }

  if (steps.some((st) => st.perEntry.length > 0)) {
    L.push('### Per request type', '');
    L.push('| Step | Request | Weight | Count | Errors | P50 | P99 |');
    L.push('|---|---|---|---|---|---|---|');
    for (const st of steps) {
      for (const e of st.perEntry) {
        L.push(`| ${st.label} | ${e.name} | ${e.weight} | ${e.count} | ${e.errors} | ${e.latency ? fmtMs(e.latency.p50) : '–'} | ${e.latency ? fmtMs(e.latency.p99) : '–'} |`);
      }
    }
    L.push('');
  }

  if (steps.some((st) => st.target && (Object.keys(st.target.cache).length > 0 || st.target.shedTotal > 0 || st.target.rateLimitedTotal > 0))) {
    L.push('### Cache, shedding and rate limiting (from the sidecar\'s /metrics)', '');
    L.push('| Step | Cache hit ratio | Hits by tier | Shed (503) | Rate limited (429) |');
    L.push('|---|---|---|---|---|');
    for (const st of steps) {
      const t = st.target;
      if (!t) continue;
      const tiers = Object.entries(t.cache).map(([layer, c]) => `${layer} ${c.hits}/${c.lookups}`).join(', ') || '–';
      L.push(`| ${st.label} | ${t.cacheHitRatio === null ? '–' : pct(t.cacheHitRatio)} | ${tiers} | ${t.shedTotal} | ${t.rateLimitedTotal} |`);
    }
    L.push('');
  }

  if (run.intervals.length > 0) {
    L.push('### Soak intervals', '');
    L.push('| Interval | Started | Achieved: successful (req/s) | Refused 429/503 (req/s) | Error rate | P50 | P99 | Target CPU | Target memory |');
    L.push('|---|---|---|---|---|---|---|---|---|');
    for (const i of run.intervals) {
      L.push(`| ${i.index} | ${i.startedAt.slice(11, 19)} | ${i.achievedRate} | ${i.refusedRate} | ${pct(i.errorRate, 2)} | ${i.latency ? fmtMs(i.latency.p50) : '–'} | ` +
        `${i.latency ? fmtMs(i.latency.p99) : '–'} | ${i.target?.cpuCores != null ? pct(i.target.cpuCores / env.cores, 0) : '–'} | ${mb(i.target?.rssBytes)} |`);
    }
    L.push('');
  }

  L.push('### Charts', '');
  L.push(`![Latency percentiles of the successful answers](${basename(files.latencySvg)})`, '');
  L.push(`![Requested rate against successful, refused and failed answers per second](${basename(files.throughputSvg)})`, '');

  L.push('### Recommendations', '');
  recommendations(run, env).forEach((r, i) => L.push(`${i + 1}. ${r}`));
  L.push('');
  L.push(`Raw figures (with the HdrHistogram of every step): [${basename(files.json)}](${basename(files.json)}).`, '');
  return L.join('\n');
}

function sec(ms: number): string {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${+(ms / 1000).toFixed(3)} s`;
}

/**
 * A step read back from a report's JSON. Reports written before refusals were counted apart have no
 * succeeded/refused/failed split, success-only latency or machine CPU: the split is recovered exactly from the
 * answers by status; the success-only latency only where every answer succeeded (else unknown); the achieved
 * (successful) rate in proportion to the successful answers.
 */
export function stepFromJson(raw: Omit<StepResult, 'successLatency'> & Partial<StepResult> & { machineLoad?: unknown; verdicts?: unknown; holds?: unknown }): StepResult {
  const { verdicts: _v, holds: _h, machineLoad: _l, ...s } = raw;
  if (s.successLatency !== undefined) return s as StepResult;
  const refused = (s.outcomes['429'] ?? 0) + (s.outcomes['503'] ?? 0);
  const succeeded = s.completed - s.errors;
  return {
    ...s, succeeded, refused, failed: s.errors - refused, answeredRate: s.achievedRate,
    achievedRate: s.completed > 0 ? Math.round((s.achievedRate * succeeded / s.completed) * 10) / 10 : 0,
    successLatency: s.errors === 0 ? s.latency : null, machineCpu: null,
  };
}

const COLORS = { p50: '#2b8a3e', p95: '#e67700', p99: '#c92a2a', requested: '#adb5bd', achieved: '#1971c2', refused: '#f59f00', failed: '#e03131' };

const minutesLabel = (ms: number) => `+${(ms / 60000).toFixed(ms < 600_000 ? 1 : 0)} min`;

export function latencyChart(run: ProfileRun): string {
  const soak = run.intervals.length > 0;
  const points: { label: string; l: StepResult['latency'] }[] = soak
    ? run.intervals.map((i) => ({ label: minutesLabel(i.elapsedMs), l: i.latency }))
    : run.steps.map((st) => ({ label: stepHolds(st) ? st.label : `${st.label} (FAIL)`, l: st.successLatency }));
  return lineChart({
    title: soak ? 'Latency percentiles of successful answers per interval' : 'Latency percentiles of successful answers per step',
    categories: points.map((p) => p.label),
    series: PERCENTILES.map((p) => ({ name: p.toUpperCase(), color: COLORS[p], values: points.map((x) => (x.l ? x.l[p] : null)) })),
    yLabel: 'latency (ms, log scale)',
    xLabel: soak ? 'time since the start' : 'step (requested rate)',
    logY: true,
    references: PERCENTILES.map((p) => ({ value: TARGETS.latencyMs[p], label: `${p.toUpperCase()} target`, color: COLORS[p] })),
    format: (v) => (v >= 1000 ? `${v / 1000} s` : `${v} ms`),
  });
}

export function throughputChart(run: ProfileRun): string {
  if (run.intervals.length > 0) {
    const rate = run.settings.rates[0];
    return lineChart({
      title: 'Successful and refused answers against the requested rate per interval',
      categories: run.intervals.map((i) => minutesLabel(i.elapsedMs)),
      series: [
        { name: 'requested', color: COLORS.requested, values: run.intervals.map(() => rate) },
        { name: 'successful', color: COLORS.achieved, values: run.intervals.map((i) => i.achievedRate) },
        { name: 'refused (429/503)', color: COLORS.refused, values: run.intervals.map((i) => i.refusedRate) },
      ],
      yLabel: 'requests per second',
      xLabel: 'time since the start',
    });
  }
  const perS = (st: StepResult, n: number) => (st.durationMs > 0 ? Math.round((n / (st.durationMs / 1000)) * 10) / 10 : 0);
  return barChart({
    title: 'Requested rate against successful, refused and failed answers',
    categories: run.steps.map((st) => st.label),
    series: [
      { name: 'requested', color: COLORS.requested, values: run.steps.map((st) => st.requestedRate) },
      { name: 'successful', color: COLORS.achieved, values: run.steps.map((st) => st.achievedRate) },
      { name: 'refused (429/503)', color: COLORS.refused, values: run.steps.map((st) => perS(st, st.refused)) },
      { name: 'failed', color: COLORS.failed, values: run.steps.map((st) => perS(st, st.failed)) },
    ],
    yLabel: 'requests per second',
    xLabel: 'step',
    valueLabels: true,
  });
}
