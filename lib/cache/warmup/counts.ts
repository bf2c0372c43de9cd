/**
 * How often each cache key (its readable part, `draft:42:script`) is asked for: what warm-up ranks by.
 *
 * - In memory per worker: a Map, bounded (past MAX_LOCAL keys the less requested half is forgotten).
 * - With Redis: increments are batched and flushed every second (or every FLUSH_EVERY new keys) as ZINCRBY
 *   on one ZSET `<key_prefix>warm:counts`, trimmed to the MAX_SHARED most requested keys, so every pod ranks by
 *   the whole fleet's traffic and a restarted pod still knows what was popular.
 * Counting happens on every cache lookup of a route that has a `cache` block (hits included) while a warm-up
 * strategy is configured; otherwise nothing is counted.
 */
import type { RedisConnection } from '../../redis/client';
import type { Logger } from '../../observe/logger';
import { globToRegExp } from '../keys';

const MAX_LOCAL = 10_000;
const MAX_SHARED = 10_000;
const FLUSH_EVERY = 1000;
const FLUSH_INTERVAL_MS = 1000;
const REDIS_TIMEOUT_MS = 2000;

export class RequestCounts {
  private readonly local = new Map<string, number>();
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;

  constructor(private readonly redis: () => RedisConnection | null, private readonly log: Logger) {}

  /** Count one request for `key` (the hot path: two Map updates). */
  hit(key: string): void {
    this.local.set(key, (this.local.get(key) ?? 0) + 1);
    if (this.local.size > MAX_LOCAL) this.prune();
    if (this.redis() === null) return;
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    if (this.pending.size >= FLUSH_EVERY) void this.flush();
    else if (this.timer === null) {
      this.timer = setTimeout(() => { this.timer = null; void this.flush(); }, FLUSH_INTERVAL_MS);
      this.timer.unref();
    }
  }

  private prune(): void {
    const sorted = [...this.local.entries()].sort((a, b) => b[1] - a[1]);
    this.local.clear();
    for (const [k, n] of sorted.slice(0, MAX_LOCAL / 2)) this.local.set(k, n);
  }

  private sharedKey(conn: RedisConnection): string {
    return conn.prefix + 'warm:counts';
  }

  /** Push the batched increments to the shared ZSET (no-op without Redis or when it is down). */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => this.flush());
    const conn = this.redis();
    if (conn === null || this.pending.size === 0 || !conn.healthy) return Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    const key = this.sharedKey(conn);
    this.flushing = conn.withTimeout(async (c) => {
      const p = c.pipeline();
      for (const [k, n] of batch) p.zincrby(key, n, k);
      // keep only the MAX_SHARED most requested
      p.zremrangebyrank(key, 0, -(MAX_SHARED + 1));
      await p.exec();
    }, REDIS_TIMEOUT_MS).catch((err: unknown) => {
      this.log.debug({ err: (err as Error).message }, 'warm-up request counts not flushed');
    }).finally(() => { this.flushing = null; });
    return this.flushing;
  }

  /** This worker's most requested keys matching a glob, with counts. */
  topLocal(pattern: string, n: number): Array<[string, number]> {
    const re = globToRegExp(pattern);
    const out: Array<[string, number]> = [];
    for (const e of this.local) if (re.test(e[0])) out.push(e);
    return out.sort((a, b) => b[1] - a[1]).slice(0, n);
  }

  /** The fleet's most requested keys matching a glob (empty without Redis). */
  async topShared(pattern: string, n: number): Promise<Array<[string, number]>> {
    const conn = this.redis();
    if (conn === null || !conn.healthy) return [];
    await this.flush();
    const re = globToRegExp(pattern);
    const flat = await conn.withTimeout((c) => c.zrevrange(this.sharedKey(conn), 0, MAX_SHARED - 1, 'WITHSCORES'), REDIS_TIMEOUT_MS).catch(() => [] as string[]);
    const out: Array<[string, number]> = [];
    for (let i = 0; i + 1 < flat.length && out.length < n; i += 2) {
      if (re.test(flat[i])) out.push([flat[i], Number(flat[i + 1])]);
    }
    return out;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Sum several ranked lists and keep the `n` largest. */
export function mergeCounts(lists: ReadonlyArray<ReadonlyArray<readonly [string, number]>>, n: number): Array<[string, number]> {
  const sum = new Map<string, number>();
  for (const l of lists) for (const [k, c] of l) sum.set(k, Math.max(sum.get(k) ?? 0, 0) + c);
  return [...sum.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
}
