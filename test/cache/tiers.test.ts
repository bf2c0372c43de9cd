/**
 * The tiers alone and together, with a real redis-server, a real Redis Cluster and real files: restarts,
 * a second instance sharing Redis, purge everywhere, Redis down or hung, L3 crash safety under kill -9.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, spawnSync } from 'node:child_process';
import { readdirSync, statSync, writeFileSync, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { createHook } from 'node:async_hooks';
import { policy, request, startSidecar, startUpstream, tempDir } from './harness';
import { startRedis, startRedisCluster, REDIS_CLI } from '../helpers/redis';
import { L3Cache } from '../../lib/cache/l3';
import { L1Cache } from '../../lib/cache/l1';
import { makeEntry, selfCheckingBody, bodyIsSelfConsistent } from './fixtures';

const ROUTE = `
routes:
  - name: drafts
    match: { method: GET, path: "/drafts/{id}" }
    params: { id: path.id }
    cache: { key: "draft:{id}:script", ttl: 5m }
`;

function cachePolicy(upUrl: string, tiers: string, redis = ''): string {
  return policy(upUrl, `${ROUTE}\n${redis}\ncache:\n${tiers}\n`);
}

async function draftUpstream(t: { after(fn: () => unknown): void }) {
  const up = await startUpstream((req) => ({ headers: { 'content-type': 'application/json', 'cache-control': 'max-age=300' }, body: JSON.stringify({ url: req.url, pad: 'x'.repeat(2000) }) }));
  t.after(() => up.close());
  return up;
}

function detail(r: { headers: Record<string, unknown> }): string {
  return String(r.headers['cache-status']);
}

test('L1 alone: bounded by bytes, evicts least recently used and counts evictions', () => {
  let evicted = 0;
  const l1 = new L1Cache(20_000, { onEvict: (n) => { evicted += n; } });
  for (let i = 0; i < 10; i++) l1.set('k' + i, makeEntry('k' + i, 'x'.repeat(4000)), 60_000);
  assert.ok(l1.bytes <= 20_000);
  assert.ok(evicted >= 5);
  assert.equal(l1.get('k0'), undefined);
  assert.ok(l1.get('k9'));
  l1.resize(10_000);
  assert.ok(l1.bytes <= 10_000);
  assert.ok(l1.get('k9'), 'the most recent entry survives a shrink');
});

test('L1 lookups arm no timer: a hit at a moderate rate does not wake the event loop again a millisecond later', async () => {
  const l1 = new L1Cache(1_000_000);
  l1.set('k', makeEntry('k', 'x'.repeat(100)), 60_000);
  let timers = 0;
  const hook = createHook({ init(_id, type) { if (type === 'Timeout') timers++; } });
  try {
    // spaced like hits at a few hundred a second: each one finds lru-cache's cached clock reading expired
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setImmediate(r));
      const t0 = performance.now();
      while (performance.now() - t0 < 3) { /* let more than lru-cache's 1 ms clock resolution pass */ }
      hook.enable();
      assert.ok(l1.get('k'), 'the entry is fresh and found');
      hook.disable();
    }
  } finally {
    hook.disable();
  }
  assert.equal(timers, 0, 'no timer was armed by a lookup');
});

test('L3 alone: a new instance on the same directory (a restart) serves L3 hits', async (t) => {
  const up = await draftUpstream(t);
  const dir = tempDir(t);
  const tiers = `  l3: { path: "${dir}", size: 10MB }`;
  const a = await startSidecar(cachePolicy(up.url, tiers));
  assert.match(detail(await request(a.url, { path: '/drafts/1' })), /fwd=miss; stored/);
  await a.close();
  const b = await startSidecar(cachePolicy(up.url, tiers));
  t.after(() => b.close());
  const r = await request(b.url, { path: '/drafts/1' });
  assert.match(detail(r), /hit; ttl=\d+; detail=l3/);
  assert.equal(JSON.parse(r.body).url, '/drafts/1');
  assert.equal(up.count, 1);
});

for (const mode of ['single node', 'cluster'] as const) {
  test(`L2 alone (${mode}): a second sidecar with the same Redis gets an L2 hit`, async (t) => {
    const up = await draftUpstream(t);
    let redisSection: string;
    if (mode === 'single node') {
      const r = await startRedis();
      t.after(() => r.stop());
      redisSection = `redis: { url: "${r.url}", command_timeout: 500ms }`;
    } else {
      const c = await startRedisCluster();
      t.after(() => c.stop());
      redisSection = `redis: { cluster: [${c.seeds.map((s) => `"${s}"`).join(', ')}], command_timeout: 500ms }`;
    }
    const tiers = '  l2: { ttl: 1h }';
    const a = await startSidecar(cachePolicy(up.url, tiers, redisSection));
    t.after(() => a.close());
    const b = await startSidecar(cachePolicy(up.url, tiers, redisSection));
    t.after(() => b.close());
    await request(a.url, { path: '/drafts/5' });
    await a.cache.flush();
    const r = await request(b.url, { path: '/drafts/5' });
    assert.match(detail(r), /hit; ttl=\d+; detail=l2/);
    assert.equal(JSON.parse(r.body).url, '/drafts/5');
    assert.equal(up.count, 1);
    // the key index lets a purge find keys by tag without SCAN
    assert.equal(await b.cache.purge('draft:5:*'), 1);
    assert.match(detail(await request(b.url, { path: '/drafts/5' })), /fwd=miss/);
    assert.equal(up.count, 2);
  });
}

test('three tiers together: L3 hit fills L1 and L2; L2 hit fills L1; purge reaches every tier', async (t) => {
  const up = await draftUpstream(t);
  const r = await startRedis();
  t.after(() => r.stop());
  const dir = tempDir(t);
  const tiers = `  l1: { size: 1MB }\n  l2: { ttl: 1h }\n  l3: { path: "${dir}", size: 10MB }`;
  const redis = `redis: { url: "${r.url}", command_timeout: 500ms }`;
  const a = await startSidecar(cachePolicy(up.url, tiers, redis));
  await request(a.url, { path: '/drafts/8' });
  await a.cache.flush();
  await a.close();
  // empty L2: only the disk remembers
  spawnSync(REDIS_CLI, ['-p', String(r.port), 'flushall']);
  const b = await startSidecar(cachePolicy(up.url, tiers, redis));
  t.after(() => b.close());
  assert.match(detail(await request(b.url, { path: '/drafts/8' })), /detail=l3/);
  assert.match(detail(await request(b.url, { path: '/drafts/8' })), /detail=l1/);
  await b.cache.flush();
  const c = await startSidecar(cachePolicy(up.url, `  l1: { size: 1MB }\n  l2: { ttl: 1h }`, redis));
  t.after(() => c.close());
  assert.match(detail(await request(c.url, { path: '/drafts/8' })), /detail=l2/, 'the L3 hit was written back to L2');
  assert.match(detail(await request(c.url, { path: '/drafts/8' })), /detail=l1/);
  assert.equal(up.count, 1);
  assert.equal(await b.cache.purge('draft:8:*'), 3, 'L1 + L3 + L2');
  assert.match(detail(await request(b.url, { path: '/drafts/8' })), /fwd=miss/);
  assert.equal(up.count, 2);
});

test('Redis down or hung: lookups fall through to L3/upstream within the command bound, no errors', async (t) => {
  const up = await draftUpstream(t);
  const r = await startRedis();
  t.after(() => r.stop());
  const dir = tempDir(t);
  const tiers = `  l2: { ttl: 1h }\n  l3: { path: "${dir}", size: 10MB }`;
  const sc = await startSidecar(cachePolicy(up.url, tiers, `redis: { url: "${r.url}", command_timeout: 100ms }`));
  t.after(() => sc.close());
  await request(sc.url, { path: '/drafts/1' });
  await sc.cache.flush();
  // hung: the server process is stopped (SIGSTOP): connections stay open, commands get no answer
  r.proc.kill('SIGSTOP');
  t.after(() => { r.proc.kill('SIGCONT'); });
  let started = Date.now();
  const hit = await request(sc.url, { path: '/drafts/1' });
  const hungMs = Date.now() - started;
  assert.equal(hit.status, 200);
  assert.match(detail(hit), /detail=l3/);
  assert.ok(hungMs < 4000, `a hung Redis must not hold the request (took ${hungMs} ms)`);
  const miss = await request(sc.url, { path: '/drafts/2' });
  assert.equal(miss.status, 200);
  r.proc.kill('SIGCONT');
  // down: killed outright
  await r.kill();
  started = Date.now();
  const down = await request(sc.url, { path: '/drafts/3' });
  assert.equal(down.status, 200);
  assert.equal(JSON.parse(down.body).url, '/drafts/3');
  assert.match(detail(await request(sc.url, { path: '/drafts/1' })), /detail=l[13]/);
  console.log(`redis hung: L3 hit in ${hungMs} ms; redis down: miss served in ${Date.now() - started} ms`);
  const errors = await sc.metrics.registry.getSingleMetricAsString('bridge_sidecar_cache_requests_total');
  assert.match(errors, /layer="l2",result="error"/);
});

test('large bodies stream to and from L3 and skip L1/L2', async (t) => {
  const big = selfCheckingBody('big', 1, 300_000);
  const up = await startUpstream(() => ({ headers: { 'cache-control': 'max-age=300', 'content-type': 'application/octet-stream' }, body: big }));
  t.after(() => up.close());
  const dir = tempDir(t);
  const sc = await startSidecar(policy(up.url, `${ROUTE}\nmemory: { large_body_threshold: 64KB }\ncache:\n  l1: { size: 8MB }\n  l3: { path: "${dir}", size: 10MB }\n`));
  t.after(() => sc.close());
  const a = await request(sc.url, { path: '/drafts/big' });
  assert.equal(a.headers['content-length'], String(big.length));
  await sc.cache.flush();
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(sc.cache.tiers.l1!.size, 0, 'never held in L1');
  const b = await new Promise<Buffer>((resolve, reject) => {
    import('node:http').then(({ get }) => get(sc.url + '/drafts/big', (res) => {
      assert.match(String(res.headers['cache-status']), /detail=l3/);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
    }).on('error', reject), reject);
  });
  assert.ok(b.equals(big));
  assert.equal(up.count, 1);
});

test('L3 crash safety: kill -9 during a storm of writes; afterwards only verified bodies are served', async (t) => {
  const dir = tempDir(t);
  for (let round = 0; round < 3; round++) {
    const child = fork(join(__dirname, 'l3-storm-child.js'), [dir], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    t.after(() => { child.kill('SIGKILL'); });
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error('child exited ' + code)));
    });
    await new Promise((r) => setTimeout(r, 300 + round * 200));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  // and damage a few committed files the way a bad disk would
  const files: string[] = [];
  for (const sub of readdirSync(dir)) {
    if (sub === 'tmp') continue;
    for (const f of readdirSync(join(dir, sub))) if (f.endsWith('.e') && statSync(join(dir, sub, f)).size > 2000) files.push(join(dir, sub, f));
  }
  assert.ok(files.length >= 3, 'the storm committed entries');
  truncateSync(files[0], statSync(files[0]).size - 7);
  const flipped = readFileSync(files[1]);
  flipped[flipped.length - 3] ^= 0xff;
  writeFileSync(files[1], flipped);
  writeFileSync(files[2], Buffer.from('garbage'));

  const discarded: string[] = [];
  const l3 = new L3Cache({ dir, maxBytes: 64 * 1024 * 1024, ttl: 3_600_000, onCorrupt: (f) => discarded.push(f) });
  await l3.ready;
  assert.ok(l3.count > 0);
  let served = 0;
  for (const key of [...l3.keys()]) {
    const h = await l3.get(key);
    if (h === null) continue;
    let body: Buffer;
    if (h.kind === 'whole') body = h.entry.body!;
    else {
      const chunks: Buffer[] = [];
      try {
        for await (const c of h.open()) chunks.push(c as Buffer);
      } catch {
        continue; // a failed verification ends the stream with an error: never a complete wrong body
      }
      body = Buffer.concat(chunks);
    }
    assert.ok(bodyIsSelfConsistent(body), `served body for ${key} is intact`);
    assert.ok(body.toString('latin1').startsWith(key + '|'), 'and belongs to its key');
    served++;
  }
  assert.ok(served > 0);
  assert.ok(discarded.includes(files[2]) && discarded.includes(files[0]), 'torn and garbage files are discarded at start');
  assert.ok(discarded.includes(files[1]), 'a flipped byte is caught by the digest on read');
  assert.equal(readdirSync(join(dir, 'tmp')).length, 0, 'temp files of the killed writer are removed');
  for (const f of [files[0], files[1], files[2]]) assert.throws(() => statSync(f), 'discarded files are deleted');
});

test('L3: bounded by size, FIFO (oldest first), expired entries not served', async (t) => {
  const dir = tempDir(t);
  let evicted = 0;
  const l3 = new L3Cache({ dir, maxBytes: 40_000, ttl: 3_600_000, fsync: false, onEvict: (n) => { evicted += n; } });
  await l3.ready;
  for (let i = 0; i < 10; i++) await l3.set('k' + i, makeEntry('k' + i, 'y'.repeat(8000)), 60_000);
  assert.ok(l3.bytes <= 40_000);
  assert.equal(await l3.get('k0'), null, 'oldest evicted first');
  assert.ok(await l3.get('k9'));
  assert.ok(evicted >= 5);
  await l3.set('short', makeEntry('short', 'z'), 50);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await l3.get('short'), null);
});

test('L3: a large body that was changed on disk fails its stream and is deleted, never served whole', async (t) => {
  const { buildMeta } = await import('../../lib/cache/admission');
  const dir = tempDir(t);
  const l3 = new L3Cache({ dir, maxBytes: 16 * 1024 * 1024, ttl: 3_600_000, fsync: false });
  await l3.ready;
  const body = selfCheckingBody('large:1', 1, 200_000);
  const w = await l3.openLargeWriter();
  for (let off = 0; off < body.length; off += 50_000) await new Promise<void>((r) => w.write(body.subarray(off, off + 50_000), r));
  const now = Date.now();
  const meta = buildMeta({ method: 'GET', path: '/l', query: '', headers: {}, body: null, params: {}, baseKey: 'large:1', requestTime: now, rules: { ttl: 60_000, staleWhileRevalidate: 0, staleIfError: 0, override: false }, storeIf: null, noStore: false }, 200, {}, 0, '', now)!;
  await w.finish(meta, 60_000);
  const ok = await l3.get('large:1');
  assert.equal(ok?.kind, 'stream');
  const chunks: Buffer[] = [];
  for await (const c of (ok as { open(): AsyncIterable<Buffer> }).open()) chunks.push(c);
  assert.ok(Buffer.concat(chunks).equals(body));
  // flip one byte of the body file
  const sub = readdirSync(dir).find((d) => d !== 'tmp')!;
  const bfile = join(dir, sub, readdirSync(join(dir, sub)).find((f) => f.endsWith('.b'))!);
  const bytes = readFileSync(bfile);
  bytes[123_456] ^= 0x20;
  writeFileSync(bfile, bytes);
  const bad = await l3.get('large:1');
  assert.equal(bad?.kind, 'stream');
  await assert.rejects(async () => { for await (const _c of (bad as { open(): AsyncIterable<Buffer> }).open()) void _c; }, /digest/);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(await l3.get('large:1'), null, 'deleted after the failed verification');
});

test('Vary through L2: a second sidecar finds the marker and the right variant in Redis', async (t) => {
  const up = await startUpstream((req) => ({ headers: { vary: 'accept-language', 'cache-control': 'max-age=300' }, body: 'lang=' + String(req.headers['accept-language']) }));
  t.after(() => up.close());
  const r = await startRedis();
  t.after(() => r.stop());
  const pol = cachePolicy(up.url, '  l2: { ttl: 1h }', `redis: { url: "${r.url}", command_timeout: 500ms }`);
  const a = await startSidecar(pol);
  t.after(() => a.close());
  await request(a.url, { path: '/drafts/1', headers: { 'accept-language': 'en' } });
  await a.cache.flush();
  const b = await startSidecar(pol);
  t.after(() => b.close());
  const en = await request(b.url, { path: '/drafts/1', headers: { 'accept-language': 'en' } });
  assert.equal(en.body, 'lang=en');
  assert.match(detail(en), /detail=l2/);
  const fr = await request(b.url, { path: '/drafts/1', headers: { 'accept-language': 'fr' } });
  assert.equal(fr.body, 'lang=fr');
  assert.match(detail(fr), /fwd=miss/);
  assert.equal(up.count, 2);
});
