/**
 * `scope: cluster` limits' live state, read from a real redis-server without spending anything: POST
 * /debug/explain says what a per-user limit's bucket holds right now (and that it refuses), and the status page's
 * /stats lists the identities closest to their limit from the cluster's counters. A real sidecar process (two
 * workers, so the primary reads Redis over a connection of its own) in front of a real upstream.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startSidecar, type SidecarProcess } from '../helpers/sidecar';
import { Redis } from 'ioredis';
import { startRedis, type RedisInstance } from '../helpers/redis';
import { waitFor } from '../helpers/ports';
import { http } from '../observe/helpers';
import { startUpstream, type TestUpstream } from '../cache/harness';

let up: TestUpstream;
let redis: RedisInstance;
let sc: SidecarProcess;

before(async () => {
  up = await startUpstream(() => ({ body: 'ok' }));
  redis = await startRedis();
  const tokenFile = join(mkdtempSync(join(tmpdir(), 'explain-cluster-')), 'token');
  writeFileSync(tokenFile, 's3cret-token\n');
  sc = await startSidecar(`version: 1
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: 2, log_level: warn, admin_token_file: ${JSON.stringify(tokenFile)} }
upstream: { url: "${up.url}" }
redis: { url: "${redis.url}", key_prefix: "cs:" }
routes:
  - name: read
    match: { method: GET, path: /read }
rate_limiting:
  scope: cluster
  identity: { header: x-user-id }
  per_user: { requests_per_minute: 1, burst_size: 2 }
`, { timeoutMs: 60_000 });
});
after(async () => {
  await sc?.stop();
  await redis?.stop();
  await up?.close();
});

/** The per-user bucket as Redis holds it ({} when there is none). */
async function bucket(user: string): Promise<Record<string, string>> {
  const c = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await c.connect();
    return await c.hgetall(`{cs:rl:per_user:h:${user}}`);
  } finally {
    c.disconnect();
  }
}

async function explainFor(user: string): Promise<{ state: { available: number; capacity: number } | null; verdict: string; outcome: string }> {
  const r = await http(sc.adminUrl + '/debug/explain', {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer s3cret-token' },
    body: JSON.stringify({ method: 'GET', url: '/read', headers: { 'x-user-id': user } }),
  });
  assert.equal(r.status, 200, r.text);
  const limits = JSON.parse(r.text).explanation.limits;
  const perUser = limits.limits.find((l: { scope: string }) => l.scope === 'per_user');
  return { state: perUser.state, verdict: perUser.verdict, outcome: limits.outcome };
}

test('explain against a running sidecar reads a cluster-scope limit from Redis, read only; the status page lists it', async () => {
  let refused = false;
  for (let i = 0; i < 10 && !refused; i++) refused = (await http(sc.url + '/read', { headers: { 'x-user-id': 'greedy' } })).status === 429;
  assert.ok(refused, 'greedy spent the burst of 2 and got a 429');

  const before = await bucket('greedy');
  assert.ok(before.tk !== undefined && before.ts !== undefined, 'the bucket is in Redis');
  const greedy = await explainFor('greedy');
  assert.equal(greedy.state?.available, 0);
  assert.equal(greedy.state?.capacity, 2);
  assert.match(greedy.verdict, /^refuses: 429/);
  assert.match(greedy.outcome, /refused by per_user \(h:greedy\)/);
  assert.deepEqual(await bucket('greedy'), before, 'explaining spent nothing: the bucket in Redis is unchanged');
  assert.equal((await http(sc.url + '/read', { headers: { 'x-user-id': 'greedy' } })).status, 429, 'the proxy agrees');

  const fresh = await explainFor('newcomer');
  assert.equal(fresh.state, null, 'a limit never used has no bucket: full');
  assert.match(fresh.verdict, /^admits: 2 of 2 tokens left/);
  assert.deepEqual(await bucket('newcomer'), {}, 'and explaining did not make one');

  // the status page: the cluster's counters, closest to their limit first
  const closest = (await waitFor('greedy among the closest limits', async () => {
    const s = JSON.parse((await http(sc.adminUrl + '/stats')).text);
    const found = (s.limits.closest ?? []).find((b: { scope: string; key: string }) => b.scope === 'per_user' && b.key === 'h:greedy');
    return found ? { found, note: s.limits.closest_note as string } : null;
  }, 15_000, 200))!;
  assert.equal(closest.found.used, 1);
  assert.match(closest.note, /read from Redis/);
});
