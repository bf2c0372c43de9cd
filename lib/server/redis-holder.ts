import type { Logger } from '../observe/logger';
import type { LoadedPolicy } from '../policy/types';
import { RedisConnection, samePolicy } from '../redis/client';

/** Owns the Redis link: reconnects only when the policy's `redis` section changes. */
export class RedisHolder {
  private conn: RedisConnection | null = null;
  constructor(private readonly log: Logger) {}

  get(): RedisConnection | null {
    return this.conn;
  }

  configure(next: LoadedPolicy): RedisConnection | null {
    const want = next.policy.redis;
    if (this.conn && samePolicy(this.conn.policy, want)) return this.conn;
    const old = this.conn;
    this.conn = want ? new RedisConnection(want, this.log) : null;
    if (old) void old.close();
    return this.conn;
  }

  async close(): Promise<void> {
    await this.conn?.close();
    this.conn = null;
  }
}
