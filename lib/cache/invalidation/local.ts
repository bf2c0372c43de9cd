/**
 * Removing matching entries from this process's own tiers (L1 memory, L3 disk) and from the shared L2, while
 * collecting the route params the removed entries remember (for cascades). Built only on the public API of
 * lib/cache (L1Cache, L3Cache, L2Cache, Tiers).
 */
import type { RedisConnection } from '../../redis/client';
import { VARIANT_SEPARATOR, tagForPattern } from '../keys';
import type { Tiers } from '../tiers';
import { keysToTest } from '../tag-index';
import { matcherOf } from './patterns';

/** How long one L2 step (a removal, a publish) may take before it counts as failed. */
export const L2_TIMEOUT_MS = 2000;

export interface Removed {
  l1: number;
  l2: number;
  l3: number;
  /** Params of the removed entries (only collected when cascading). */
  params: Array<Readonly<Record<string, string>>>;
  /** Keys removed from L1/L3. */
  keys: string[];
}

export function emptyRemoved(): Removed {
  return { l1: 0, l2: 0, l3: 0, params: [], keys: [] };
}

export function addRemoved(a: Removed, b: Removed): Removed {
  return { l1: a.l1 + b.l1, l2: a.l2 + b.l2, l3: a.l3 + b.l3, params: a.params.concat(b.params), keys: a.keys.concat(b.keys) };
}

function keepParams(out: Removed, params: Readonly<Record<string, string>> | undefined, cascade: boolean): void {
  if (cascade && params && Object.keys(params).length > 0) out.params.push(params);
}

/**
 * Batched L1 removal: the removals asked for within one turn of the event loop share one pass. A pass visits the
 * keys L1 indexes under the requests' tags (tag-index.ts `keysToTest`), or every key when a pattern has no tag; under a
 * burst of writes the work per event shrinks instead of piling up.
 */
export class L1Sweeper {
  private queue: Array<{ match: (key: string) => boolean; tags: Array<string | null>; cascade: boolean; upTo: number; out: Removed; resolve: (r: Removed) => void }> = [];
  private scheduled = false;

  constructor(private readonly tiers: Tiers) {}

  /** `storedUpTo` (epoch ms): only entries whose answer arrived at or before it (a later one is a fresh fill). */
  remove(patterns: readonly string[], cascade: boolean, storedUpTo = Infinity): Promise<Removed> {
    const out = emptyRemoved();
    if (this.tiers.l1 === null || patterns.length === 0) return Promise.resolve(out);
    return new Promise((resolve) => {
      this.queue.push({ match: matcherOf(patterns), tags: patterns.map((p) => tagForPattern(p)), cascade, upTo: storedUpTo, out, resolve });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.sweep());
      }
    });
  }

  private sweep(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    const l1 = this.tiers.l1;
    if (l1 !== null) {
      // requests by the tag (`:`-prefix) that covers their patterns: a key is only tested against the requests
      // filed under one of its own `:`-prefixes, so the cost per key does not grow with the number of events
      const byTag = new Map<string, number[]>();
      const anyKey: number[] = [];
      batch.forEach((r, i) => {
        for (const tag of r.tags) {
          if (tag === null) { if (!anyKey.includes(i)) anyKey.push(i); continue; }
          const list = byTag.get(tag);
          if (list === undefined) byTag.set(tag, [i]);
          else if (!list.includes(i)) list.push(i);
        }
      });
      const hits: Array<[string, number[]]> = [];
      // a request with no tag (anyKey) needs every key; otherwise only the keys under the requested tags
      for (const key of keysToTest(l1, anyKey.length > 0 ? [null] : byTag.keys())) {
        let who: number[] | null = null;
        const test = (i: number) => {
          if ((who === null || !who.includes(i)) && batch[i].match(key)) (who ??= []).push(i);
        };
        for (const i of anyKey) test(i);
        const end = key.indexOf(VARIANT_SEPARATOR);
        const readableEnd = end === -1 ? key.length : end;
        for (let c = key.indexOf(':'); c !== -1 && c < readableEnd; c = key.indexOf(':', c + 1)) {
          const list = byTag.get(key.slice(0, c));
          if (list !== undefined) for (const i of list) test(i);
        }
        const whole = byTag.get(readableEnd === key.length ? key : key.slice(0, readableEnd));
        if (whole !== undefined) for (const i of whole) test(i);
        if (who !== null) hits.push([key, who]);
      }
      for (const [key, who] of hits) {
        const e = who.some((i) => batch[i].cascade || batch[i].upTo !== Infinity) ? l1.get(key) : undefined;
        const takers = e === undefined ? who : who.filter((i) => e.meta.storedAt <= batch[i].upTo);
        if (takers.length === 0 || !l1.delete(key)) continue;
        for (const i of takers) {
          const r = batch[i];
          r.out.l1++;
          r.out.keys.push(key);
          keepParams(r.out, e?.meta.params, r.cascade);
        }
      }
    }
    for (const r of batch) r.resolve(r.out);
  }
}

/**
 * L3 (this process's directory): matching keys leave the index at once, with the params the index keeps for
 * cascades; their files are unlinked in the background (L3Cache.detach). Only the start-up scan is waited for.
 */
export async function removeFromL3(tiers: Tiers, patterns: readonly string[], cascade: boolean, out: Removed = emptyRemoved(),
  storedUpTo = Infinity): Promise<Removed> {
  const l3 = tiers.l3;
  if (l3 === null || patterns.length === 0) return out;
  if (!l3.loaded) await l3.ready.catch(() => {});
  const match = matcherOf(patterns);
  for (const key of keysToTest(l3, patterns.map((p) => tagForPattern(p)))) {
    if (!match(key)) continue;
    const params = l3.detach(key, storedUpTo);
    if (params === null) continue;
    out.l3++;
    out.keys.push(key);
    keepParams(out, params, cascade);
  }
  return out;
}

/**
 * L2 (shared by every pod), through the tag index lib/cache/l2.ts keeps (`<prefix>ct:<tag>` sets): one
 * SMEMBERS per pattern, never KEYS or a SCAN of the keyspace. A pattern no tag covers (one that starts with a
 * glob) falls back to L2Cache.deleteMatching (SCAN), which only an operator's odd pattern can cause.
 */
export async function removeFromL2(tiers: Tiers, conn: RedisConnection | null, patterns: readonly string[], cascade: boolean, timeoutMs: number, out: Removed = emptyRemoved()): Promise<Removed> {
  const l2 = tiers.l2;
  if (l2 === null || conn === null || patterns.length === 0) return out;
  for (const pattern of patterns) {
    const tag = tagForPattern(pattern);
    if (tag === null || !cascade) {
      out.l2 += await l2.deleteMatching(pattern);
      continue;
    }
    // the tag set's name mirrors lib/cache/l2.ts (tagKey)
    const members = await conn.withTimeout((c) => c.smembers(conn.prefix + 'ct:' + tag), timeoutMs);
    const match = matcherOf([pattern]);
    for (const key of members) {
      if (!match(key)) continue;
      const r = await l2.get(key);
      await l2.delete(key);
      if (r.entry !== null) {
        out.l2++;
        keepParams(out, r.entry.meta.params, cascade);
      }
    }
  }
  return out;
}

/**
 * Entries stored before `t` in L1 and L3 (reconnect rule: they may have missed invalidations). Those stored
 * since `outageSince` were filled while the channel was down: their queued L2 writes may have reached Redis
 * once it was back, so they are deleted from L2 as well (an entry stored before the outage is in L2 as any
 * other pod's, and invalidated there by whoever raises the event).
 */
export async function removeStoredBefore(tiers: Tiers, t: number, outageSince = Infinity): Promise<Removed> {
  const out = emptyRemoved();
  const during = new Set<string>();
  const l1 = tiers.l1;
  if (l1 !== null) {
    for (const key of [...l1.keys()]) {
      const e = l1.get(key);
      if (e === undefined || e.meta.storedAt >= t) continue;
      if (e.meta.storedAt >= outageSince) during.add(key);
      if (l1.delete(key)) out.l1++;
    }
  }
  const l3 = tiers.l3;
  if (l3 !== null) {
    await l3.ready.catch(() => {});
    for (const key of [...l3.keys()]) {
      const hit = await l3.get(key).catch(() => null);
      const meta = hit === null ? null : hit.kind === 'whole' ? hit.entry.meta : hit.meta;
      if (meta === null || meta.storedAt >= t) continue;
      if (meta.storedAt >= outageSince) during.add(key);
      if (await l3.delete(key)) out.l3++;
    }
  }
  const l2 = tiers.l2;
  if (l2 !== null) await Promise.all([...during].map((k) => l2.delete(k).catch(() => {})));
  return out;
}
