/**
 * Cluster-wide counters in Redis (single node or Cluster), one hash per limit under a hash-tagged key such as
 * `{bridge:rl:global}` so a limit's keys always live in one slot. One Lua script takes (or gives back) tokens
 * atomically using the Redis server's own clock (TIME), so pods with skewed clocks still agree.
 *
 * Every call is bounded by the connection's command_timeout. When Redis is down, slow, or the call fails, the
 * lease is taken from the pod's own counters instead (PodSource) and the failure is counted in
 * bridge_sidecar_ratelimit_backend_errors_total. After repeated timeouts Redis is skipped for a short while
 * (so a hung Redis costs one timeout per pause, not one per request); it is retried by itself after that.
 */
import { createHash } from 'node:crypto';
import type { RedisClient, RedisConnection } from '../../redis/client';
import type { Clock } from './clock';
import { SCOPE_NAMES } from './limits';
import type { GiveItem, TakeItem, TakeResult } from './protocol';
import type { TokenSource } from './sources';

export const TAKE_LUA = `
local want = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / 1000
local cap = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local v = redis.call('HMGET', KEYS[1], 'tk', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then
  tokens = cap
  ts = now
end
if now > ts then
  tokens = tokens + (now - ts) * rate
  ts = now
end
if tokens > cap then tokens = cap end
local granted = 0
if want >= 0 then
  local avail = math.floor(tokens + 1e-9)
  if avail > 0 and want > 0 then
    granted = math.min(want, avail, math.max(1, math.ceil(avail / 2)))
  end
  tokens = tokens - granted
else
  tokens = math.min(cap, tokens - want)
end
local full = (cap - tokens) / rate
redis.call('HSET', KEYS[1], 'tk', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(full) + 1000)
local nextMs = 0
if tokens < 1 then nextMs = (1 - tokens) / rate end
return {granted, math.floor(tokens + 1e-9), math.ceil(nextMs), math.ceil(full)}
`;

function markFallback(r: TakeResult): TakeResult {
  r[4] = 1;
  return r;
}

const COMMAND = 'bridgeRateLimitTake';
const defined = new WeakSet<object>();

type WithTake = RedisClient & { [COMMAND](key: string, want: number, rate: number, cap: number): Promise<[number, number, number, number]> };

/** EVALSHA with script loading on NOSCRIPT (ioredis defineCommand), defined once per client. */
function takeCommand(client: RedisClient): WithTake {
  if (!defined.has(client)) {
    client.defineCommand(COMMAND, { numberOfKeys: 1, lua: TAKE_LUA });
    defined.add(client);
  }
  return client as WithTake;
}

/** The Redis key of one limit: the whole name is the hash tag, so the limit's keys stay in one slot. */
export function redisKey(prefix: string, code: number, key: string): string {
  const safe = key.length > 100 || key.includes('{') || key.includes('}')
    ? '#' + createHash('sha256').update(key).digest('base64url').slice(0, 32)
    : key;
  const scope = SCOPE_NAMES[code] ?? 'unknown';
  return `{${prefix}rl:${scope}${safe ? ':' + safe : ''}}`;
}

/** Consecutive timeouts that open the breaker, and how long it stays open. */
const BREAKER_AFTER = 2;
const BREAKER_OPEN_MS = 500;

export class RedisSource implements TokenSource {
  private timeouts = 0;
  private skipUntil = 0;

  constructor(
    readonly conn: RedisConnection,
    private readonly fallback: TokenSource,
    private readonly clock: Clock,
    private readonly onBackendError: (why: string) => void,
  ) {}

  take(item: TakeItem): Promise<TakeResult> {
    const now = this.clock();
    if (now < this.skipUntil || !this.conn.healthy) {
      this.onBackendError(now < this.skipUntil ? 'breaker_open' : 'disconnected');
      return this.fallback.take(item).then(markFallback);
    }
    const [code, key, want, rate, cap] = item;
    const rkey = redisKey(this.conn.prefix, code, key);
    return this.conn.withTimeout((c) => takeCommand(c)[COMMAND](rkey, want, rate, cap)).then(
      (r) => {
        this.timeouts = 0;
        return [Number(r[0]), Number(r[1]), Number(r[2]), Number(r[3])] as TakeResult;
      },
      (err: unknown) => {
        const msg = err instanceof Error ? err.message : String(err);
        if (msg.includes('exceeded')) {
          if (++this.timeouts >= BREAKER_AFTER) {
            this.skipUntil = this.clock() + BREAKER_OPEN_MS;
            this.timeouts = 0;
          }
          this.onBackendError('timeout');
        } else {
          this.onBackendError('error');
        }
        return this.fallback.take(item).then(markFallback);
      },
    );
  }

  exactPerUser(): boolean {
    return !this.conn.healthy || this.clock() < this.skipUntil;
  }

  give(items: GiveItem[]): void {
    if (!this.conn.healthy) return;
    for (const [code, key, n, rate, cap] of items) {
      const rkey = redisKey(this.conn.prefix, code, key);
      this.conn.withTimeout((c) => takeCommand(c)[COMMAND](rkey, -n, rate, cap)).catch(() => {
        /* lost tokens only make the limit a little stricter until they refill */
      });
    }
  }
}
