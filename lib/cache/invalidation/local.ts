/**
 * Removing matching entries from this process's own tiers (L1 memory, L3 disk) and from the shared L2, while
 * collecting the route params the removed entries remember (for cascades). Built only on the public API of
 * lib/cache (L1Cache, L3Cache, L2Cache, Tiers).
 */
import type { RedisConnection } from '../../redis/client';
import type { EntryMeta } from '../entry';
import { tagForPattern } from '../keys';
import type { Tiers } from '../tiers';
import { matcherOf } from './patterns';

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

function keepParams(out: Removed, meta: EntryMeta | undefined, cascade: boolean): void {
  if (cascade && meta && meta.params && Object.keys(meta.params).length > 0) out.params.push(meta.params);
}

/** L1, synchronously: safe to call right before a response head is written. */
export function removeFromL1(tiers: Tiers, patterns: readonly string[], cascade: boolean, out: Removed = emptyRemoved()): Removed {
  const l1 = tiers.l1;
  if (l1 === null || patterns.length === 0) return out;
  const match = matcherOf(patterns);
  for (const key of [...l1.keys()]) {
    if (!match(key)) continue;
    const e = cascade ? l1.get(key) : undefined;
    if (l1.delete(key)) {
      out.l1++;
      out.keys.push(key);
      keepParams(out, e?.meta, cascade);
    }
  }
  return out;
}

/** L3 (this process's directory). */
export async function removeFromL3(tiers: Tiers, patterns: readonly string[], cascade: boolean, out: Removed = emptyRemoved()): Promise<Removed> {
  const l3 = tiers.l3;
  if (l3 === null || patterns.length === 0) return out;
  await l3.ready.catch(() => {});
  const match = matcherOf(patterns);
  for (const key of [...l3.keys()]) {
    if (!match(key)) continue;
    let meta: EntryMeta | undefined;
    if (cascade) {
      const hit = await l3.get(key).catch(() => null);
      meta = hit === null ? undefined : hit.kind === 'whole' ? hit.entry.meta : hit.meta;
    }
    if (await l3.delete(key)) {
      out.l3++;
      out.keys.push(key);
      keepParams(out, meta, cascade);
    }
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
        keepParams(out, r.entry.meta, cascade);
      }
    }
  }
  return out;
}

/** Entries stored before `t` in L1 and L3 (reconnect rule: they may have missed invalidations). */
export async function removeStoredBefore(tiers: Tiers, t: number): Promise<Removed> {
  const out = emptyRemoved();
  const l1 = tiers.l1;
  if (l1 !== null) {
    for (const key of [...l1.keys()]) {
      const e = l1.get(key);
      if (e !== undefined && e.meta.storedAt < t && l1.delete(key)) out.l1++;
    }
  }
  const l3 = tiers.l3;
  if (l3 !== null) {
    await l3.ready.catch(() => {});
    for (const key of [...l3.keys()]) {
      const hit = await l3.get(key).catch(() => null);
      const meta = hit === null ? null : hit.kind === 'whole' ? hit.entry.meta : hit.meta;
      if (meta !== null && meta.storedAt < t && (await l3.delete(key))) out.l3++;
    }
  }
  return out;
}
