/**
 * Invalidation across pods: two real sidecar processes (two "pods") sharing one redis-server, the rule for a
 * pod whose link to Redis was lost (it may have missed events), and the pod that raised an event while its own
 * link was down (the others must still learn of it).
 */
import { test, type TestContext } from 'node:test';
import http from 'node:http';
import { Redis } from 'ioredis';
import assert from 'node:assert/strict';
import { startSidecar, type SidecarProcess } from '../helpers/sidecar';
import { startRedis, type RedisInstance } from '../helpers/redis';
import { sleep, waitFor } from '../helpers/ports';
import { startTcpGate } from '../helpers/tcp-gate';
import { startDraftService } from '../../examples/draft-service/server';
import { inL2, addVideo, draftPolicy, isHit, queryScript, request, tempDir, cacheStatus, PROPAGATION_MARGIN_MS, type DraftPolicyOptions, type Reply } from './helpers';

/** The example draft service, one redis-server and two sidecars ("pods") sharing it; all stopped after the test. */
async function twoPods(t: TestContext, aOpts: DraftPolicyOptions = {}): Promise<{ redis: RedisInstance; a: SidecarProcess; b: SidecarProcess }> {
  const svc = await startDraftService({ port: 0 });
  t.after(() => svc.close());
  const redis = await startRedis();
  t.after(() => redis.stop());
  const a = await startSidecar(draftPolicy(svc.port, { redis: redis.url, ...aOpts }), { timeoutMs: 60_000 });
  t.after(() => a.stop());
  const b = await startSidecar(draftPolicy(svc.port, { redis: redis.url }));
  t.after(() => b.stop());
  return { redis, a, b };
}

test('a write through pod A invalidates pod B\'s L1 and L3 (pub/sub) and the shared L2 within 1 s', async (t) => {
  const svc = await startDraftService({ port: 0 });
  t.after(() => svc.close());
  const redis = await startRedis();
  t.after(() => redis.stop());
  const dir = tempDir(t);
  const a = await startSidecar(draftPolicy(svc.port, { redis: redis.url, l3Dir: dir + '/a' }));
  t.after(() => a.stop());
  const b = await startSidecar(draftPolicy(svc.port, { redis: redis.url, l3Dir: dir + '/b' }));
  t.after(() => b.stop());

  const old = (await queryScript(b.url, 'dft_000003')).body;
  const hitB = await queryScript(b.url, 'dft_000003');
  assert.match(cacheStatus(hitB), /hit; .*detail=l1/);
  // A gets it from the shared L2 (and keeps it in its own L1)
  await waitFor('B\'s entry in L2', () => inL2(redis.port, 'draft:dft_000003:script'), 10_000, 50);
  assert.match(cacheStatus(await queryScript(a.url, 'dft_000003')), /detail=l2/);

  const w = await addVideo(a.url, 'dft_000003');
  assert.equal(w.status, 200);
  const written = Date.now();
  // read-your-write through A at once
  const ra = await queryScript(a.url, 'dft_000003');
  assert.ok(!isHit(ra), cacheStatus(ra));
  assert.notEqual(ra.body, old);
  // B drops its copy on the pub/sub message: poll until it does (the propagation time is measured by
  // bench/invalidation.ts; here only that it happens, so a busy machine cannot fail it)
  let seen = -1;
  while (Date.now() - written < PROPAGATION_MARGIN_MS) {
    const r = await queryScript(b.url, 'dft_000003');
    if (r.body !== old) { seen = Date.now() - written; break; }
    await sleep(20);
  }
  assert.ok(seen >= 0, `pod B still served the old draft ${PROPAGATION_MARGIN_MS / 1000} s after the write through pod A`);
  // the delay is observed once B's whole removal (L1, L3 and its L2 keys) has finished: that may be a moment
  // after the read above already saw the new draft
  await waitFor('pod B to record the event-to-removal delay', async () =>
    /bridge_sidecar_invalidation_delay_seconds_count [1-9]/.test((await request(b.adminUrl, { path: '/metrics' })).body), 5000, 50);
  // pod B did not raise it, so it does not count it as its own event
  const m = (await request(b.adminUrl, { path: '/metrics' })).body;
  assert.doesNotMatch(m, /bridge_sidecar_invalidations_total\{event="draft_updated"\}/);
});

test('a read through pod B just before the write: B\'s late write-behind does not leave the old draft in L2', async (t) => {
  const { redis, a, b } = await twoPods(t);
  for (let round = 0; round < 5; round++) {
    const id = `dft_00001${round}`;
    const old = (await queryScript(b.url, id)).body; // B stores it: L1 now, L2 within a write-behind batch
    assert.equal((await addVideo(a.url, id)).status, 200); // at once, likely before B's batch reached L2
    const written = Date.now();
    let fresh = false;
    while (Date.now() - written < PROPAGATION_MARGIN_MS) {
      if ((await queryScript(b.url, id)).body !== old) { fresh = true; break; }
      await sleep(20);
    }
    assert.ok(fresh, `round ${round}: pod B still served the old draft ${PROPAGATION_MARGIN_MS / 1000} s after the write`);
    await sleep(300); // any write-behind still pending has landed by now
    // pod A never had it in L1: it reads L2, which must not hold the old draft
    const viaA = await queryScript(a.url, id);
    assert.notEqual(viaA.body, old, `round ${round}: L2 kept the old draft (${cacheStatus(viaA)})`);
  }
});

test('reconnect rule: after losing Redis, entries stored before it came back (before and during the outage) are not served from L1/L3', async (t) => {
  const svc = await startDraftService({ port: 0 });
  t.after(() => svc.close());
  const redis = await startRedis();
  t.after(() => redis.stop());
  const dir = tempDir(t);
  const sc = await startSidecar(draftPolicy(svc.port, { redis: redis.url, l3Dir: dir + '/l3' }));
  t.after(() => sc.stop());

  await queryScript(sc.url, 'dft_000004');
  assert.match(cacheStatus(await queryScript(sc.url, 'dft_000004')), /detail=l1/);
  await sleep(300); // write-behind reaches L3
  await redis.kill(); // the pod may now miss invalidations
  await sc.waitForLog((l) => l.msg === 'redis connection lost' && l.role === 'invalidate', 15_000);
  // stored while the channel is down: another pod's write announced now would never reach this pod
  await queryScript(sc.url, 'dft_000005');
  assert.match(cacheStatus(await queryScript(sc.url, 'dft_000005')), /detail=l1/);
  await redis.restart();
  const warn = await sc.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('invalidation channel was down'), 20_000);
  assert.ok(Number(warn.dropped_l1) >= 1, JSON.stringify(warn));
  assert.ok(Number(warn.dropped_l3) >= 1, JSON.stringify(warn));
  const after = await queryScript(sc.url, 'dft_000004');
  assert.equal(after.status, 200);
  assert.ok(!isHit(after), `an entry stored before the outage was served: ${cacheStatus(after)}`);
  const during = await queryScript(sc.url, 'dft_000005');
  assert.equal(during.status, 200);
  assert.ok(!isHit(during), `an entry stored during the outage was served: ${cacheStatus(during)}`);
  const m = (await request(sc.adminUrl, { path: '/metrics' })).body;
  assert.match(m, /bridge_sidecar_invalidation_resyncs_total [1-9]/);
});

test('a write through a pod whose own link to Redis is down still reaches the other pods, once the link is back', async (t) => {
  const svc = await startDraftService({ port: 0 });
  t.after(() => svc.close());
  const redis = await startRedis();
  t.after(() => redis.stop());
  // pod B reaches Redis through a gate the test can shut: B's link goes down, A's stays up
  const gate = await startTcpGate(redis.port);
  t.after(() => gate.close());
  const dir = tempDir(t);
  const a = await startSidecar(draftPolicy(svc.port, { redis: redis.url, l3Dir: dir + '/a' }));
  t.after(() => a.stop());
  const b = await startSidecar(draftPolicy(svc.port, { redis: `redis://127.0.0.1:${gate.port}`, l3Dir: dir + '/b' }));
  t.after(() => b.stop());
  await b.waitForLog((l) => l.msg === 'redis connected' && l.role === 'main', 15_000);

  const old = (await queryScript(a.url, 'dft_000006')).body;
  assert.match(cacheStatus(await queryScript(a.url, 'dft_000006')), /hit; .*detail=l1/);

  await gate.shut();
  await b.waitForLog((l) => l.msg === 'redis connection lost' && l.role === 'main', 15_000);
  const w = await addVideo(b.url, 'dft_000006');
  assert.equal(w.status, 200, 'the write is served while Redis is unreachable');
  const fresh = (await queryScript(b.url, 'dft_000006')).body;
  assert.notEqual(fresh, old, 'read-your-write through B');
  await b.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('invalidation could not be published'), 15_000);
  assert.match((await request(b.adminUrl, { path: '/metrics' })).body, /bridge_sidecar_invalidations_held [1-9]/);

  await gate.open();
  await b.waitForLog((l) => l.msg === 'held invalidations sent to the other pods', PROPAGATION_MARGIN_MS);
  await waitFor('pod A to drop the draft B wrote while its link was down', async () => (await queryScript(a.url, 'dft_000006')).body === fresh, PROPAGATION_MARGIN_MS, 50);
  assert.match((await request(b.adminUrl, { path: '/metrics' })).body, /bridge_sidecar_invalidations_held 0\b/);
});

/** One keep-alive connection to `base` (so its requests stay with the worker that accepted it). */
function pinnedClient(base: string, t: TestContext): (draftId: string) => Promise<Reply> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const u = new URL(base);
  return (draftId) => new Promise((resolve, reject) => {
    const body = JSON.stringify({ draft_id: draftId, force_update: false });
    const req = http.request({ host: u.hostname, port: Number(u.port), method: 'POST', path: '/query_script', agent,
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-user-id': '7' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

test('a sibling\'s copy relayed late by a stalled primary does not outlive an invalidation that came straight from Redis', async (t) => {
  // Workers share their L1 stores through the primary; other pods' invalidations reach each worker straight
  // from Redis. When the primary is slow (stopped here), a copy stored before the write can arrive after the
  // invalidation: it must be refused, or that worker serves the old draft for its whole TTL.
  const { a, b } = await twoPods(t, { workers: 2 });

  // keep-alive connections opened one after the other: the primary hands them to the workers in turn
  const conns = [pinnedClient(a.url, t), pinnedClient(a.url, t), pinnedClient(a.url, t), pinnedClient(a.url, t)];
  for (const c of conns) assert.equal((await c('dft_000030')).status, 200);

  const primary = a.proc.pid!;
  process.kill(primary, 'SIGSTOP');
  let stopped = true;
  const resume = () => { if (stopped) { stopped = false; process.kill(primary, 'SIGCONT'); } };
  t.after(resume);
  // both workers store the draft (their copies for each other wait in the stopped primary)
  const first = await conns[0]!('dft_000031');
  assert.equal(first.status, 200);
  const old = first.body;
  let other: ((id: string) => Promise<Reply>) | null = null;
  for (const c of conns.slice(1)) {
    const r = await c('dft_000031');
    assert.equal(r.body, old);
    if (!/detail=l1/.test(cacheStatus(r))) { other = c; break; } // not an L1 hit: the other worker
  }
  assert.ok(other !== null, 'the keep-alive connections reached both workers');

  // a write through pod B: its invalidation reaches both workers of A from Redis, without A's primary
  assert.equal((await addVideo(b.url, 'dft_000031')).status, 200);
  await waitFor('pod B to raise the event', async () =>
    /bridge_sidecar_invalidations_total\{event="draft_updated"\} 1/.test((await request(b.adminUrl, { path: '/metrics' })).body), 10_000, 20);
  await sleep(1000); // pub/sub to A's workers: milliseconds (A's admin port is the stopped primary's: nothing to poll)
  resume(); // the primary relays the copies stored before the write
  // a busy machine may deliver the event later than that: each worker must come to the new draft within the
  // propagation margin (a relayed old copy kept after the event stays for its whole TTL, so this still fails)
  for (const [name, c] of [['first', conns[0]!], ['other', other]] as const) {
    await waitFor(`the ${name} worker to serve the draft as it is after the write`, async () => (await c('dft_000031')).body !== old, PROPAGATION_MARGIN_MS, 100)
      .catch(() => undefined); // the assertion below says what it served
  }
  await sleep(1000); // relayed copies still in transit land now

  for (const [name, c] of [['first', conns[0]!], ['other', other]] as const) {
    const r = await c('dft_000031');
    assert.equal(r.status, 200);
    assert.notEqual(r.body, old, `the ${name} worker served the draft as it was before the write (Cache-Status: ${cacheStatus(r)})`);
  }
});

test('an old copy written back to L2 after the invalidation (another pod\'s late write-behind) is not served', async (t) => {
  // The write-behind of a pod that stored the old draft just before the write can reach Redis after the
  // invalidation removed L2's copy (it is drained and deleted again when that pod applies the event, but other
  // pods read L2 in between). Here the late write is made by hand: the old entry's exact bytes, put back.
  const { redis, a, b } = await twoPods(t);
  const client = new Redis(redis.url, { lazyConnect: false });
  t.after(() => client.disconnect());

  const old = (await queryScript(a.url, 'dft_000040')).body;
  await waitFor('A\'s entry in L2', () => inL2(redis.port, 'draft:dft_000040:script'), 10_000, 50);
  const keys = await client.keys('inv:c:draft:dft_000040:*');
  assert.ok(keys.length > 0, 'the entry and its variant marker are in L2');
  const saved = await Promise.all(keys.map(async (k) => [k, await client.getBuffer(k)] as const));

  assert.equal((await addVideo(b.url, 'dft_000040')).status, 200);
  await waitFor('pod A to apply the event', async () =>
    /bridge_sidecar_invalidation_delay_seconds_count [1-9]/.test((await request(a.adminUrl, { path: '/metrics' })).body), PROPAGATION_MARGIN_MS, 50);
  for (const [k, v] of saved) if (v !== null) await client.set(k, v, 'PX', 60_000); // the late write-behind

  const r = await queryScript(a.url, 'dft_000040');
  assert.equal(r.status, 200);
  assert.notEqual(r.body, old, `pod A served the draft as it was before the write (Cache-Status: ${cacheStatus(r)})`);
  assert.ok(!isHit(r), cacheStatus(r));
});
