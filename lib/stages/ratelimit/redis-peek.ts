/**
 * `scope: cluster` limits as they stand in Redis, read without taking anything: for `explain` against a running
 * sidecar and for the status page's "closest to their limit". The bucket of a limit is the hash redis-source.ts
 * keeps (`tk` tokens at `ts` ms, refilled at the limit's rate up to its capacity, on the Redis server's clock);
 * the figures are what TAKE_LUA would see now, computed by a script that only reads (HMGET and TIME).
 */
import { createHash } from 'node:crypto';
import { masters, type RedisClient, type RedisConnection } from '../../redis/client';
import { SCOPE_CODES, SCOPE_NAMES, type CompiledLimits, type LimitSpec, type ScopeName } from './limits';
import { redisKey } from './redis-source';
import { closerToLimit, type BucketState } from './store';

/** Returns {available tokens, ms until full}, or {-1, 0} for a limit never used (full). Writes nothing. */
export const PEEK_LUA = `
local rate = tonumber(ARGV[1]) / 1000
local cap = tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'tk', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then return {-1, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
if now > ts then tokens = tokens + (now - ts) * rate end
if tokens > cap then tokens = cap end
return {math.floor(tokens + 1e-9), math.ceil((cap - tokens) / rate)}
`;

const PEEK_SHA = createHash('sha1').update(PEEK_LUA).digest('hex');

async function peekOne(c: RedisClient, rkey: string, spec: LimitSpec): Promise<[number, number]> {
  const args = [rkey, String(spec.ratePerSec), String(spec.capacity)];
  try {
    return await (c.evalsha(PEEK_SHA, 1, ...args) as Promise<[number, number]>);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.includes('NOSCRIPT')) throw err;
    return await (c.eval(PEEK_LUA, 1, ...args) as Promise<[number, number]>);
  }
}

function state(spec: LimitSpec, key: string, r: [number, number]): BucketState | null {
  const available = Number(r[0]);
  if (available < 0) return null;
  const capacity = spec.capacity;
  return { scope: spec.scope, key, available, capacity, used: capacity > 0 ? 1 - Math.min(available, capacity) / capacity : 0, msUntilFull: Number(r[1]) };
}

/** The state of one limit for one key in Redis (null: never used, so full), bounded by command_timeout. */
export function peekCluster(conn: RedisConnection, spec: LimitSpec, key: string): Promise<BucketState | null> {
  const rkey = redisKey(conn.prefix, spec.code, key);
  return conn.withTimeout((c) => peekOne(c, rkey, spec)).then((r) => state(spec, key, r));
}

/** The Redis key's scope and limit key (`{prefix}rl:per_user:h:alice}` -> per_user, "h:alice"). */
export function parseLimitKey(prefix: string, rkey: string): { scope: ScopeName; key: string } | null {
  const head = `{${prefix}rl:`;
  if (!rkey.startsWith(head) || !rkey.endsWith('}')) return null;
  const inner = rkey.slice(head.length, -1);
  const sep = inner.indexOf(':');
  const scope = (sep === -1 ? inner : inner.slice(0, sep)) as ScopeName;
  if (!SCOPE_NAMES.includes(scope)) return null;
  return { scope, key: sep === -1 ? '' : inner.slice(sep + 1) };
}

function specFor(limits: CompiledLimits, scope: ScopeName, key: string): LimitSpec | null {
  if (scope === 'global') return limits.global;
  if (scope === 'per_user') return limits.perUser;
  return limits.endpoints.get(key) ?? null;
}

/**
 * The `n` limits closest to their limit among at most `maxKeys` limit keys in Redis (SCAN, every master of a
 * cluster): what the status page lists for `scope: cluster`. Keys of limits the policy no longer has are skipped.
 */
export async function closestInRedis(conn: RedisConnection, limits: CompiledLimits, n: number, maxKeys = 1000): Promise<BucketState[]> {
  const pattern = `{${conn.prefix}rl:*`;
  const keys: string[] = [];
  await conn.withTimeout(async (c) => {
    for (const node of masters(c)) {
      let cursor = '0';
      do {
        const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 200);
        cursor = next;
        keys.push(...found);
      } while (cursor !== '0' && keys.length < maxKeys);
      if (keys.length >= maxKeys) break;
    }
  }, Math.max(conn.policy.command_timeout, 1000));
  const out: BucketState[] = [];
  for (const rkey of keys.slice(0, maxKeys)) {
    const parsed = parseLimitKey(conn.prefix, rkey);
    if (parsed === null) continue;
    const spec = specFor(limits, parsed.scope, parsed.key);
    if (spec === null || spec.code !== SCOPE_CODES[parsed.scope]) continue;
    const s = await conn.withTimeout((c) => peekOne(c, rkey, spec)).then((r) => state(spec, parsed.key, r), () => null);
    if (s !== null) out.push(s);
  }
  out.sort(closerToLimit);
  return out.slice(0, n);
}
