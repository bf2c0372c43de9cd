/**
 * The report as a person sees it: `bridge-sidecar loadtest` against a real sidecar whose global rate limit
 * (20 req/s) refuses most of a 150 req/s step, and the report's charts rendered by headless Chromium
 * (`CHROMIUM`, default /usr/bin/chromium; Debian package `chromium`). The refusals must show: in the words of
 * the Markdown (the step FAILs and says why; pass/fail in words), in the throughput chart's refused bars, and in
 * the rendered screenshot's pixels (the refused bars' orange is drawn).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy } from '../helpers/sidecar';
import { buildRoot } from '../helpers/repo';
import { decodePng, countColour } from './png';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const REFUSED = '#f59f00';
const ACHIEVED = '#1971c2';

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A screenshot of `html` by headless Chromium, with the flags that keep it off the network. */
async function screenshot(html: string, dir: string, width: number, height: number): Promise<Buffer> {
  const page = join(dir, 'page.html');
  const png = join(dir, 'shot.png');
  writeFileSync(page, html);
  const r = await run(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--hide-scrollbars', `--user-data-dir=${join(dir, 'profile')}`,
    `--window-size=${width},${height}`, `--screenshot=${png}`, `file://${page}`], 90_000);
  assert.equal(r.code, 0, `${CHROMIUM} failed (install the Debian package chromium): ${r.stderr}`);
  return readFileSync(png);
}

test('a run against a rate-limited sidecar: the report and its charts, rendered by Chromium, show the refusals', { timeout: 180_000 }, async (t) => {
  assert.equal(spawnSync(CHROMIUM, ['--version']).status, 0, `${CHROMIUM} is missing: install the Debian package chromium`);
  const dir = mkdtempSync(join(tmpdir(), 'loadtest-render-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const upstream = await startDraftService({ port: 0, host: '127.0.0.1' });
  t.after(() => upstream.close());
  const sc = await startSidecar(basicPolicy(upstream.port, 'rate_limiting:\n  global: { requests_per_second: 20, burst_size: 5 }\n'));
  t.after(() => sc.stop());

  const report = join(dir, 'report.md');
  const res = await run(process.execPath, [join(buildRoot(), 'cmd', 'bridge-sidecar.js'), 'loadtest', '--target', `${sc.url}/get_mask_types`,
    '--steps', '10,150', '--duration', '3s', '--pause', '500ms', '--connections', '16', '--metrics', `${sc.adminUrl}/metrics`, '--report', report], 120_000);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /150 req\/s: requested 150\/s {2}achieved [\d.]+\/s {2}refused \d+ \(429\/503\)/);

  const md = readFileSync(report, 'utf8');
  const json = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as { steps: Array<{ achievedRate: number; answeredRate: number; refused: number; completed: number; holds: boolean }> };
  const [calm, limited] = json.steps;
  assert.ok(limited.refused / limited.completed > 0.6, `most of the 150 req/s step is refused: ${limited.refused}/${limited.completed}`);
  assert.ok(limited.achievedRate < 40, `achieved counts successful answers only (${limited.achievedRate} req/s), not the ${limited.answeredRate} answered`);
  assert.equal(limited.holds, false);
  assert.equal(calm.refused, 0, 'the step under the limit is served (its latency verdict depends on this machine\'s load)');
  // in words: the failing step and why; the passing one
  assert.match(md, /\| P50 \| < 100 ms \| [\d.]+ m?s (pass ✅|FAIL ❌) \| [\d.]+ m?s FAIL ❌ \(\d+ % of the answers were refusals \(429\/503\)\) \|/);
  assert.match(md, /\| 150 \| [\d.]+( \(\d+ unsent\))? \| [\d.]+ \| 0\.0 \|.*FAIL ❌: \d+ % of the answers were refusals \(429 rate limited ×\d+\)/);
  assert.match(md, /The latency targets were NOT met at 150 req\/s: most answers were refusals/);
  assert.doesNotMatch(md, /All latency targets .* held/);
  assert.match(md, /\| 150 req\/s \| – \| – \| 0 \| \d+ \|/, 'the sidecar\'s own count of 429s');

  // the charts, rendered: the refused series is drawn, and the latency axis starts below its lowest line
  const throughput = readFileSync(join(dir, 'report-throughput.svg'), 'utf8');
  const latency = readFileSync(join(dir, 'report-latency.svg'), 'utf8');
  assert.match(throughput, />refused \(429\/503\)</);
  assert.match(latency, /\(FAIL\)</);
  const html = `<!doctype html><html><body style="margin:0;background:#fff">${throughput.replace(/^<\?xml[^>]*>\n/, '')}${latency.replace(/^<\?xml[^>]*>\n/, '')}</body></html>`;
  const png = await screenshot(html, dir, 760, 820);
  const img = decodePng(png);
  assert.equal(img.width, 760);
  const refusedPixels = countColour(img, REFUSED);
  const achievedPixels = countColour(img, ACHIEVED);
  t.diagnostic(`screenshot ${png.length} B, ${img.width}x${img.height}: ${refusedPixels} refused-orange pixels, ${achievedPixels} achieved-blue pixels`);
  assert.ok(refusedPixels > 2000, `the refused bars are drawn (${refusedPixels} px)`);
  assert.ok(achievedPixels > 200, `the achieved bars are drawn (${achievedPixels} px)`);
});
