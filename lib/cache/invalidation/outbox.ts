/**
 * The publishing side of the invalidation channel (Redis pub/sub, `<key_prefix>invalidate`): what this pod tells
 * the other pods.
 *
 * Unsent messages: an event raised while this pod's own link is down (or not up yet, in a pod that has just
 * started) cannot be published, and the other pods, whose links are fine, would never learn of it: they would
 * serve the old answer for its whole TTL. So such a message is held, in order, and sent when the link is back,
 * after the L2 removal it could not do is done again. Held messages are bounded (MAX_HELD, oldest dropped with an
 * error log) and shown by bridge_sidecar_invalidations_held.
 */
import { randomBytes } from 'node:crypto';
import type { Runtime } from '../../core/component';
import type { RedisConnection } from '../../redis/client';
import type { Tiers } from '../tiers';
import { L2_TIMEOUT_MS, removeFromL2 } from './local';
import type { InvalidationMetrics } from './metrics';
import type { InvalidationMessage } from './protocol';

/** Unsent invalidations kept for when the link to Redis is back (about 200 bytes each). */
export const MAX_HELD = 10_000;
/** While messages are held and the link is up (a publish timed out), try again this often. */
const RETRY_HELD_MS = 1000;

/** The channel of a Redis connection's pods. */
export function channelFor(conn: RedisConnection): string {
  return conn.prefix + 'invalidate';
}

export class Outbox {
  /** Messages that could not be published yet, oldest first. */
  private readonly held: InvalidationMessage[] = [];
  private heldDropped = 0;
  private flushing: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly rt: Runtime,
    private readonly tiers: Tiers,
    private readonly metrics: InvalidationMetrics,
    /** Whether the policy in force cascades (for the L2 removal redone before a held message). */
    private readonly cascade: () => boolean,
  ) {}

  /** Publish now, or hold it behind the messages already held. */
  async publish(conn: RedisConnection, body: Omit<InvalidationMessage, 'id'>): Promise<void> {
    const msg: InvalidationMessage = { id: randomBytes(8).toString('hex'), ...body };
    // behind held messages: in order, after them
    if (this.held.length > 0 || !(await this.send(conn, msg))) {
      this.hold(msg);
      void this.flush();
    }
  }

  /** Forget what is held (a new Redis: its pods never cached through this one's). */
  drop(): void {
    this.held.length = 0;
    this.metrics.held.set(0);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  close(): void {
    this.closed = true;
    this.drop();
  }

  /** Sends the held messages in order while the link is up; what is left waits for the link or the retry timer. */
  flush(): Promise<void> {
    if (this.flushing !== null) return this.flushing;
    this.flushing = (async () => {
      let sent = 0;
      while (this.held.length > 0 && !this.closed) {
        const conn = this.rt.redis();
        if (conn === null || !conn.healthy) break;
        const msg = this.held[0];
        try {
          // the L2 part of the event failed in this pod too (same link): entries another pod would promote
          await removeFromL2(this.tiers, conn, msg.patterns, this.cascade(), L2_TIMEOUT_MS);
        } catch {
          break;
        }
        if (!(await this.send(conn, msg))) break;
        // by identity: a reload or close may have emptied the queue while this one was in flight
        if (this.held[0] === msg) this.held.shift();
        this.metrics.held.set(this.held.length);
        sent++;
      }
      if (sent > 0 && this.held.length === 0) {
        this.rt.log.info({ sent, dropped: this.heldDropped }, 'held invalidations sent to the other pods');
        this.heldDropped = 0;
      }
      if (this.held.length > 0 && !this.closed && this.retryTimer === null) {
        this.retryTimer = setTimeout(() => { this.retryTimer = null; void this.flush(); }, RETRY_HELD_MS);
        this.retryTimer.unref();
      }
    })().finally(() => { this.flushing = null; });
    return this.flushing;
  }

  private async send(conn: RedisConnection, msg: InvalidationMessage): Promise<boolean> {
    try {
      await conn.withTimeout((c) => c.publish(channelFor(conn), JSON.stringify(msg)), L2_TIMEOUT_MS);
      return true;
    } catch {
      return false;
    }
  }

  private hold(msg: InvalidationMessage): void {
    if (this.held.length === 0) {
      this.rt.log.warn({ event: msg.event || 'unsafe request' },
        'invalidation could not be published to the other pods (redis unreachable): held, and sent when redis is back');
    }
    this.held.push(msg);
    if (this.held.length > MAX_HELD) {
      this.held.shift();
      if (this.heldDropped++ === 0) {
        this.rt.log.error({ max: MAX_HELD }, 'too many invalidations held while redis is unreachable: the oldest are dropped, other pods may serve those entries until their TTL');
      }
    }
    this.metrics.held.set(this.held.length);
  }
}
