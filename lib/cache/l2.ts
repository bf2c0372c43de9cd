/**
 * L2: Redis (single node or Cluster), shared by every pod.
 *
 * - Values are the binary entry encoding (entry.ts) read with getBuffer: no base64, no JSON body.
 * - Every entry is written with `PX` = its retention (at most `cache.l2.ttl`); eviction beyond that is Redis's
 *   own `maxmemory-policy` (the chart runs allkeys-lfu: the guide's "LFU").
 * - Every call is bounded (RedisConnection.withTimeout): when Redis is down or slow a read is a miss after at
 *   most `redis.command_timeout`, never an error, and while the link is known to be down it fails at once.
 *
 * Key index for invalidation without KEYS/SCAN:
 *   <prefix>c:<key>         the entry
 *   <prefix>ct:<tag>        a SET of keys, one per `:`-prefix of the readable key (keys.ts tagsOf):
 *                           `draft:42:script#ab` is a member of ct:draft, ct:draft:42 and ct:draft:42:script.
 * A glob `draft:42:*` is resolved from its literal prefix (`draft:42`) with one SMEMBERS, members are matched
 * against the glob and deleted with their SREMs. Tag sets expire `cache.l2.ttl` after their last write, so
 * they never outlive their members by more than that; members whose entry already expired are harmless and
 * are removed the next time the tag is purged. A pattern with no literal `:`-prefix (`*`, `*:script`) falls
 * back to SCAN on every master: acceptable for an admin purge, never used on the request path.
 */
import { masters, type RedisClient, type RedisConnection } from '../redis/client';
import type { CacheEntry } from './entry';
import { CorruptEntryError, decodeEntry, encodeEntry } from './entry';
import { patternMatcher, tagForPattern, tagsOf } from './keys';

/** Background writes may take longer than a request-path read, but are still bounded. */
const WRITE_TIMEOUT_MS = 2000;
const ADMIN_TIMEOUT_MS = 10_000;

export type L2Result = { entry: CacheEntry } | { entry: null; error: boolean };

/** The Redis key that holds the entry of cache key `key` (also what `explain` prints). */
export function l2EntryKey(prefix: string, key: string): string {
  return prefix + 'c:' + key;
}

export class L2Cache {
  constructor(
    private readonly conn: RedisConnection,
    private readonly tierTtl: number,
  ) {}

  get healthy(): boolean {
    return this.conn.healthy;
  }

  private entryKey(key: string): string {
    return l2EntryKey(this.conn.prefix, key);
  }

  private tagKey(tag: string): string {
    return this.conn.prefix + 'ct:' + tag;
  }

  /** A miss, a timeout, a down link and a corrupt value all come back as `entry: null` (error says which). */
  async get(key: string): Promise<L2Result> {
    let buf: Buffer | null;
    try {
      buf = await this.conn.withTimeout((c) => c.getBuffer(this.entryKey(key)));
    } catch {
      return { entry: null, error: true };
    }
    if (buf === null) return { entry: null, error: false };
    try {
      const entry = decodeEntry(buf);
      if (entry.meta.key !== key) throw new CorruptEntryError('key mismatch');
      return { entry };
    } catch {
      void this.conn.withTimeout((c) => c.del(this.entryKey(key)), WRITE_TIMEOUT_MS).catch(() => {});
      return { entry: null, error: true };
    }
  }

  async set(key: string, entry: CacheEntry, ttlMs: number): Promise<void> {
    const ms = Math.ceil(Math.min(ttlMs, this.tierTtl));
    if (ms <= 0 || entry.body === null) return;
    const value = encodeEntry(entry);
    const full = this.entryKey(key);
    await this.conn.withTimeout((c) => c.set(full, value, 'PX', ms), WRITE_TIMEOUT_MS);
    // tag sets live on other slots in a Cluster: separate commands, not a MULTI
    await Promise.all(tagsOf(key).map((tag) => this.conn.withTimeout(async (c) => {
      const tk = this.tagKey(tag);
      await c.sadd(tk, key);
      await c.pexpire(tk, this.tierTtl);
    }, WRITE_TIMEOUT_MS)));
  }

  async delete(key: string): Promise<void> {
    await this.conn.withTimeout((c) => c.del(this.entryKey(key)), WRITE_TIMEOUT_MS);
    await Promise.all(tagsOf(key).map((tag) => this.conn.withTimeout((c) => c.srem(this.tagKey(tag), key), WRITE_TIMEOUT_MS)));
  }

  /** Delete every key matching a glob; returns how many entries existed and were removed. */
  async deleteMatching(pattern: string): Promise<number> {
    const match = patternMatcher(pattern);
    const tag = tagForPattern(pattern);
    let candidates: string[];
    if (tag !== null) {
      candidates = await this.conn.withTimeout((c) => c.smembers(this.tagKey(tag)), ADMIN_TIMEOUT_MS);
    } else {
      candidates = await this.scanAll();
    }
    let removed = 0;
    for (const key of candidates) {
      if (!match(key)) continue;
      const n = await this.conn.withTimeout((c) => c.del(this.entryKey(key)), ADMIN_TIMEOUT_MS);
      removed += n;
      await Promise.all(tagsOf(key).map((t) => this.conn.withTimeout((c) => c.srem(this.tagKey(t), key), ADMIN_TIMEOUT_MS)));
    }
    return removed;
  }

  /** Every cache key (unprefixed) by SCAN on each master. Admin only. */
  private async scanAll(): Promise<string[]> {
    const prefix = this.conn.prefix + 'c:';
    const clients = masters(this.conn.client);
    const out: string[] = [];
    for (const node of clients) {
      const keys = await this.conn.withTimeout(() => scanNode(node, prefix), ADMIN_TIMEOUT_MS);
      for (const k of keys) out.push(k.slice(prefix.length));
    }
    return out;
  }

  /** Bytes used by the Redis server(s) (INFO memory), for cache_size_bytes{layer="l2"}. */
  async usedMemory(): Promise<number | null> {
    try {
      const clients = masters(this.conn.client);
      let total = 0;
      for (const node of clients) {
        const info = await this.conn.withTimeout(() => node.info('memory'), WRITE_TIMEOUT_MS);
        const m = /used_memory:(\d+)/.exec(info);
        if (m) total += Number(m[1]);
      }
      return total;
    } catch {
      return null;
    }
  }
}

async function scanNode(node: RedisClient, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  const pattern = prefix.replace(/[*?[\]\\]/g, '\\$&') + '*';
  for (let i = 0; i < 100_000; i++) {
    const [next, keys] = await (node as import('ioredis').Redis).scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    out.push(...keys);
    cursor = next;
    if (cursor === '0') break;
  }
  return out;
}
