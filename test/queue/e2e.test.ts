/**
 * The queue stage through the real sidecar (`bridge-sidecar serve`, single process) in front of the example
 * draft service made slow (service time, own concurrency cap): 503 + Retry-After + problem+json on queue full,
 * class full, queue timeout and displacement; a client that hangs up while queued never reaches the service;
 * weights hold over 10 s of overload and no class starves; the adaptive limit is exported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { startDraftService, type DraftService } from '../../examples/draft-service';
import { basicPolicy, startSidecar, type SidecarProcess } from '../helpers/sidecar';
import { sleep, waitFor } from '../helpers/ports';

const ROUTES = `routes:
  - { name: hi, match: { method: GET, path: /get_font_types }, priority: high }
  - { name: mid, match: { method: GET, path: /get_transition_types }, priority: medium }
  - { name: lo, match: { method: GET, path: /get_text_outro_types }, priority: low }
`;
const PATH = { high: '/get_font_types', medium: '/get_transition_types', low: '/get_text_outro_types' } as const;
type Cls = keyof typeof PATH;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(url: string, opts: { agent?: Agent; signal?: AbortSignal; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: opts.agent ?? false, signal: opts.signal, headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function metric(sc: SidecarProcess, series: string): Promise<number> {
  const text = (await get(sc.adminUrl + '/metrics')).body;
  // summed over label sets (queue_wait_seconds is per priority class)
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ') || line.startsWith(series + '{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function setup(t: { after(fn: () => unknown): void }, service: { serviceTimeMs: number; maxConcurrency: number }, queues: string): Promise<{ svc: DraftService; sc: SidecarProcess }> {
  const svc = await startDraftService({ ...service, seedDrafts: 10 });
  t.after(() => svc.close());
  const sc = await startSidecar(basicPolicy(svc.port, ROUTES + queues));
  t.after(() => sc.stop());
  return { svc, sc };
}

function assertShed(r: Reply, reason: string): void {
  assert.equal(r.status, 503, `status for ${reason}: ${r.status} ${r.body}`);
  const ra = String(r.headers['retry-after']);
  assert.match(ra, /^[1-9][0-9]*$/, `Retry-After ${ra}`);
  assert.equal(r.headers['content-type'], 'application/problem+json');
  const body = JSON.parse(r.body) as { type: string; status: number };
  assert.equal(body.type, `https://bridge-sidecar.dev/problems/shed/${reason}`);
  assert.equal(body.status, 503);
}

test('queue full, class full and displacement: refused at once with 503, Retry-After and problem+json', async (t) => {
  const { sc } = await setup(t, { serviceTimeMs: 200, maxConcurrency: 1 }, `queues:
  max_in_flight: 1
  max_queue_size: 2
  queue_timeout: 60s
  priority_queues: { low: { max_size: 1 } }
`);
  // the holder keeps the only slot for a long time (the service honours X-Service-Time-Ms)
  let holderDone = false;
  const holder = get(sc.url + PATH.medium, { headers: { 'x-service-time-ms': '6000' } }).finally(() => { holderDone = true; });
  await waitFor('holder in flight', async () => (await metric(sc, 'bridge_sidecar_queue_wait_seconds_count')) >= 1, 15_000);
  const q1 = get(sc.url + PATH.low);
  await waitFor('low queued', async () => (await metric(sc, 'bridge_sidecar_queue_length{priority="low"}')) === 1, 15_000);
  assertShed(await get(sc.url + PATH.low), 'class_full');
  const q2 = get(sc.url + PATH.high);
  await waitFor('high queued', async () => (await metric(sc, 'bridge_sidecar_queue_length{priority="high"}')) === 1, 15_000);
  // the queue is full (low + high = max_queue_size 2): a medium request displaces the newest lower one (low)
  const displacing = get(sc.url + PATH.medium);
  assertShed(await q1, 'displaced');
  // now [high, medium]: a low request finds the queue full with nobody below it
  assertShed(await get(sc.url + PATH.low), 'queue_full');
  assert.equal(holderDone, false, 'refusals came at once, not after the upstream freed a slot');
  assert.equal((await holder).status, 200);
  assert.equal((await q2).status, 200);
  assert.equal((await displacing).status, 200);
  assert.equal(await metric(sc, 'bridge_sidecar_shed_total{reason="class_full"}'), 1);
  assert.equal(await metric(sc, 'bridge_sidecar_shed_total{reason="queue_full"}'), 1);
  assert.equal(await metric(sc, 'bridge_sidecar_shed_total{reason="displaced"}'), 1);
});

test('queue timeout: a request that waits queue_timeout is refused with 503 and never reaches the service', async (t) => {
  // the holder stays long past the 300 ms timeout however slowly the test's own steps run on a busy machine
  const { sc, svc } = await setup(t, { serviceTimeMs: 4000, maxConcurrency: 1 }, `queues:
  max_in_flight: 1
  queue_timeout: 300ms
`);
  const holder = get(sc.url + PATH.high);
  await waitFor('holder in flight', () => svc.stats().inFlight === 1, 15_000);
  const t0 = performance.now();
  const r = await get(sc.url + PATH.low);
  const waited = performance.now() - t0;
  assertShed(r, 'queue_timeout');
  assert.ok(waited >= 250, `refused after the timeout (${waited.toFixed(0)} ms)`);
  assert.equal((await holder).status, 200);
  assert.equal(svc.stats().byPath[PATH.low] ?? 0, 0);
  assert.equal(await metric(sc, 'bridge_sidecar_shed_total{reason="queue_timeout"}'), 1);
  assert.equal(await metric(sc, 'bridge_sidecar_queue_length{priority="low"}'), 0);
});

test('a client that hangs up while queued leaves the queue at once and never reaches the service', async (t) => {
  // the holder must outlast every step up to "still only the holder", which polls metrics on a busy machine
  const { sc, svc } = await setup(t, { serviceTimeMs: 5000, maxConcurrency: 1 }, `queues:
  max_in_flight: 1
  queue_timeout: 60s
`);
  const holder = get(sc.url + PATH.high);
  await waitFor('holder in flight', () => svc.stats().inFlight === 1, 15_000);
  const ac = new AbortController();
  const quitter = get(sc.url + PATH.low, { signal: ac.signal }).catch((e: Error) => e);
  await waitFor('quitter queued', async () => (await metric(sc, 'bridge_sidecar_queue_length{priority="low"}')) === 1, 15_000);
  ac.abort();
  assert.ok((await quitter) instanceof Error);
  await waitFor('quitter removed', async () => (await metric(sc, 'bridge_sidecar_queue_length{priority="low"}')) === 0, 5_000);
  assert.equal(await metric(sc, 'bridge_sidecar_shed_total{reason="client_gone"}'), 1);
  assert.equal(svc.stats().inFlight, 1, 'still only the holder at the service');
  assert.equal((await holder).status, 200);
  await sleep(200);
  assert.equal(svc.stats().byPath[PATH.low] ?? 0, 0, 'the quitter never reached the service');
});

test('weights hold within ±10 % over 10 s of overload, and no class starves', async (t) => {
  const { sc } = await setup(t, { serviceTimeMs: 25, maxConcurrency: 4 }, `queues:
  max_in_flight: 4
  queue_timeout: 60s
`);
  // closed-loop clients, 8 per class: with 4 slots upstream every class always has requests waiting
  const counts: Record<Cls, number> = { high: 0, medium: 0, low: 0 };
  const errors: string[] = [];
  let measuring = false;
  let running = true;
  const agents: Agent[] = [];
  const loops: Array<Promise<void>> = [];
  for (const cls of Object.keys(PATH) as Cls[]) {
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    agents.push(agent);
    for (let i = 0; i < 8; i++) {
      loops.push((async () => {
        for (let n = 0; running && n < 100_000; n++) {
          const r = await get(sc.url + PATH[cls], { agent }).catch((e: Error) => ({ status: 0, body: e.message, headers: {} }));
          if (r.status === 200) {
            if (measuring) counts[cls]++;
          } else errors.push(`${r.status} ${r.body.slice(0, 80)}`);
        }
      })());
    }
  }
  t.after(() => {
    running = false;
    for (const a of agents) a.destroy();
  });
  await sleep(1000);
  measuring = true;
  await sleep(10_000);
  measuring = false;
  running = false;
  await Promise.all(loops);
  const total = counts.high + counts.medium + counts.low;
  t.diagnostic(`served in 10 s: ${JSON.stringify(counts)}; errors ${errors.length}`);
  assert.deepEqual(errors.slice(0, 3), []);
  assert.ok(total >= 100, `enough requests to judge (${total})`);
  for (const [cls, want] of [['high', 3 / 6], ['medium', 2 / 6], ['low', 1 / 6]] as Array<[Cls, number]>) {
    const share = counts[cls] / total;
    assert.ok(Math.abs(share - want) <= want * 0.1, `${cls}: ${share.toFixed(3)} vs ${want.toFixed(3)}`);
  }
  assert.ok(counts.low > 0, 'low is not starved');
});

test('max_in_flight: auto exports the adaptive limit as bridge_sidecar_concurrency_limit', async (t) => {
  const { sc } = await setup(t, { serviceTimeMs: 20, maxConcurrency: 4 }, `queues:
  max_in_flight: auto
`);
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  t.after(() => agent.destroy());
  const replies = await Promise.all(Array.from({ length: 120 }, () => get(sc.url + PATH.medium, { agent })));
  assert.ok(replies.every((r) => r.status === 200));
  const limit = await metric(sc, 'bridge_sidecar_concurrency_limit');
  assert.ok(limit >= 1 && limit <= 1000, `limit ${limit}`);
});

test('a policy reload applies a new max_in_flight to the live queue and keeps its waiters', async (t) => {
  // the holder must still be at the service when the reload lands (a loaded machine takes a second or more)
  const { sc, svc } = await setup(t, { serviceTimeMs: 8000, maxConcurrency: 10 }, `queues:
  max_in_flight: 1
  queue_timeout: 60s
`);
  const holder = get(sc.url + PATH.high);
  await waitFor('holder in flight', () => svc.stats().inFlight === 1, 15_000);
  const waiters = [get(sc.url + PATH.low), get(sc.url + PATH.low), get(sc.url + PATH.medium)];
  await waitFor('three queued', async () =>
    (await metric(sc, 'bridge_sidecar_queue_length{priority="low"}')) === 2 && (await metric(sc, 'bridge_sidecar_queue_length{priority="medium"}')) === 1, 15_000);
  writeFileSync(sc.policyFile, readFileSync(sc.policyFile, 'utf8').replace('max_in_flight: 1', 'max_in_flight: 4'));
  process.kill(sc.proc.pid!, 'SIGHUP');
  // all three waiters reach the service while the holder is still there: nobody was dropped by the reload
  await waitFor('waiters admitted under the new limit', () => svc.stats().inFlight === 4, 20_000);
  assert.equal(await metric(sc, 'bridge_sidecar_concurrency_limit'), 4);
  for (const r of await Promise.all([holder, ...waiters])) assert.equal(r.status, 200);
  assert.equal(await metric(sc, 'bridge_sidecar_shed_total{reason="queue_timeout"}'), 0);
});
