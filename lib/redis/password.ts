/**
 * The Redis password, from a Secret rather than the policy ConfigMap: `redis.password_file` (a mounted Secret
 * file), else $BRIDGE_SIDECAR_REDIS_PASSWORD (an env var filled from a Secret). Read when a connection is
 * made. An unreadable file is logged and the connection is tried without a password: Redis then refuses it
 * (NOAUTH) and the sidecar keeps serving without Redis, as it does whenever Redis is down.
 */
import { readFileSync } from 'node:fs';
import type { RedisPolicy } from '../policy/types';
import type { Logger } from '../observe/logger';

export const REDIS_PASSWORD_ENV = 'BRIDGE_SIDECAR_REDIS_PASSWORD';

export function redisPassword(policy: RedisPolicy, log: Logger, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (policy.password_file) {
    try {
      // a Secret file often ends with a newline that is not part of the password
      const p = readFileSync(policy.password_file, 'utf8').replace(/\r?\n$/, '');
      return p === '' ? undefined : p;
    } catch (e) {
      log.error({ file: policy.password_file, err: (e as Error).message }, 'redis.password_file unreadable: connecting without a password');
      return undefined;
    }
  }
  const fromEnv = env[REDIS_PASSWORD_ENV];
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}
