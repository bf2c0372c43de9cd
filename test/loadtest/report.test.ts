import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeHistogram, encodeHistogram, newHistogram, summarize } from '../../lib/loadtest/histogram';
import { describeEnvironment } from '../../lib/loadtest/environment';
import type { ProfileRun, RunSettings, StepResult } from '../../lib/loadtest/profiles';
import { recommendations } from '../../lib/loadtest/analyze';
import { latencyChart, renderMarkdown, reportPaths, throughputChart, writeReport } from '../../lib/loadtest/report';
import type { TargetUsage } from '../../lib/loadtest/target-stats';
import { checkWellFormedXml } from './xml-check';

const settings = (over: Partial<RunSettings> = {}): RunSettings => ({
  profile: 'steps', target: 'http://127.0.0.1:15006/', mixFile: null,
  mix: [{ name: 'GET /', method: 'GET', path: '/', headers: [], body: null, weight: 1 }], basePath: '',
  connections: 100, threads: 1, durationMs: 10_000, pauseMs: 3000, rates: [100, 1000, 2000], timeoutMs: 10_000, reportEveryMs: 60_000,
  metricsUrl: 'http://127.0.0.1:9901/metrics', pid: null, ...over,
});

function usage(over: Partial<TargetUsage> = {}): TargetUsage {
  return { cpuCores: 0.3, rssBytes: 80 * 2 ** 20, peakRssBytes: 90 * 2 ** 20, cache: { l1: { hits: 90, lookups: 100 } }, cacheHitRatio: 0.9,
    shed: {}, shedTotal: 0, rateLimited: {}, rateLimitedTotal: 0, ...over };
}

/** A step whose latencies (ms) are spread evenly between lo and hi. */
function step(rate: number, loMs: number, hiMs: number, over: Partial<StepResult> = {}): StepResult {
  const h = newHistogram();
  const n = rate * 10;
  for (let i = 0; i < n; i++) h.recordValue(Math.round((loMs + ((hiMs - loMs) * i) / n) * 1000));
  return {
    label: `${rate} req/s`, requestedRate: rate, durationMs: 10_000, startedAt: new Date().toISOString(), sent: n, completed: n, unsent: 0,
    errors: 0, errorRate: 0, succeeded: n, refused: 0, failed: 0, achievedRate: rate, answeredRate: rate, bytesPerSecond: rate * 100, outcomes: { 200: n },
    latency: summarize(h), successLatency: summarize(h), uncorrected: summarize(h),
    perEntry: [], target: usage(), generatorCpuCores: 0.2, machineCpu: 0.4, histogram: encodeHistogram(h), ...over,
  };
}

function overloadedRun(): ProfileRun {
  return {
    settings: settings(),
    intervals: [],
    steps: [
      step(100, 1, 20),
      step(1000, 5, 150),
      step(2000, 50, 3000, {
        achievedRate: 1500, errors: 600, errorRate: 0.03, succeeded: 19_400, refused: 600, outcomes: { 200: 19_400, 503: 600 },
        target: usage({ cpuCores: 1.8, cacheHitRatio: 0.6, cache: { l1: { hits: 60, lookups: 100 } }, shed: { queue_full: 600 }, shedTotal: 600 }),
      }),
    ],
  };
}

test('the Markdown report has every section of the guide\'s §15 template with pass/FAIL in words per target', () => {
  const env = describeEnvironment(new URL('http://127.0.0.1:15006/'));
  const input = { generatedAt: new Date('2025-01-02T03:04:05Z'), command: 'bridge-sidecar loadtest --target http://127.0.0.1:15006/', environment: env, run: overloadedRun(), version: '0.1.0' };
  const md = renderMarkdown(input, reportPaths('/tmp/x/report.md'));
  for (const heading of ['# Performance test report', '## Test environment', '## Test results', '### Response-time distribution', '### Throughput',
    '### Responses by status', '### Cache, shedding and rate limiting', '### Charts', '### Recommendations']) {
    assert.ok(md.split('\n').some((line) => line === heading || line.startsWith(heading + ' (')), `missing section ${heading}`);
  }
  for (const item of ['- CPU: ', '- Memory: ', '- OS: ', '- Node.js: ' + process.version, '- Target: http://127.0.0.1:15006/', '- Load: steps at 100, 1000, 2000 req/s']) {
    assert.ok(md.includes(item), `environment lacks ${item}`);
  }
  assert.ok(md.includes('bridge-sidecar loadtest --target http://127.0.0.1:15006/'), 'the command that made the report');
  assert.match(md, /\| P50 \| < 100 ms \| [\d.]+ ms pass ✅ \| [\d.]+ ms pass ✅ \| [\d.]+ (ms|s) FAIL ❌ \|/);
  assert.match(md, /\| P99 \| < 1000 ms \| [\d.]+ ms pass ✅ \| [\d.]+ ms pass ✅ \| [\d.]+ s FAIL ❌ \|/);
  assert.match(md, /\| 2000 \| 1500 \| 60\.0 \| 0\.0 \| 20000 \| 3\.00 % \|.*\| 0\.20 cores \| 40 % \| FAIL ❌: P50 .*; 1500 of 2000 req\/s answered successfully; errors 3\.00 % \(target ≤ 0\.1 %\) \|$/m);
  assert.match(md, /\| 100 \| 100 \| 0\.0 \| 0\.0 \| 1000 \| 0\.00 % \|.*\| pass ✅ \|$/m);
  assert.match(md, /\| 2000 req\/s \| 60\.0 % \| l1 60\/100 \| 600 \| 0 \|/);
  assert.ok(md.includes('![Latency percentiles of the successful answers](report-latency.svg)'));
  assert.ok(md.includes('](report.json)'));
});

test('recommendations are derived from the figures', () => {
  const env = { ...describeEnvironment(new URL('http://127.0.0.1/')), cores: 2, memoryBytes: 8 * 2 ** 30 };
  const recs = recommendations(overloadedRun(), env).join('\n');
  assert.match(recs, /P50 target first broken at 2000 req\/s/);
  assert.match(recs, /P99 target first broken at 2000 req\/s \(2\.\d\d s/);
  assert.match(recs, /Highest step that met every target: 1000 req\/s/);
  assert.match(recs, /At 2000 req\/s only 1500 req\/s were achieved \(75 % of requested\)/);
  assert.match(recs, /Error rate first above the guide's 0\.1 % .* at 2000 req\/s: 3\.00 % \(503 shed\/unavailable ×600\)/);
  assert.match(recs, /Target CPU above the guide's 70 % at 2000 req\/s \(90 % of 2 cores\)/);
  assert.match(recs, /Cache hit ratio 60\.0 % at 2000 req\/s \(below the 85 %/);
  assert.match(recs, /shedding at 2000 req\/s \(queue_full ×600\)/);

  assert.doesNotMatch(recs, /CPUs were .* busy/, 'the target used its CPU: no contention to report');
  const contended = overloadedRun();
  contended.steps[2] = { ...contended.steps[2], machineCpu: 0.97, target: usage({ cpuCores: 0.6 }) };
  assert.match(recommendations(contended, env).join('\n'), /At 2000 req\/s the machine's CPUs were 97 % busy over the step while the target itself used 0\.60 cores/);

  const calm = recommendations({ settings: settings({ rates: [100] }), intervals: [], steps: [step(100, 1, 20)] }, env).join('\n');
  assert.match(calm, /All latency targets .* held at every step/);
  assert.match(calm, /Below the guide's > 1000 RPS per instance/);
  assert.match(calm, /Error rate stayed within 0\.1 %/);
  assert.doesNotMatch(calm, /shedding|first broken/);
});

test('writeReport writes Markdown, two well-formed SVG charts and the JSON with the raw figures', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'report-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const run = overloadedRun();
  const files = writeReport(join(dir, 'sub', 'perf.md'), {
    generatedAt: new Date(), command: 'bridge-sidecar loadtest --target x', environment: describeEnvironment(new URL('http://127.0.0.1/')), run, version: '0.1.0',
  });
  assert.deepEqual(files, {
    markdown: join(dir, 'sub', 'perf.md'), latencySvg: join(dir, 'sub', 'perf-latency.svg'),
    throughputSvg: join(dir, 'sub', 'perf-throughput.svg'), json: join(dir, 'sub', 'perf.json'),
  });
  for (const svgFile of [files.latencySvg, files.throughputSvg]) {
    const svg = readFileSync(svgFile, 'utf8');
    const { root, rootAttrs } = checkWellFormedXml(svg);
    assert.equal(root, 'svg');
    assert.ok(Number(rootAttrs.width) > 0 && Number(rootAttrs.height) > 0, 'width and height');
    assert.equal(rootAttrs.xmlns, 'http://www.w3.org/2000/svg');
    for (const s of run.steps) assert.ok(svg.includes(`>${s.label}<`) || svg.includes(`>${s.label} (FAIL)<`), `${svgFile} labels ${s.label}`);
  }
  const latency = readFileSync(files.latencySvg, 'utf8');
  assert.equal((latency.match(/<polyline /g) ?? []).length, 3, 'one line each for P50, P95, P99');
  assert.ok(latency.includes('P99 target'));
  const throughput = readFileSync(files.throughputSvg, 'utf8');
  assert.equal((throughput.match(/<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="[\d.]+" fill="#/g) ?? []).length, 1 + 12 + 4,
    'background, four bars per step (requested, successful, refused, failed) and four legend swatches');
  for (const name of ['requested', 'successful', 'refused (429/503)', 'failed']) assert.ok(throughput.includes(`>${name}<`), `legend ${name}`);

  const json = JSON.parse(readFileSync(files.json, 'utf8')) as {
    format: string; steps: (StepResult & { verdicts: { ok: boolean }[]; holds: boolean })[]; recommendations: string[]; environment: { cores: number };
  };
  assert.equal(json.format, 'bridge-sidecar-loadtest/1');
  assert.equal(json.steps.length, 3);
  assert.equal(json.steps[2].achievedRate, 1500);
  assert.deepEqual(json.steps.map((s) => s.holds), [true, true, false]);
  assert.equal(decodeHistogram(json.steps[1].histogram).totalCount, 10_000, 'the histogram survives the round trip');
  assert.ok(json.recommendations.length >= 5);
  assert.ok(json.environment.cores >= 1);
  assert.ok(readFileSync(files.markdown, 'utf8').startsWith('# Performance test report'));
});

test('a soak report has an interval table and charts over time', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'report-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const s = step(500, 1, 30);
  const run: ProfileRun = {
    settings: settings({ profile: 'soak', rates: [500], durationMs: 180_000 }),
    steps: [s],
    intervals: [1, 2, 3].map((i) => ({ index: i, startedAt: new Date(Date.UTC(2025, 0, 1, 0, i)).toISOString(), elapsedMs: i * 60_000,
      achievedRate: 500, refusedRate: 0, errorRate: 0, latency: s.latency, target: usage({ rssBytes: (100 + i * 40) * 2 ** 20 }) })),
  };
  const env = describeEnvironment(new URL('http://127.0.0.1/'));
  const files = writeReport(join(dir, 'soak.md'), { generatedAt: new Date(), command: 'c', environment: env, run, version: '0.1.0' });
  const md = readFileSync(files.markdown, 'utf8');
  assert.ok(md.includes('### Soak intervals'));
  assert.match(md, /\| 3 \| 00:03:00 \| 500 \| 0 \| 0\.00 % \|/);
  assert.match(md, /Target memory grew 57 % over the soak \(140 → 220 MB\)/);
  for (const f of [files.latencySvg, files.throughputSvg]) {
    const svg = readFileSync(f, 'utf8');
    assert.equal(checkWellFormedXml(svg).root, 'svg');
    assert.ok(svg.includes('+3.0 min'));
  }
});

test('a step that was mostly refused fails its targets and says why; its fast 429s are not its latency', () => {
  const env = { ...describeEnvironment(new URL('http://127.0.0.1/')), cores: 2, memoryBytes: 8 * 2 ** 30 };
  const fast = step(100, 0.8, 1.5);
  // 1000 answers: 40 served (in ~1 ms), 960 refused with 429 (in ~0.3 ms)
  const refused = step(100, 0.8, 1.5, {
    succeeded: 40, refused: 960, completed: 1000, errors: 960, errorRate: 0.96, achievedRate: 4, answeredRate: 100,
    outcomes: { 200: 40, 429: 960 }, successLatency: fast.successLatency, latency: { ...fast.latency!, p50: 0.3 },
  });
  const run: ProfileRun = { settings: settings({ rates: [100] }), intervals: [], steps: [refused] };
  const md = renderMarkdown({ generatedAt: new Date(), command: 'c', environment: env, run, version: '0.1.0' }, reportPaths('/tmp/x/r.md'));
  assert.match(md, /\| P50 \| < 100 ms \| [\d.]+ ms FAIL ❌ \(96 % of the answers were refusals \(429\/503\)\) \|/);
  assert.match(md, /\| 100 \| 4 \| 96\.0 \| 0\.0 \| 1000 \|.*\| FAIL ❌: 96 % of the answers were refusals \(429 rate limited ×960\); 4 of 100 req\/s answered successfully/);
  assert.match(md, /All answers, refusals and error statuses included/);
  const recs = recommendations(run, env).join('\n');
  assert.doesNotMatch(recs, /All latency targets .* held/);
  assert.match(recs, /The latency targets were NOT met at 100 req\/s: most answers were refusals \(at 100 req\/s: 96 %, 429 rate limited ×960; 4 successful req\/s of 100 asked\)/);
  assert.match(recs, /No step met every target/);
  const chart = throughputChart(run);
  assert.match(chart, />refused \(429\/503\)</);
  assert.match(chart, />96</, 'the refused bar carries its value');
  assert.match(latencyChart(run), />100 req\/s \(FAIL\)</);
});

test('a log latency axis starts below the lowest line: a 1.02 ms P50 is not drawn on the axis', () => {
  const s = step(100, 1.02, 1.05);
  const svg = latencyChart({ settings: settings({ rates: [100] }), intervals: [], steps: [s] });
  assert.match(svg, />0\.1 ms</, 'the axis reaches down to 0.1 ms');
  const axisY = Math.max(...[...svg.matchAll(/<line x1="[\d.]+" y1="([\d.]+)" x2="[\d.]+" y2="\1"/g)].map((m) => Number(m[1])));
  const dots = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.ok(dots.length === 3 && dots.every((y) => y < axisY - 20), `points ${dots} well above the axis at ${axisY}`);
});

test('the XML checker used above rejects broken SVG', () => {
  assert.throws(() => checkWellFormedXml('<svg width="1" height="1"><g></svg>'), /closes/);
  assert.throws(() => checkWellFormedXml('<svg><text>a & b</text></svg>'), /unescaped &/);
  assert.throws(() => checkWellFormedXml('<svg><rect x=1/></svg>'), /stray/);
  assert.throws(() => checkWellFormedXml('<svg></svg><svg></svg>'), /after the root/);
  assert.equal(checkWellFormedXml('<?xml version="1.0"?>\n<svg a="1"><g/></svg>\n').root, 'svg');
});
