/**
 * Replays of writes sent with `X-Idempotency-Key`: the same key (per path and API key) within `ttlMs`
 * gets the first answer again, and the write is not done twice.
 */
export interface StoredReply {
  readonly status: number;
  readonly body: Buffer;
}

export class IdempotencyStore {
  // Insertion order = expiry order (one TTL for all), so expired entries are always at the front.
  private readonly replies = new Map<string, { expiresAt: number; reply: StoredReply }>();

  constructor(private readonly ttlMs: number, private readonly maxEntries = 100_000) {}

  get(key: string, now = Date.now()): StoredReply | undefined {
    const e = this.replies.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= now) {
      this.replies.delete(key);
      return undefined;
    }
    return e.reply;
  }

  set(key: string, reply: StoredReply, now = Date.now()): void {
    for (const [k, e] of this.replies) {
      if (e.expiresAt > now && this.replies.size < this.maxEntries) break;
      this.replies.delete(k);
    }
    this.replies.set(key, { expiresAt: now + this.ttlMs, reply });
  }
}
