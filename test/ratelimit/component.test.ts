/**
 * The rate-limit component in this process (single-process mode: SingleCoordinator + the pod lease service),
 * driven with a manual clock so counts over a simulated 10 s fixed-rate run are exact and fast.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SingleCoordinator } from '../../lib/server/ipc';
import { RateLimitComponent, RateLimitLeaseService, sendRateLimited, endpointKeyFor, ManualClock } from '../../lib/stages/ratelimit';
import pino from 'pino';
import { silentLogger, type Logger } from '../../lib/observe/logger';
import type { RateLimitDecision, RateLimitView } from '../../lib/stages/ratelimit';
import type { RequestContext } from '../../lib/core/context';
import { ctxFor, rlPolicy, runtime, within5 } from './helpers';

function setup(t: { after(fn: () => unknown): void }, log: Logger = silentLogger) {
  const clock = new ManualClock(1_000_000);
  const coordinator = new SingleCoordinator();
  const service = new RateLimitLeaseService(coordinator, silentLogger, clock.now);
  const rt = runtime({ coordinator, log });
  const comp = new RateLimitComponent(rt, { clock: clock.now });
  t.after(async () => { await comp.close(); await service.close(); });
  return { clock, rt, comp, service };
}

/** Simulated open-loop sender: `rate` requests/s for `seconds`, time advanced by hand. */
async function simulate(
  env: { clock: ManualClock; comp: RateLimitComponent },
  stage: RateLimitView,
  ctx: (i: number) => RequestContext,
  rate: number,
  seconds: number,
): Promise<{ admitted: number; refused: Map<string, number>; decisions: RateLimitDecision[] }> {
  const n = rate * seconds;
  const step = 1000 / rate;
  const start = env.clock.t;
  let admitted = 0;
  const refused = new Map<string, number>();
  const decisions: RateLimitDecision[] = [];
  for (let i = 0; i < n; i++) {
    env.clock.t = start + i * step;
    const d = await stage.check(ctx(i));
    if (i % 10 === 0) env.comp.leases.sweep();
    decisions.push(d);
    if (d.allowed) admitted++;
    else refused.set(d.scope, (refused.get(d.scope) ?? 0) + 1);
  }
  env.clock.t = start + seconds * 1000;
  env.comp.leases.sweep();
  return { admitted, refused, decisions };
}

async function counterValue(rt: ReturnType<typeof runtime>, name: string, labels: Record<string, string>): Promise<number> {
  const m = await rt.metrics.registry.getSingleMetric(name)?.get();
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

test('global token bucket: a 10 s fixed-rate run admits rate x 10 + burst (within 5 %)', async (t) => {
  const env = setup(t);
  const stage = env.comp.configure(rlPolicy('global: { requests_per_second: 100, burst_size: 20 }'), null)!;
  const r = await simulate(env, stage, () => ctxFor(), 300, 10);
  t.diagnostic(`admitted ${r.admitted} of 3000, expected 1020`);
  assert.ok(within5(r.admitted, 100 * 10 + 20), `admitted ${r.admitted}`);
  assert.equal(r.refused.get('global'), 3000 - r.admitted);
  assert.equal(await counterValue(env.rt, 'bridge_sidecar_ratelimit_rejected_total', { scope: 'global' }), 3000 - r.admitted);
});

test('per-user sliding window: each user gets rate x 10 + burst, independently', async (t) => {
  const env = setup(t);
  const stage = env.comp.configure(rlPolicy('per_user: { requests_per_minute: 600, burst_size: 20 }'), null)!;
  const r = await simulate(env, stage, (i) => ctxFor({ identity: i % 2 ? 'h:alice' : 'h:bob' }), 100, 10);
  // each of the two users: 10/s x 10 s + 20
  assert.ok(within5(r.admitted, 2 * (10 * 10 + 20)), `admitted ${r.admitted}`);
  assert.ok((r.refused.get('per_user') ?? 0) > 0);
});

test('per-endpoint token buckets: by path and by route name; other paths are not limited', async (t) => {
  const env = setup(t);
  const stage = env.comp.configure(
    rlPolicy('per_endpoint: { /mcp/create_draft: { rps: 50, burst: 10 }, query_script: { rps: 20, burst: 5 } }',
      'routes:\n  - name: query_script\n    match: { method: POST, path: /query_script }'),
    null,
  )!;
  const paths = ['/mcp/create_draft', '/query_script', '/other'];
  let create = 0, query = 0, other = 0;
  const r = await simulate(env, stage, (i) => {
    const p = paths[i % 3]!;
    return p === '/query_script' ? ctxFor({ path: p, route: 'query_script' }) : ctxFor({ path: p });
  }, 300, 10);
  r.decisions.forEach((d, i) => {
    if (!d.allowed) return;
    if (i % 3 === 0) create++;
    else if (i % 3 === 1) query++;
    else other++;
  });
  assert.ok(within5(create, 50 * 10 + 10), `create_draft admitted ${create}`);
  assert.ok(within5(query, 20 * 10 + 5), `query_script admitted ${query}`);
  assert.equal(other, 1000, 'a path with no per_endpoint key is not limited');
  const pe = { per_endpoint: { query_script: {}, '/mcp/create_draft': {} } };
  assert.equal(endpointKeyFor(ctxFor({ path: '/query_script', route: 'query_script' }), pe), 'query_script');
  assert.equal(endpointKeyFor(ctxFor({ path: '/mcp/create_draft', route: 'other_route' }), pe), '/mcp/create_draft');
  assert.equal(endpointKeyFor(ctxFor({ path: '/mcp/create_draft' }), null), null);
  assert.equal(stage.endpointKeyFor(ctxFor({ path: '/mcp/create_draft' })), '/mcp/create_draft');
  assert.equal(stage.endpointKeyFor(ctxFor({ path: '/nope' })), null);
});

test('all three scopes together: the tightest one decides and names itself', async (t) => {
  const env = setup(t);
  const stage = env.comp.configure(rlPolicy(`
global: { requests_per_second: 1000, burst_size: 100 }
per_user: { requests_per_minute: 60, burst_size: 10 }
per_endpoint: { /mcp/save_draft: { rps: 50, burst: 10 } }`), null)!;
  const r = await simulate(env, stage, () => ctxFor({ path: '/mcp/save_draft', identity: 'h:alice' }), 100, 10);
  assert.ok(within5(r.admitted, 10 * 1 + 10) || Math.abs(r.admitted - 20) <= 1, `admitted ${r.admitted}`);
  assert.deepEqual([...r.refused.keys()], ['per_user']);
});

test('a request refused by its user limit does not use up global or endpoint tokens', async (t) => {
  const env = setup(t);
  const stage = env.comp.configure(rlPolicy(`
global: { requests_per_second: 1, burst_size: 10 }
per_user: { requests_per_minute: 1, burst_size: 2 }`), null)!;
  for (let i = 0; i < 10; i++) await stage.check(ctxFor({ identity: 'h:greedy' }));
  // greedy got 2, so 8 global tokens remain for others
  let others = 0;
  for (let i = 0; i < 20; i++) if ((await stage.check(ctxFor({ identity: 'h:u' + i }))).allowed) others++;
  assert.equal(others, 8);
});

test('refusal: Retry-After is the real wait, RateLimit fields name the scope', async (t) => {
  const env = setup(t);
  // 6 per minute: one token every 10 s
  const stage = env.comp.configure(rlPolicy('per_user: { requests_per_minute: 6, burst_size: 2 }'), null)!;
  const ctx = () => ctxFor({ identity: 'h:alice' });
  const a = await stage.check(ctx());
  assert.ok(a.allowed);
  assert.deepEqual(a.headers, [['ratelimit-policy', '"per_user";q=6;w=60'], ['ratelimit', '"per_user";r=1;t=10']]);
  assert.ok((await stage.check(ctx())).allowed);
  env.clock.advance(3000);
  const d = await stage.check(ctx());
  assert.equal(d.allowed, false);
  if (d.allowed) return;
  assert.equal(d.scope, 'per_user');
  assert.equal(d.retryAfter, 7, '10 s per token, 3 s already waited');
  assert.deepEqual(d.headers, [['ratelimit-policy', '"per_user";q=6;w=60'], ['ratelimit', '"per_user";r=0;t=7']]);
  env.clock.advance(7000);
  assert.ok((await stage.check(ctx())).allowed, 'admitted once Retry-After has passed');
});

test('admitted responses carry the fields of the scope closest to its limit', async (t) => {
  const env = setup(t);
  const stage = env.comp.configure(rlPolicy(`
global: { requests_per_second: 100, burst_size: 100 }
per_user: { requests_per_minute: 60, burst_size: 10 }`), null)!;
  let d: RateLimitDecision | null = null;
  for (let i = 0; i < 8; i++) d = await stage.check(ctxFor({ identity: 'h:alice' }));
  assert.ok(d && d.allowed && d.headers);
  assert.equal(d.headers![1]![0], 'ratelimit');
  assert.match(d.headers![1]![1], /^"per_user";r=2;t=8$/);
});

test('sendRateLimited: 429 problem+json with Retry-After and RateLimit fields', async (t) => {
  const server: Server = createServer((_req, res) => {
    sendRateLimited(res, { allowed: false, scope: 'per_user', retryAfter: 12, headers: [['ratelimit-policy', '"per_user";q=60;w=60'], ['ratelimit', '"per_user";r=0;t=12']] });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const { status, headers, body } = await new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    request({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', path: '/' }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: b }));
    }).on('error', reject).end();
  });
  assert.equal(status, 429);
  assert.equal(headers['content-type'], 'application/problem+json');
  assert.equal(headers['retry-after'], '12');
  assert.equal(headers['ratelimit'], '"per_user";r=0;t=12');
  assert.equal(headers['ratelimit-policy'], '"per_user";q=60;w=60');
  const p = JSON.parse(body);
  assert.equal(p.type, 'https://bridge-sidecar.dev/problems/rate-limited/per_user');
  assert.equal(p.title, 'Too Many Requests');
  assert.equal(p.status, 429);
  assert.match(p.detail, /12 s/);
});

test('dry_run: nothing is refused, would-be refusals are counted and logged at most once a second', async (t) => {
  const lines: string[] = [];
  const env = setup(t, pino({ level: 'info' }, { write: (s: string) => { lines.push(s); } }));
  const stage = env.comp.configure(rlPolicy('global: { requests_per_second: 10, burst_size: 10, dry_run: true }'), null)!;
  const r = await simulate(env, stage, () => ctxFor(), 100, 5);
  assert.equal(r.admitted, 500);
  const would = await counterValue(env.rt, 'bridge_sidecar_ratelimit_dry_run_total', { scope: 'global' });
  assert.ok(within5(500 - would, 10 * 5 + 10), `would have admitted ${500 - would}`);
  assert.equal(await counterValue(env.rt, 'bridge_sidecar_ratelimit_rejected_total', { scope: 'global' }), 0);
  const logged = lines.filter((l) => l.includes('dry run')).length;
  assert.ok(logged >= 4 && logged <= 6, `logged ${logged} times in 5 s`);
});

test('reload: other scopes keep their state, an unchanged limit keeps its tokens', async (t) => {
  const env = setup(t);
  const p1 = rlPolicy(`
global: { requests_per_second: 1, burst_size: 50 }
per_user: { requests_per_minute: 1, burst_size: 3 }`);
  const s1 = env.comp.configure(p1, null)!;
  for (let i = 0; i < 5; i++) await s1.check(ctxFor({ identity: 'h:alice' }));
  for (let i = 0; i < 20; i++) await s1.check(ctxFor({ identity: 'h:u' + i }));
  // global: 3 (alice) + 20 = 23 used of 50; alice exhausted
  const p2 = rlPolicy(`
global: { requests_per_second: 1, burst_size: 50 }
per_user: { requests_per_minute: 2, burst_size: 3 }`);
  const s2 = env.comp.configure(p2, p1)!;
  assert.equal((await s2.check(ctxFor({ identity: 'h:alice' }))).allowed, false, 'a changed per_user limit keeps the user\'s used share');
  let admitted = 0;
  for (let i = 0; i < 60; i++) if ((await s2.check(ctxFor({ identity: 'h:v' + i }))).allowed) admitted++;
  assert.equal(admitted, 27, 'the unchanged global bucket kept its 27 tokens (no fresh burst)');
  const p3 = rlPolicy(`
global: { requests_per_second: 1, burst_size: 100 }
per_user: { requests_per_minute: 2, burst_size: 3 }`);
  const s3 = env.comp.configure(p3, p2)!;
  assert.equal((await s3.check(ctxFor({ identity: 'h:alice' }))).allowed, false, 'changing global does not reset per_user');
});

test('identity is resolved by the stage when the pipeline did not', async (t) => {
  const env = setup(t);
  const stage = env.comp.configure(rlPolicy('identity: { header: x-user-id }\nper_user: { requests_per_minute: 60, burst_size: 1 }'), null)!;
  const c1 = ctxFor({ headers: { 'x-user-id': 'alice' } });
  assert.ok((await stage.check(c1)).allowed);
  assert.equal(c1.identity, 'h:alice');
  assert.equal((await stage.check(ctxFor({ headers: { 'x-user-id': 'alice' } }))).allowed, false);
  assert.ok((await stage.check(ctxFor({ headers: { 'x-user-id': 'bob' } }))).allowed);
});

test('no rate_limiting section: no stage', (t) => {
  const env = setup(t);
  const p = rlPolicy('global: { requests_per_second: 1 }');
  assert.ok(env.comp.configure(p, null));
  const none = { ...p, policy: { ...p.policy, rate_limiting: null } };
  assert.equal(env.comp.configure(none, p), null);
});

