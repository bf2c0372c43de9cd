/**
 * The status page in a real headless Chromium (the Debian package), loaded from a real sidecar (two workers) in
 * front of the example draft service under load: the figures move, they are the ones /metrics exports, a reload
 * shows up with its diff, secrets stay hidden, and a screenshot lands in docs/img/ for the README.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { chromium, type BrowserContext } from 'playwright-core';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { startSidecar, type SidecarProcess } from '../helpers/sidecar';
import { sleep, waitFor } from '../helpers/ports';
import { repoRoot } from '../helpers/repo';
import { http, parseMetrics, total } from '../observe/helpers';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

function policy(upstreamPort: number, burst: number): string {
  return `version: 1
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: 2, log_level: warn }
upstream: { url: "http://127.0.0.1:${upstreamPort}" }
redis: { url: "redis://:hunter2-secret@127.0.0.1:1/0", command_timeout: 20ms }
routes:
  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m, store_if: { "response.success": true } }
  - name: query_script_fresh
    match: { method: POST, path: /query_script }
    priority: high
  - name: mask_types
    match: { method: GET, path: /get_mask_types }
rate_limiting:
  identity: { header: x-user-id }
  per_user: { requests_per_minute: 60, burst_size: ${burst} }
  global: { requests_per_second: 5000, burst_size: 500 }
queues: { max_in_flight: 4 }
cache: { l1: { size: 16MB } }
`;
}

let svc: DraftService;
let sc: SidecarProcess;
let browser: BrowserContext;
let stopLoad = false;
let load: Promise<void>;

/** Bounded load: cached reads of 20 drafts, uncached reads, and one greedy user who gets 429s. */
async function runLoad(): Promise<void> {
  const deadline = Date.now() + 120_000;
  const worker = async (w: number) => {
    for (let i = 0; !stopLoad && Date.now() < deadline && i < 200_000; i++) {
      const greedy = i % 5 === 0;
      const fresh = i % 7 === 0;
      const body = JSON.stringify({ draft_id: `dft_${String(1 + (i % 20)).padStart(6, '0')}`, force_update: fresh });
      await http(sc.url + '/query_script', {
        method: 'POST', body,
        // the others spread over 1,000 ids a loop: each stays far below its limit however fast the loop runs, so
        // the greedy user is the one closest to its limit (with 50 a fast run emptied many of theirs, and the
        // status page's top 8 could be all of them, tied with it at 100 %)
        headers: { 'content-type': 'application/json', 'x-user-id': greedy ? 'greedy' : `user-${w}-${i % 1000}` },
      }).catch(() => undefined);
    }
  };
  await Promise.all([0, 1, 2, 3].map(worker));
}

async function metrics(): Promise<ReturnType<typeof parseMetrics>> {
  return parseMetrics((await http(sc.adminUrl + '/metrics')).text);
}

async function stats(): Promise<any> {
  const r = await http(sc.adminUrl + '/stats');
  assert.equal(r.status, 200);
  return JSON.parse(r.text);
}

before(async () => {
  svc = await startDraftService({ serviceTimeMs: 2, seedDrafts: 50 });
  sc = await startSidecar(policy(svc.port, 5), { timeoutMs: 60_000 });
  // the user data dir is a fresh temp dir (playwright passes it as --user-data-dir)
  browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'bridge-chromium-')), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1440, height: 760 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  load = runLoad();
});

after(async () => {
  stopLoad = true;
  await load;
  await browser?.close();
  await sc?.stop();
  await svc?.close();
});

test('the page in Chromium shows moving figures that are the ones /metrics exports; reloads with their diff; no secrets', async () => {
  const page = await browser.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.goto(sc.adminUrl + '/');
  const cell = (route: string, field: string) => page.locator(`tr[data-route="${route}"] td[data-field="${field}"]`);
  const number = async (route: string, field: string) => Number((await cell(route, field).textContent())?.replace(/,/g, ''));

  // the figures move while the load runs
  await waitFor('query_script requests on the page', async () => (await number('query_script', 'total')) > 50, 30_000, 200);
  const first = await number('query_script', 'total');
  await waitFor('the total to move', async () => (await number('query_script', 'total')) > first, 15_000, 200);
  await waitFor('a request rate', async () => (await number('query_script', 'rps')) > 0, 15_000, 200);
  assert.ok(Number.isFinite(await number('query_script', 'p99')), 'p99 shown');

  // what the page shows lies between two /metrics scrapes taken around the page's own reading
  const before = total(await metrics(), 'bridge_sidecar_http_requests_total', { endpoint: 'query_script' });
  await sleep(1500); // the page's next /stats reading is younger than `before`
  const atBefore = await page.locator('#updated').getAttribute('data-at');
  await waitFor('a fresh page update', async () => (await page.locator('#updated').getAttribute('data-at')) !== atBefore, 10_000, 100);
  const shown = await number('query_script', 'total');
  const after = total(await metrics(), 'bridge_sidecar_http_requests_total', { endpoint: 'query_script' });
  assert.ok(before <= shown && shown <= after, `page ${shown} between /metrics ${before} and ${after}`);

  // the greedy user is refused by its per-user limit: the page counts it
  await waitFor('per_user refusals on the page', async () => Number((await page.locator('tr[data-scope="per_user"] td[data-field="rejected"]').textContent())?.replace(/,/g, '')) > 0, 15_000, 200);
  // while it keeps asking, the 'greedy' user is among the limits closest to their limit
  await waitFor('greedy among the closest limits', async () => (await stats()).limits.closest
    .some((b: { scope: string; key: string; used: number }) => b.scope === 'per_user' && b.key === 'h:greedy' && b.used > 0.5), 15_000, 200);
  await waitFor('an L1 hit ratio', async () => /%/.test((await page.locator('tr[data-tier="l1"] td[data-field="hit_ratio"]').textContent()) ?? ''), 15_000, 200);

  // per route: the cached route's share answered from the cache, from route_cache_requests_total; none for the others
  await waitFor('a query_script cache hit ratio', async () => /%/.test((await cell('query_script', 'cache_hit_ratio').textContent()) ?? ''), 15_000, 200);
  const ratio = Number(((await cell('query_script', 'cache_hit_ratio').textContent()) ?? '').replace(/[ %]/g, ''));
  assert.ok(ratio > 0 && ratio <= 100, `a hit ratio in (0, 100] %: ${ratio}`);
  assert.equal((await cell('query_script_fresh', 'cache_hit_ratio').textContent())?.trim(), '–', 'a route without cache has no ratio');
  const routeHits = async () => total(await metrics(), 'bridge_sidecar_route_cache_requests_total', { endpoint: 'query_script', result: 'hit' });
  const hitsBefore = await routeHits();
  const seen = await waitFor('/stats newer than the scrape', async () => {
    const r = (await stats()).routes.find((x: { name: string }) => x.name === 'query_script');
    return r.cache.total.hit > hitsBefore ? r.cache.total.hit as number : 0;
  }, 15_000, 200);
  const hitsAfter = await routeHits();
  assert.ok(hitsBefore < seen && seen <= hitsAfter, `/stats ${seen} between /metrics ${hitsBefore} and ${hitsAfter}`);

  // a reload shows up with what changed, old and new values
  writeFileSync(sc.policyFile, policy(svc.port, 7));
  await waitFor('the reload on the page', async () => ((await page.locator('#reloads').textContent()) ?? '').includes('rate_limiting.per_user'), 20_000, 200);
  const reloads = (await page.locator('#reloads').textContent()) ?? '';
  assert.match(reloads, /"burst_size":5[^→]*→.*"burst_size":7/);

  // Redis is shown down (nothing listens on port 1), and its password never reaches the page or /stats
  await waitFor('redis state', async () => /down/.test((await page.locator('#tuning-kv').textContent()) ?? ''), 15_000, 200);
  const html = await page.content();
  assert.ok(!html.includes('hunter2'), 'the page shows no password');
  assert.ok(html.includes('REDACTED'), 'the redis URL is shown redacted');
  assert.ok(!(await http(sc.adminUrl + '/stats')).text.includes('hunter2'), '/stats shows no password');

  const img = join(repoRoot(), 'docs', 'img');
  if (!existsSync(img)) mkdirSync(img, { recursive: true });
  await page.screenshot({ path: join(img, 'status-page.png'), fullPage: true });
  assert.ok(readFileSync(join(img, 'status-page.png')).length > 10_000, 'a real screenshot');
  assert.deepEqual(pageErrors, [], 'no script errors on the page');
  await page.close();
});

test('once the load stops, /stats totals equal /metrics exactly (same counters), and its rates fall to 0', async () => {
  stopLoad = true;
  await load;
  await sleep(300); // the last responses' metrics are recorded on close
  const m = await metrics();
  await sleep(1000); // /stats takes a reading newer than the scrape above
  const s = await stats();
  const route = s.routes.find((r: { name: string }) => r.name === 'query_script');
  assert.equal(route.total, total(m, 'bridge_sidecar_http_requests_total', { endpoint: 'query_script' }));
  const fresh = s.routes.find((r: { name: string }) => r.name === 'query_script_fresh');
  assert.equal(fresh.total, total(m, 'bridge_sidecar_http_requests_total', { endpoint: 'query_script_fresh' }));
  assert.ok(fresh.total > 0);
  const per = (scope: string) => s.limits.scopes.find((x: { scope: string }) => x.scope === scope);
  assert.equal(per('per_user').rejected_total, total(m, 'bridge_sidecar_ratelimit_rejected_total', { scope: 'per_user' }));
  assert.equal(per('per_user').admitted_total, total(m, 'bridge_sidecar_ratelimit_admitted_total', { scope: 'per_user' }));
  // every request the limiter saw was admitted or refused by its per-user limit
  const requests = total(m, 'bridge_sidecar_http_requests_total');
  assert.equal(per('per_user').admitted_total + per('per_user').rejected_total, requests);
  const l1 = s.cache.tiers.find((t: { layer: string }) => t.layer === 'l1');
  assert.equal(l1.total.hit, total(m, 'bridge_sidecar_cache_requests_total', { layer: 'l1', result: 'hit' }));
  assert.ok(l1.total.hit > 0);
  assert.equal(s.queues.in_flight_limit.current, 4, 'the in-flight limit in force, summed over workers (2 + 2)');
  assert.equal(typeof s.upstream_pool.idle, 'number');
  assert.ok(s.memory.limit_bytes > 0 && s.memory.usage_ratio > 0 && s.memory.usage_ratio < 1);
  // idle: ten seconds later the rates are 0 (the window has moved past the load)
  await sleep(11_000);
  const idle = await stats();
  assert.equal(idle.routes.find((r: { name: string }) => r.name === 'query_script').rps, 0);
});
