/**
 * The rate-limit stage: per worker, a RateLimitComponent keeps the token leases (state that survives reloads)
 * and builds, for each policy, an immutable RateLimitView that the pipeline calls once per request.
 *
 * Scopes are checked from the most specific to the least (per_user, per_endpoint, global), taking one token
 * from each; when one refuses, tokens already taken for this request are put back, so a request refused by
 * its user limit does not eat into the global budget. A dry_run scope that would refuse is counted and logged
 * (at most once a second per scope) and the request goes on.
 */
import type { Counter } from 'prom-client';
import type { Component, Runtime } from '../../core/component';
import type { IdentityPolicy, LoadedPolicy } from '../../policy/types';
import type { RedisConnection } from '../../redis/client';
import type { Logger } from '../../observe/logger';
import type { WorkerMetrics } from '../../observe/metrics';
import type { Stage } from '../../core/stage';
import type { RateLimitDecision } from './decision';
import { sendRateLimited } from './respond';
import type { RequestContext } from '../../core/context';
import { resolveIdentity } from '../identity';
import { monotonicClock, type Clock } from './clock';
import { compileLimits, endpointKeyIn, type CompiledLimits, type LimitSpec } from './limits';
import { DEFAULT_LEASE_MS, LeaseEntry, Leases } from './leases';
import { PodSource, type TokenSource } from './sources';
import { RedisSource } from './redis-source';
import { admittedCounter, backendErrorsCounter, dryRunCounter } from './metrics';

export interface RateLimitOptions {
  clock?: Clock;
  /** How long a worker keeps leased tokens before giving unspent ones back. */
  leaseMs?: number;
  /** Per-user lease entries a worker keeps (LRU). */
  maxUsers?: number;
}

type Refusal = Extract<RateLimitDecision, { allowed: false }>;
const ADMIT_NO_LIMIT: RateLimitDecision = Object.freeze({ allowed: true, headers: null });
/**
 * Rounds of "ask the counters" a request may wait for before it is refused (contention only). Each round is one
 * IPC (or Redis) exchange, so the bound stays small. A batch grows with the checks that join it before it is
 * sent (leases.ts), so a burst is asked for as a whole rather than one round per arrival.
 */
const MAX_ROUNDS = 8;

/** What the views of every policy share: the leases, metrics and logging of one worker. */
class Shared {
  readonly rejected = new Map<string, { inc(): void }>();
  readonly dryRuns = new Map<string, { inc(): void }>();
  private readonly dryLogAt = new Map<string, { at: number; suppressed: number }>();

  constructor(
    readonly leases: Leases,
    readonly clock: Clock,
    private readonly rejectedCounter: Counter<'scope'>,
    private readonly dryRunCounter: Counter<'scope'>,
    private readonly log: Logger,
    readonly errors: WorkerMetrics['errors'],
  ) {}

  countRejected(scope: string): void {
    let c = this.rejected.get(scope);
    if (c === undefined) this.rejected.set(scope, (c = this.rejectedCounter.labels(scope)));
    c.inc();
  }

  dryRun(e: LeaseEntry, now: number): void {
    const scope = e.spec.scope;
    let c = this.dryRuns.get(scope);
    if (c === undefined) this.dryRuns.set(scope, (c = this.dryRunCounter.labels(scope)));
    c.inc();
    let s = this.dryLogAt.get(scope);
    if (s === undefined) this.dryLogAt.set(scope, (s = { at: -1e12, suppressed: 0 }));
    if (now - s.at >= 1000) {
      this.log.info({ scope, key: e.key || undefined, suppressed: s.suppressed }, 'rate limit dry run: would refuse');
      s.at = now;
      s.suppressed = 0;
    } else {
      s.suppressed++;
    }
  }
}

export class RateLimitView implements Stage {
  readonly name = 'ratelimit';
  readonly span = 'ratelimit.check';
  /** Reused by the synchronous path (one request at a time runs it). */
  private readonly scratch: LeaseEntry[] = [];

  constructor(
    private readonly s: Shared,
    readonly limits: CompiledLimits,
    private readonly identity: IdentityPolicy,
  ) {
    this.upstreamStage = limits.countsUpstream ? new UpstreamLimits(this) : null;
  }

  /** The per_endpoint key of this request (route name or path), or null. */
  endpointKeyFor(ctx: RequestContext): string | null {
    return endpointKeyIn(ctx, this.limits.endpoints);
  }

  /**
   * The limits with `count: upstream`, as their own stage after the cache lookup (lib/stages/chain.ts), or null
   * when the policy has none.
   */
  readonly upstreamStage: Stage | null;

  /** The stage's request hook: a refused request is answered 429 here and goes no further. */
  onRequest(ctx: RequestContext): boolean | Promise<boolean> {
    return this.enforceCheck(ctx, false);
  }

  /** Check the limits that count arrivals (`upstream` false) or upstream requests (true), and act on it. */
  enforceCheck(ctx: RequestContext, upstream: boolean): boolean | Promise<boolean> {
    const d = this.check(ctx, upstream);
    if (d instanceof Promise) return d.then((decision) => this.enforce(ctx, decision));
    return this.enforce(ctx, d);
  }

  private enforce(ctx: RequestContext, d: RateLimitDecision): boolean {
    if (!d.allowed) {
      ctx.limitOutcome = 'rejected:' + d.scope;
      this.s.errors.inc({ endpoint: ctx.endpoint, error_type: 'rate_limited' });
      sendRateLimited(ctx.res, d);
      return true;
    }
    if (d.headers) for (const [k, v] of d.headers) ctx.addHeader(k, v);
    return false;
  }

  get countsUpstream(): boolean {
    return this.limits.countsUpstream;
  }

  /**
   * `upstream` false: on arrival, the limits that count every request; true: after a cache miss, the limits that
   * count only requests that go to the upstream (`count: upstream`).
   */
  check(ctx: RequestContext, upstream = false): RateLimitDecision | Promise<RateLimitDecision> {
    const L = this.limits;
    const leases = this.s.leases;
    const es = this.scratch;
    let n = 0;
    if (L.perUser !== null && L.perUser.upstreamOnly === upstream) {
      const id = ctx.identity ?? (ctx.identity = resolveIdentity(ctx, this.identity));
      es[n++] = leases.user(id, L.perUser);
    }
    if (L.endpoints.size !== 0) {
      const key = endpointKeyIn(ctx, L.endpoints);
      const spec = key === null ? undefined : L.endpoints.get(key)!;
      if (spec !== undefined && spec.upstreamOnly === upstream) es[n++] = leases.endpoint(key!, spec);
    }
    if (L.global !== null && L.global.upstreamOnly === upstream) es[n++] = leases.global(L.global);
    if (n === 0) return ADMIT_NO_LIMIT;

    const now = this.s.clock();
    let taken = 0;
    let need = 0;
    for (let i = 0; i < n; i++) {
      const e = es[i]!;
      const r = leases.tryLocal(e, now);
      if (r === 1) taken |= 1 << i;
      else if (r === 0) need |= 1 << i;
      else if (e.spec.dryRun) this.s.dryRun(e, now);
      else {
        this.unspend(es, taken);
        return this.refuse(e, now);
      }
    }
    if (need === 0) return this.admit(es, n, now);
    return this.slow(es.slice(0, n), taken, need);
  }

  private async slow(es: LeaseEntry[], taken: number, need: number): Promise<RateLimitDecision> {
    const leases = this.s.leases;
    for (let round = 0; round < MAX_ROUNDS && need !== 0; round++) {
      const waits: Array<Promise<void>> = [];
      for (let i = 0; i < es.length; i++) {
        if ((need & (1 << i)) === 0) continue;
        const e = es[i]!;
        e.waiting++;
        waits.push(leases.fetch(e).finally(() => { e.waiting--; }));
      }
      await Promise.all(waits);
      const now = this.s.clock();
      for (let i = 0; i < es.length; i++) {
        const bit = 1 << i;
        if ((need & bit) === 0) continue;
        const e = es[i]!;
        const r = leases.tryLocal(e, now);
        if (r === 0) continue;
        need &= ~bit;
        if (r === 1) taken |= bit;
        else if (e.spec.dryRun) this.s.dryRun(e, now);
        else {
          this.unspend(es, taken);
          return this.refuse(e, now);
        }
      }
    }
    const now = this.s.clock();
    if (need !== 0) {
      // still no token after several rounds: heavy contention with other workers; refuse briefly
      for (let i = 0; i < es.length; i++) {
        if ((need & (1 << i)) !== 0 && !es[i]!.spec.dryRun) {
          this.unspend(es, taken);
          return this.refuse(es[i]!, now);
        }
      }
    }
    return this.admit(es, es.length, now);
  }

  private unspend(es: LeaseEntry[], taken: number): void {
    for (let i = 0; taken !== 0; i++, taken >>= 1) if (taken & 1) this.s.leases.unspend(es[i]!);
  }

  private refuse(e: LeaseEntry, now: number): Refusal {
    const spec = e.spec;
    const waitMs = e.deniedUntil > now ? e.deniedUntil - now : 1000;
    const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
    this.s.countRejected(spec.scope);
    return {
      allowed: false,
      scope: spec.scope,
      retryAfter,
      headers: [
        ['ratelimit-policy', spec.policyField],
        ['ratelimit', `"${spec.scope}";r=0;t=${retryAfter}`],
      ],
    };
  }

  /** Admitted: the RateLimit fields of the scope closest to its limit. */
  private admit(es: LeaseEntry[], n: number, now: number): RateLimitDecision {
    void now;
    let best: LeaseEntry | null = null;
    let bestRatio = Infinity;
    let bestR = 0;
    for (let i = 0; i < n; i++) {
      const e = es[i]!;
      if (e.spec.dryRun) continue;
      const r = Math.min(e.spec.capacity, e.avail + e.tokens);
      const ratio = r / e.spec.capacity;
      if (ratio < bestRatio) {
        bestRatio = ratio;
        best = e;
        bestR = r;
      }
    }
    if (best === null) return ADMIT_NO_LIMIT;
    const spec: LimitSpec = best.spec;
    const t = Math.ceil((spec.capacity - bestR) / spec.ratePerSec);
    if (best.hdr === null || best.hdrR !== bestR || best.hdrT !== t) {
      best.hdrR = bestR;
      best.hdrT = t;
      best.hdr = [
        ['ratelimit-policy', spec.policyField],
        ['ratelimit', `"${spec.scope}";r=${bestR};t=${t}`],
      ];
    }
    return { allowed: true, headers: best.hdr };
  }
}

export class RateLimitComponent implements Component<RateLimitView> {
  private readonly clock: Clock;
  private readonly pod: PodSource;
  private readonly shared: Shared;
  private redisSource: RedisSource | null = null;
  readonly backendErrors: Counter<'reason'>;

  constructor(private readonly rt: Runtime, opts: RateLimitOptions = {}) {
    this.clock = opts.clock ?? monotonicClock;
    this.pod = new PodSource(rt.coordinator, this.clock, rt.log);
    this.backendErrors = backendErrorsCounter(rt.metrics.registry);
    const leases = new Leases(this.pod, this.pod, this.clock, opts.leaseMs ?? DEFAULT_LEASE_MS, opts.maxUsers ?? 10_000);
    this.shared = new Shared(leases, this.clock, rt.metrics.ratelimitRejected, dryRunCounter(rt.metrics.registry), rt.log, rt.metrics.errors);
    admittedCounter(rt.metrics.registry, () => leases.admitted());
  }

  get leases(): Leases {
    return this.shared.leases;
  }

  /** The stage of the `count: upstream` limits, for its own place in the chain (after the cache lookup). */
  readonly upstream: Component<Stage> = {
    configure: (next) => this.views.get(next)?.upstreamStage ?? null,
    close: async () => {},
  };
  private readonly views = new WeakMap<LoadedPolicy, RateLimitView>();

  configure(next: LoadedPolicy, previous: LoadedPolicy | null): RateLimitView | null {
    const built = this.views.get(next);
    if (built !== undefined) return built;
    const view = this.build(next, previous);
    if (view !== null) this.views.set(next, view);
    return view;
  }

  private build(next: LoadedPolicy, previous: LoadedPolicy | null): RateLimitView | null {
    void previous; // state is kept per limit and compared by its numbers, see Leases.adopt
    const rl = next.policy.rate_limiting;
    if (rl === null) {
      this.shared.leases.returnAll();
      return null;
    }
    const limits = compileLimits(rl);
    const conn = limits.scope === 'cluster' ? this.rt.redis() : null;
    this.shared.leases.setSources(this.sourceFor(conn), this.pod);
    return new RateLimitView(this.shared, limits, rl.identity);
  }

  private sourceFor(conn: RedisConnection | null): TokenSource {
    if (conn === null) return this.pod;
    if (this.redisSource === null || this.redisSource.conn !== conn) {
      this.redisSource = new RedisSource(conn, this.pod, this.clock, (reason) => this.backendErrors.inc({ reason }));
    }
    return this.redisSource;
  }

  async close(): Promise<void> {
    this.shared.leases.close();
  }
}

/**
 * The pipeline's metric label for per-endpoint limits: the route name when it is a per_endpoint key, else the
 * path when it is one, else null.
 */
export function endpointKeyFor(ctx: RequestContext, policy: { per_endpoint: Readonly<Record<string, unknown>> } | null): string | null {
  if (policy === null) return null;
  const pe = policy.per_endpoint;
  if (ctx.route !== null && Object.prototype.hasOwnProperty.call(pe, ctx.route.name)) return ctx.route.name;
  return Object.prototype.hasOwnProperty.call(pe, ctx.path) ? ctx.path : null;
}

/** The `count: upstream` limits: checked only for requests the cache did not answer. */
class UpstreamLimits implements Stage {
  readonly name = 'ratelimit-upstream';
  readonly span = null;

  constructor(private readonly view: RateLimitView) {}

  onRequest(ctx: RequestContext): boolean | Promise<boolean> {
    return this.view.enforceCheck(ctx, true);
  }
}
