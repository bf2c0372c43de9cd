/**
 * cache_size_bytes is read from the tiers when /metrics is scraped: the first scrape after start has the
 * sample, a scrape right after a store shows the entry, and one right after a purge shows it gone. A real
 * `bridge-sidecar serve` process (one process, and a primary with two workers whose figures it sums) in front
 * of a real upstream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { basicPolicy, startSidecar, type SidecarProcess } from '../helpers/sidecar';
import { waitFor } from '../helpers/ports';
import { startUpstream } from './harness';
import { admin, request, tempDir, tokenFile } from '../invalidation/helpers';

/** Large next to an entry's head and bookkeeping, so one copy (about BODY bytes) and two (over 2 * BODY) differ plainly. */
const BODY = 10_000;

/** The cache_size_bytes samples of one scrape of the admin port, by layer (a layer without a sample is absent). */
async function sizes(sc: SidecarProcess): Promise<Record<string, number>> {
  const text = (await request(sc.adminUrl, { path: '/metrics' })).body;
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^bridge_sidecar_cache_size_bytes\{layer="(\w+)"\} (\S+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

async function start(t: { after(fn: () => unknown): void }, workers: number, dir: string): Promise<{ sc: SidecarProcess; token: string }> {
  const up = await startUpstream(() => ({ headers: { 'content-type': 'text/plain' }, body: 'x'.repeat(BODY) }));
  t.after(() => up.close());
  const [tf, token] = tokenFile(dir);
  const sc = await startSidecar(basicPolicy(up.port, `
routes:
  - name: item
    match: { method: GET, path: "/item/{id}" }
    params: { id: path.id }
    cache: { key: "item:{id}", ttl: 5m }
cache:
  l1: { size: 8MB }
`, { workers, admin_token_file: tf }));
  t.after(() => sc.stop());
  return { sc, token };
}

test('cache_size_bytes: a sample from the first scrape, the stored entry at once, gone at once after a purge', async (t) => {
  const { sc, token } = await start(t, 0, tempDir(t, 'bridge-size-'));
  assert.deepEqual(await sizes(sc), { l1: 0 }, 'the first scrape has the L1 sample, at 0');

  assert.equal((await request(sc.url, { path: '/item/1' })).status, 200);
  const stored = (await sizes(sc)).l1;
  assert.ok(stored > BODY && stored < 2 * BODY, `the entry's bytes show in the scrape right after the store: ${stored}`);

  const r = await admin(sc.adminUrl, token, '/admin/purge', { pattern: 'item:*' });
  assert.equal(r.status, 200, r.body);
  assert.equal(JSON.parse(r.body).purged, 1);
  assert.equal((await sizes(sc)).l1, 0, 'the scrape right after the purge shows it gone');
});

test('cache_size_bytes with two workers: the primary sums the workers\' L1 figures read at scrape time', async (t) => {
  const { sc, token } = await start(t, 2, tempDir(t, 'bridge-size-'));
  assert.deepEqual(await sizes(sc), { l1: 0 }, 'the first scrape has the L1 sample, at 0');

  assert.equal((await request(sc.url, { path: '/item/1' })).status, 200);
  const stored = (await sizes(sc)).l1;
  assert.ok(stored > BODY, `the worker that stored the entry reports it in the scrape right after: ${stored}`);
  // the entry is replicated to the other worker's L1 (one cache per pod): the sum has both copies once it arrives
  await waitFor('both workers to hold the entry', async () => (await sizes(sc)).l1 > 2 * BODY, 30_000);

  const r = await admin(sc.adminUrl, token, '/admin/purge', { pattern: 'item:*' });
  assert.equal(r.status, 200, r.body);
  // the purging worker answers; the other drops its copy when the broadcast reaches it
  await waitFor('both workers\' L1 to be empty', async () => (await sizes(sc)).l1 === 0, 30_000);
});
