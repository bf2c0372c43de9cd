/**
 * One shared Redis connection (single node or Cluster) per process, used by the cluster-scope rate limiter,
 * the L2 cache and invalidation pub/sub. Built for a sidecar that must not suffer when Redis does:
 *  - no offline queue: while disconnected, commands fail at once instead of piling up;
 *  - every call on a request's path is bounded by `command_timeout` (see `withTimeout`);
 *  - reconnects forever with a capped backoff, and `healthy` says whether the link is up right now.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisPolicy } from '../policy/types';
import type { Logger } from '../observe/logger';
import { redactUrl } from '../util/redact';
import { redisPassword } from './password';

export type RedisClient = Redis | Cluster;

export class RedisUnavailableError extends Error {}

export class RedisConnection {
  readonly client: RedisClient;
  readonly prefix: string;
  readonly commandTimeout: number;
  private up = false;
  private closed = false;
  private everUp = false;
  private saidUnreachable = false;
  /** Monotonic count of transitions to "down", so users can tell "was there an outage since X". */
  outages = 0;
  private downListeners = new Set<() => void>();
  private upListeners = new Set<() => void>();

  constructor(readonly policy: RedisPolicy, private readonly log: Logger, role = 'main') {
    this.prefix = policy.key_prefix;
    this.commandTimeout = policy.command_timeout;
    const retryStrategy = (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000);
    const common: RedisOptions = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      keepAlive: policy.socket_keepalive ? 1000 : 0,
      retryStrategy,
      lazyConnect: false,
      connectionName: `bridge-sidecar:${role}:${process.pid}`,
    };
    const password = redisPassword(policy, log);
    if (password !== undefined) common.password = password;
    if (policy.cluster) {
      const opts: ClusterOptions = {
        redisOptions: common,
        enableOfflineQueue: false,
        clusterRetryStrategy: retryStrategy,
        slotsRefreshTimeout: 2000,
        scaleReads: 'master',
      };
      this.client = new Cluster(policy.cluster.map((n) => ({ host: n.host, port: n.port })), opts);
    } else {
      this.client = new Redis(policy.url ?? 'redis://127.0.0.1:6379', common);
    }
    this.client.on('ready', () => {
      if (!this.up) {
        this.up = true;
        this.everUp = true;
        this.log.info({ redis: this.describe(), role }, 'redis connected');
        for (const fn of this.upListeners) fn();
      }
    });
    const down = (why: string) => {
      if (this.up) {
        this.up = false;
        this.outages++;
        this.log.warn({ redis: this.describe(), role, why }, 'redis connection lost');
        for (const fn of this.downListeners) fn();
      }
    };
    this.client.on('close', () => down('close'));
    this.client.on('end', () => down('end'));
    this.client.on('error', (err: Error) => {
      // ioredis emits an error per failed reconnect; keep the log quiet while it is down. A Redis that was
      // never reached gets one warning (and "redis connected" when it comes), not one line per attempt.
      if (this.up) this.log.warn({ err: err.message, role }, 'redis error');
      else if (role === 'main' && !this.everUp && !this.saidUnreachable && !this.closed) {
        this.saidUnreachable = true;
        this.log.warn({ redis: this.describe(), role, err: err.message },
          'redis unreachable: going on without it (L2 cache misses, pod-local rate limits) and retrying; "redis connected" follows when it is up');
      }
    });
  }

  get healthy(): boolean {
    return this.up && !this.closed;
  }

  describe(): string {
    return this.policy.cluster ? `cluster(${this.policy.cluster.map((n) => `${n.host}:${n.port}`).join(',')})` : redactUrl(this.policy.url ?? '');
  }

  onDown(fn: () => void): () => void {
    this.downListeners.add(fn);
    return () => this.downListeners.delete(fn);
  }

  onUp(fn: () => void): () => void {
    this.upListeners.add(fn);
    return () => this.upListeners.delete(fn);
  }

  /** Run a Redis call, failing fast when the link is down and after `command_timeout` otherwise. */
  withTimeout<T>(fn: (c: RedisClient) => Promise<T>, timeoutMs = this.commandTimeout): Promise<T> {
    if (!this.healthy) return Promise.reject(new RedisUnavailableError('redis is not connected'));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new RedisUnavailableError(`redis call exceeded ${timeoutMs} ms`)), timeoutMs);
      fn(this.client).then(
        (v) => { clearTimeout(timer); resolve(v); },
        (e: unknown) => { clearTimeout(timer); reject(e); },
      );
    });
  }

  /** A second connection for SUBSCRIBE (a subscribed connection can run nothing else). */
  duplicate(role: string): RedisConnection {
    return new RedisConnection(this.policy, this.log, role);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client.disconnect();
  }
}

/** A Redis Cluster client (its keys spread over several masters), as opposed to a single node. */
export function isCluster(c: RedisClient): c is Cluster {
  return typeof (c as Cluster).nodes === 'function' && (c as Cluster).isCluster === true;
}

/** The nodes that hold keys: every master of a cluster, or the one node. */
export function masters(c: RedisClient): RedisClient[] {
  return isCluster(c) ? c.nodes('master') : [c];
}

/** Same policy, same connection: a reload that leaves `redis` alone keeps the link. */
export function samePolicy(a: RedisPolicy | null, b: RedisPolicy | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
