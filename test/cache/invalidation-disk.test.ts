/**
 * An invalidation does not wait for the disk or for background writes: a write route's answer is let go once
 * no tier of the pod serves the old data (L1 removed, L3 entries out of the index, the patterns recorded), and
 * the files and any background write that was already running are cleaned up after it. Real upstream on
 * 127.0.0.1, a real L3 directory, the sidecar's pipeline in this process (test/cache/harness.ts).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { policy, request, startSidecar, startUpstream, tempDir, type Sidecar } from './harness';
import { DRAIN_TIMEOUT_MS } from '../../lib/cache/invalidation/engine';
import { startRedis } from '../helpers/redis';

/**
 * An upstream whose drafts answer {"version"} (a POST to a draft bumps it) and a sidecar with a cached read
 * route and a write route that emits draft_updated, with `tiers` (the cache section's tiers) and `extra` YAML.
 */
async function draftSidecar(t: TestContext, tiers: string, extra = ''): Promise<Sidecar> {
  let version = 1;
  const up = await startUpstream((req) => {
    if (req.method === 'POST') version++;
    return { headers: { 'content-type': 'application/json', 'cache-control': 'max-age=300' }, body: JSON.stringify({ version }) };
  });
  t.after(() => up.close());
  const sc = await startSidecar(policy(up.url, `${extra}
routes:
  - name: read
    match: { method: GET, path: "/drafts/{id}" }
    params: { draft_id: path.id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m }
  - name: write
    match: { method: POST, path: "/drafts/{id}" }
    params: { draft_id: path.id }
    emits: [draft_updated]
cache:
${tiers}
  invalidation:
    triggers: [draft_updated]
    patterns: ["draft:{draft_id}:*"]
    cascade: true
    async: true
`));
  t.after(() => sc.close());
  return sc;
}

test('a write route answers while a background write is stalled, and the old copy that write lands later is removed', async (t) => {
  const dir = tempDir(t);
  const sc = await draftSidecar(t, `  l1: { size: 10MB }\n  l3: { path: "${dir}", size: 10MB }`);
  const tiers = sc.cache.tiers;

  assert.match(String((await request(sc.url, { path: '/drafts/1' })).headers['cache-status']), /fwd=miss; stored/);
  await sc.cache.flush(); // the L3 copy is on disk
  const stored = [...tiers.l1!.keys()];
  assert.equal(stored.length, 1);
  const KEY = stored[0]!; // draft:1:script and the variant's digest
  assert.ok(KEY.startsWith('draft:1:script'), KEY);
  const old = tiers.getL1(KEY);
  const l3Count = () => tiers.l3!.count;
  assert.ok(old !== null && old.entry !== null && l3Count() === 1, `v1 is in L1 and L3: ${[...tiers.l1!.keys()].join(', ')} / ${[...tiers.l3!.keys()].join(', ')}`);

  // a background write that is running when the event comes (a disk or Redis write that hangs), and that will
  // put the old copy into L3 when it finishes
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  let running = false;
  tiers.writer.enqueue(async () => {
    running = true;
    await gate;
    await tiers.l3!.set(KEY, old.entry!, 300_000);
  });
  for (let i = 0; i < 100 && !running; i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(running, 'the stalled write started');

  const t0 = performance.now();
  const w = await request(sc.url, { method: 'POST', path: '/drafts/1', body: '{}', headers: { 'content-type': 'application/json' } });
  const ms = performance.now() - t0;
  assert.equal(w.status, 200);
  // before, the answer waited for every background write (bounded by DRAIN_TIMEOUT_MS) and then for the unlinks
  assert.ok(ms < DRAIN_TIMEOUT_MS, `the write's answer took ${ms.toFixed(0)} ms: it waited for the stalled background write`);
  assert.equal(tiers.getL1(KEY), null, 'L1 no longer holds v1');
  assert.equal(await tiers.l3!.get(KEY), null, 'L3 no longer indexes v1');

  // the stalled write lands the old copy now: a read does not take it, and the cleanup removes it
  release();
  for (let i = 0; i < 100 && l3Count() === 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(await tiers.getLower(KEY), null, 'the late old copy is refused by a lookup');
  await sc.invalidator.idle();
  assert.equal(await tiers.l3!.get(KEY), null, 'the cleanup removed the late old copy from L3');

  const r = await request(sc.url, { path: '/drafts/1' });
  assert.equal(JSON.parse(r.body).version, 2);
  assert.doesNotMatch(String(r.headers['cache-status']), /; hit/);
});

test('a fill\'s L2 write already on its way when the event comes is deleted again once it lands', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const sc = await draftSidecar(t, '  l1: { size: 10MB }\n  l2: { ttl: 5m }', `redis: { url: "${redis.url}", command_timeout: 500ms }`);
  const l2 = sc.cache.tiers.l2!;
  // the L2 SET of the next fill is slow: it is on its way (started, not landed) when the write comes
  const set = l2.set.bind(l2);
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  let started = false;
  l2.set = async (...args: Parameters<typeof l2.set>) => { started = true; await gate; return set(...args); };

  assert.match(String((await request(sc.url, { path: '/drafts/1' })).headers['cache-status']), /fwd=miss; stored/);
  const key = [...sc.cache.tiers.l1!.keys()][0]!;
  for (let i = 0; i < 250 && !started; i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(started, 'the fill\'s L2 write started');

  const w = await request(sc.url, { method: 'POST', path: '/drafts/1', body: '{}', headers: { 'content-type': 'application/json' } });
  assert.equal(w.status, 200);
  release(); // v1 reaches Redis after the event's own L2 removal
  await sc.cache.flush();
  await sc.invalidator.idle();
  assert.equal((await l2.get(key)).entry, null, 'the old copy that landed after the event is not left in L2');
});
