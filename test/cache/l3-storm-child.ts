/**
 * Child process for the crash-safety test: writes L3 entries (small and large, overwriting keys) as fast as it
 * can into argv[2] until it is SIGKILLed. Bodies are self-checking (fixtures.ts).
 */
import { L3Cache } from '../../lib/cache/l3';
import { makeEntry, selfCheckingBody } from './fixtures';
import { buildMeta, type StoreRequest } from '../../lib/cache/admission';

async function main(): Promise<void> {
  const dir = process.argv[2];
  const l3 = new L3Cache({ dir, maxBytes: 64 * 1024 * 1024, ttl: 3_600_000, fsync: false });
  await l3.ready;
  process.send?.('ready');
  let version = 0;
  for (let round = 0; round < 1_000_000; round++) {
    const jobs: Promise<void>[] = [];
    for (let j = 0; j < 8; j++) {
      version++;
      const key = `storm:${version % 97}`;
      if (version % 13 === 0) {
        // a large body streamed through the large writer in several chunks
        const body = selfCheckingBody(key, version, 300_000 + (version % 7) * 1000);
        jobs.push((async () => {
          const w = await l3.openLargeWriter();
          for (let off = 0; off < body.length; off += 65536) {
            await new Promise<void>((r) => w.write(body.subarray(off, off + 65536), r));
          }
          const now = Date.now();
          const r: StoreRequest = { method: 'GET', path: '/x', query: '', headers: {}, body: null, params: {}, baseKey: key, requestTime: now, rules: { ttl: 3_600_000, staleWhileRevalidate: 0, staleIfError: 0, override: false }, storeIf: null, noStore: false };
          const meta = buildMeta(r, 200, {}, 0, '', now)!;
          await w.finish(meta, 3_600_000);
        })());
      } else {
        const body = selfCheckingBody(key, version, 100 + (version % 50) * 200);
        jobs.push(l3.set(key, makeEntry(key, body, {}, 3_600_000), 3_600_000));
      }
    }
    await Promise.all(jobs);
  }
}

void main();
