/**
 * The invalidation engine of one worker process (or the single process).
 *
 * An event raised here (route `emits`, `X-Invalidate`, POST /admin/invalidate) goes:
 *
 *   1. this worker's L1 (L1 passes are batched per event-loop turn, see L1Sweeper);
 *   2. every worker of this pod (IPC fan-out through the primary; the pod's only worker does 1 and 2 at once):
 *      each records the patterns, removes from its L1 and takes the keys out of its L3 index (see applyLocal);
 *   3. L2 (Redis), through the cache's tag index;
 *   4. every worker's L1 once more (an L1 refilled from L2 between 2 and 3; skipped without an L2 tier);
 *   5. the other pods, through Redis pub/sub (channel `<key_prefix>invalidate`): each of their workers removes
 *      the same patterns from its L1 and L3.
 * Steps 1-4 are "local": the events filter holds the end of the write's response until they are done (bounded),
 * so a client that writes then reads through this pod never sees its old data. Step 5 is "remote": with
 * `async: true` the response does not wait for it.
 *
 * Cascade: a removed entry remembers its route params; the patterns those params fill are applied too, round
 * after round, until a round removes nothing new. A set of applied patterns makes loops impossible, and the
 * number of rounds and patterns is bounded anyway.
 *
 * Reads in flight: each worker records the patterns it applies in its tiers' RecentInvalidations first, so a fill
 * whose upstream request started before stores nothing (lib/cache/recent-invalidations.ts).
 *
 * Lost messages: each worker has its own subscriber connection. When it drops, the worker notes when; when it
 * is back, entries of L1 and L3 stored before it came back are dropped (they may have missed an event),
 * with a warning log and bridge_sidecar_invalidation_resyncs_total.
 *
 * Unsent messages: the other side of that rule, kept by ./outbox.ts (held in order while this pod's link is
 * down, sent when it is back).
 */
import { hostname } from 'node:os';
import type { Runtime } from '../../core/component';
import type { Tiers } from '../tiers';
import type { Policy } from '../../policy/types';
import type { RedisConnection } from '../../redis/client';
import { InvalidationRules } from './patterns';
import { L1Sweeper, L2_TIMEOUT_MS, addRemoved, emptyRemoved, removeFromL2, removeFromL3, removeStoredBefore, type Removed } from './local';
import { invalidationMetrics, type InvalidationMetrics } from './metrics';
import { TOPIC_APPLY, TOPIC_FANOUT, type ApplyRequest, type ApplyResult, type InvalidationMessage, type RaiseResult } from './protocol';
import { Outbox, channelFor } from './outbox';
import { PendingWork } from '../../util/pending-work';

/** Bounds: a cascade never runs more rounds or applies more patterns than this. */
const MAX_ROUNDS = 8;
const MAX_PATTERNS = 1000;
/** How long the local part may take before the write's response is let go anyway. */
export const LOCAL_TIMEOUT_MS = 5000;
/** How long cleanup waits for background writes that were running when an invalidation came. */
export const DRAIN_TIMEOUT_MS = 2000;


export interface Raised {
  /**
   * Settles when no tier of this pod serves or stores the old data any more (never rejects); files on disk and
   * background writes that were already running are cleaned up after it (Invalidator.applyLocal).
   */
  readonly local: Promise<RaiseResult | null>;
  /** Settles when the event has also been published to the other pods (never rejects). */
  readonly all: Promise<RaiseResult | null>;
}

const NOTHING: Raised = { local: Promise.resolve(null), all: Promise.resolve(null) };

/** This pod's id: the host name (the pod name in Kubernetes) and the primary's pid. */
export function podId(inWorker: boolean): string {
  return `${hostname()}/${inWorker ? process.ppid : process.pid}`;
}

function withTimeout<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise<T>((resolve) => {
    const t = setTimeout(() => resolve(fallback), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, () => { clearTimeout(t); resolve(fallback); });
  });
}

export class Invalidator {
  rules: InvalidationRules | null = null;
  readonly pod: string;
  private readonly metrics: InvalidationMetrics;
  private channel = '';
  private conn: RedisConnection | null = null;
  private sub: RedisConnection | null = null;
  private subOff: Array<() => void> = [];
  /** Set when the subscriber link went down; cleared by the resync when it is back. */
  private downSince: number | null = null;
  private readonly unhandle: Array<() => void> = [];
  private closed = false;
  /** The policy has a cache (RFC 9111 §4.4 invalidations apply even without cache.invalidation). */
  private cached = false;
  private readonly sweeper: L1Sweeper;
  /** Messages for the other pods, and those that could not be published yet (see "Unsent messages" above). */
  private readonly outbox: Outbox;
  private connOff: (() => void) | null = null;
  /** Cleanup still running after applyLocal answered (see afterRunningWrites). */
  private readonly background = new PendingWork();

  constructor(private readonly rt: Runtime, private readonly tiers: Tiers) {
    this.pod = podId(rt.workerIndex !== null);
    this.metrics = invalidationMetrics(rt.metrics.registry);
    this.sweeper = new L1Sweeper(tiers);
    this.outbox = new Outbox(rt, tiers, this.metrics, () => this.rules?.cascade ?? false);
    rt.coordinator.handle(TOPIC_APPLY, (req: ApplyRequest) => this.applyLocal(req));
  }

  configure(policy: Policy): void {
    const inv = policy.cache?.invalidation ?? null;
    this.rules = inv ? new InvalidationRules(inv) : null;
    // the channel also carries RFC 9111 §4.4 invalidations, which every pod with a cache takes part in
    this.cached = policy.cache !== null;
    const conn = this.rules || this.cached ? this.rt.redis() : null;
    if (conn !== this.conn) {
      this.stopSubscriber();
      this.connOff?.();
      this.connOff = null;
      // held messages were for the pods behind the old Redis; the new one's pods never cached through this one
      this.outbox.drop();
      this.conn = conn;
      if (conn !== null) {
        this.startSubscriber(conn);
        this.connOff = conn.onUp(() => void this.outbox.flush());
      }
    }
  }

  /**
   * RFC 9111 §4.4: a non-error answer to an unsafe request invalidates what is stored for its target URI (and a
   * same-origin Location / Content-Location): in every worker of this pod (each has its own URI index), in L2,
   * and in the other pods over the invalidation channel.
   */
  invalidateUris(uris: readonly string[]): Raised {
    const time = Date.now();
    const local = this.fanout({ patterns: [], uris, cascade: false, l1Only: false, raisedAt: time })
      .then((r) => ({ event: '', patterns: [], removed: { l1: r.l1, l2: 0, l3: r.l3 } }))
      .catch(() => null);
    const all = local.then(async (r) => {
      await this.publish({ event: '', params: {}, patterns: [], uris, origin: this.pod, time });
      return r;
    });
    return { local, all };
  }

  /** Raise an event with params. Events not in `triggers` (or with invalidation off) do nothing. */
  raise(event: string, params: Readonly<Record<string, string>>): Raised {
    const rules = this.rules;
    if (rules === null || !rules.triggers.has(event)) return NOTHING;
    const patterns = rules.fill(params);
    this.metrics.events.inc({ event });
    if (patterns.length === 0) {
      this.rt.log.debug({ event, params }, 'invalidation event fills no pattern');
      return NOTHING;
    }
    const time = Date.now();
    const local = this.runLocal(event, patterns, rules, time).catch((err: unknown) => {
      this.rt.log.error({ err, event }, 'invalidation failed in this pod');
      return null;
    });
    const all = local.then(async (r) => {
      if (r === null) return null;
      await this.publish({ event, params, patterns: r.patterns, origin: this.pod, time });
      return r;
    }).catch(() => null);
    return { local, all };
  }

  private async runLocal(event: string, initial: string[], rules: InvalidationRules, raisedAt: number): Promise<RaiseResult> {
    const applied = new Set<string>();
    let total: Removed = emptyRemoved();
    let next = initial;
    // 1. this worker's L1 first (before the IPC round trip); the pod's only worker has no round trip to make,
    //    step 2 is this worker alone
    if (!this.soleWorker()) {
      const first = await this.sweeper.remove(initial, rules.cascade);
      this.metrics.entries.inc({ layer: 'l1' }, first.l1);
      total = { ...first, params: [], keys: [] };
      next = [...initial, ...this.derive(first.params, rules)];
    }
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const fresh = [...new Set(next)].filter((p) => !applied.has(p));
      if (fresh.length === 0 || applied.size >= MAX_PATTERNS) break;
      for (const p of fresh) applied.add(p);
      // 2. every worker of the pod: drain background writes, L1, L3
      const pod = await this.fanout({ patterns: fresh, cascade: rules.cascade, l1Only: false, raisedAt });
      // 3. L2
      let l2 = emptyRemoved();
      try {
        l2 = await removeFromL2(this.tiers, this.rt.redis(), fresh, rules.cascade, L2_TIMEOUT_MS);
      } catch (err) {
        this.rt.log.warn({ err: (err as Error).message, event }, 'invalidation could not reach L2: its entries expire on their TTL');
      }
      this.metrics.entries.inc({ layer: 'l2' }, l2.l2);
      total = addRemoved(total, { l1: pod.l1, l2: l2.l2, l3: pod.l3, params: [], keys: [] });
      next = rules.cascade ? this.derive(pod.params.concat(l2.params), rules) : [];
    }
    // 4. an L1 may have been refilled from L2 while step 3 ran (without an L2 nothing refills it: a fill from
    //    the upstream already in flight, or a sibling's replica of one, is refused by tiers.recent)
    if (this.tiers.l2 !== null) {
      const last = await this.fanout({ patterns: [...applied], cascade: false, l1Only: true, raisedAt });
      total.l1 += last.l1;
    }
    return { event, patterns: [...applied], removed: { l1: total.l1, l2: total.l2, l3: total.l3 } };
  }

  private soleWorker(): boolean {
    const c = this.rt.coordinator;
    return c.role === 'worker' && c.sole === true;
  }

  /** Patterns filled by the params of removed entries. */
  private derive(params: ReadonlyArray<Readonly<Record<string, string>>>, rules: InvalidationRules): string[] {
    if (!rules.cascade) return [];
    const out = new Set<string>();
    for (const p of params) for (const s of rules.fill(p)) out.add(s);
    return [...out];
  }

  /**
   * Ask every worker of this pod (through the primary) to apply patterns; sums their answers. The pod's only
   * worker applies them itself: a round trip through the primary back to itself would change nothing.
   */
  private async fanout(req: ApplyRequest): Promise<ApplyResult> {
    if (this.soleWorker()) return this.applyLocal(req);
    const c = this.rt.coordinator;
    try {
      return await c.request(TOPIC_FANOUT, req, LOCAL_TIMEOUT_MS);
    } catch (err) {
      // no primary to fan out through (or it timed out): at least this worker's own tiers
      this.rt.log.warn({ err: (err as Error).message }, 'invalidation fan-out to the other workers failed');
      return this.applyLocal(req);
    }
  }

  /**
   * One worker's part. What it answers with is the moment nothing of this process serves or stores the old data:
   * 1. the patterns are recorded (tiers.recent): a fill of these keys already in flight stores nothing, an L2/L3
   *    write of one still queued is dropped when it runs, and a copy read back from L2/L3 that was stored before
   *    the event is refused;
   * 2. L1 entries are removed, and L3 entries leave the index (their files go in the background, see
   *    L3Cache.detach): no disk operation is waited for, so a burst of writes does not queue behind the disk;
   * 3. for an event from another pod (`remote`), the keys this worker held are also deleted from L2 one by one:
   *    this worker may have stored them a moment before the event, and its write-behind may have reached L2
   *    after the origin pod cleaned it.
   * Then, in the background, background writes that were already waiting or running at step 1 are let land and
   * removed (`afterRunningWrites`); with none, there is nothing to clean up.
   */
  async applyLocal(req: ApplyRequest, remote = false): Promise<ApplyResult> {
    const tiers = this.tiers;
    if (req.uris !== undefined && req.uris.length > 0) return this.applyUris(req.uris, req.raisedAt);
    if (!req.l1Only) tiers.recent.record(req.patterns, req.raisedAt);
    // a write enqueued from now on is checked against tiers.recent when it runs; only one already waiting or
    // running can land an old copy after the removal below
    const writesRunning = !req.l1Only && !tiers.writer.idle;
    let out = await this.sweeper.remove(req.patterns, req.cascade);
    if (!req.l1Only) {
      await removeFromL3(tiers, req.patterns, req.cascade, out);
      const l2 = tiers.l2;
      if (remote && l2 !== null && out.keys.length > 0) {
        await Promise.all([...new Set(out.keys)].map((k) => l2.delete(k).catch(() => {})));
        out = addRemoved(out, await this.sweeper.remove(req.patterns, false)); // refilled from L2 meanwhile
      }
      if (writesRunning) {
        this.background.track(this.afterRunningWrites(req.patterns, req.raisedAt ?? Date.now()),
          (err) => this.rt.log.warn({ err: (err as Error).message }, 'invalidation cleanup after running writes failed'));
      }
    }
    this.metrics.entries.inc({ layer: 'l1' }, out.l1);
    this.metrics.entries.inc({ layer: 'l3' }, out.l3);
    return { l1: out.l1, l3: out.l3, params: out.params };
  }

  /**
   * A background write that was already running when the patterns were recorded (an L3 file being written, an
   * L2 SET on its way) lands after the removal: wait for the writer, then remove what landed. Until then a read
   * of such a copy is refused by tiers.recent (stored before the event), so this is cleanup, not correctness.
   * Only copies stored up to the event (`raisedAt`) go: a fill that started after it is fresh and stays.
   */
  private async afterRunningWrites(patterns: readonly string[], raisedAt: number): Promise<void> {
    await withTimeout(this.tiers.writer.drain(), DRAIN_TIMEOUT_MS, undefined);
    const late = await this.sweeper.remove(patterns, false, raisedAt);
    await removeFromL3(this.tiers, patterns, false, late, raisedAt);
    this.metrics.entries.inc({ layer: 'l1' }, late.l1);
    this.metrics.entries.inc({ layer: 'l3' }, late.l3);
  }

  /** Settles when the background cleanup of every invalidation so far is done (tests, figures). */
  async idle(): Promise<void> {
    await this.background.settled();
    await this.tiers.l3?.unlinked();
  }

  /** This worker's part of a §4.4 invalidation: the keys its URI index holds, removed like exact patterns. */
  private async applyUris(uris: readonly string[], raisedAt: number | undefined): Promise<ApplyResult> {
    const tiers = this.tiers;
    // the index holds what the previous run stored on disk once L3's start-up scan has read it
    if (tiers.l3 !== null && !tiers.l3.loaded) await tiers.l3.ready.catch(() => {});
    const keys = uris.flatMap((u) => tiers.uris.take(u));
    if (keys.length === 0) return { l1: 0, l3: 0, params: [] };
    const r = await this.applyLocal({ patterns: keys.map(escapeGlob), cascade: false, l1Only: false, raisedAt });
    // L2 is shared: the keys this worker indexed are deleted there too (another pod's are deleted by that pod)
    const l2 = tiers.l2;
    if (l2 !== null) await Promise.all(keys.map((k) => l2.delete(k).catch(() => {})));
    return r;
  }

  // ---- other pods ---------------------------------------------------------------------------------------

  /** To the other pods (nothing to do without Redis). */
  private async publish(body: Omit<InvalidationMessage, 'id'>): Promise<void> {
    const conn = this.rt.redis();
    if (conn === null || (this.rules === null && !this.cached)) return;
    await this.outbox.publish(conn, body);
  }

  private startSubscriber(conn: RedisConnection): void {
    const sub = conn.duplicate('invalidate');
    this.sub = sub;
    this.channel = channelFor(conn);
    const subscribe = () => {
      (sub.client.subscribe(this.channel) as Promise<unknown>).catch((err: unknown) => {
        this.rt.log.warn({ err: (err as Error).message }, 'invalidation channel: subscribe failed');
      });
    };
    const onMessage = (channel: string, message: string) => {
      if (channel === this.channel) void this.receive(message);
    };
    sub.client.on('message', onMessage);
    this.subOff.push(() => sub.client.off('message', onMessage));
    this.subOff.push(sub.onDown(() => {
      this.downSince ??= Date.now();
    }));
    this.subOff.push(sub.onUp(() => {
      subscribe();
      const since = this.downSince;
      if (since !== null) {
        this.downSince = null;
        void this.resync(since, Date.now());
      }
    }));
    if (sub.healthy) subscribe();
  }

  private stopSubscriber(): void {
    for (const off of this.subOff) off();
    this.subOff = [];
    if (this.sub) void this.sub.close();
    this.sub = null;
    this.downSince = null;
  }

  /** An event from another pod: remove its patterns (and local cascades) from this worker's L1 and L3. */
  private async receive(raw: string): Promise<void> {
    let msg: InvalidationMessage;
    try {
      msg = JSON.parse(raw) as InvalidationMessage;
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object' || msg.origin === this.pod || !Array.isArray(msg.patterns)) return;
    if (Array.isArray(msg.uris)) {
      const uris = msg.uris.filter((u): u is string => typeof u === 'string');
      if (uris.length > 0) await this.fanout({ patterns: [], uris, cascade: false, l1Only: false, raisedAt: remoteRaisedAt(msg) });
      return;
    }
    const rules = this.rules;
    if (rules === null) return;
    const applied = new Set<string>();
    let next = msg.patterns.filter((p): p is string => typeof p === 'string');
    for (let round = 0; round < MAX_ROUNDS && next.length > 0 && applied.size < MAX_PATTERNS; round++) {
      const fresh = [...new Set(next)].filter((p) => !applied.has(p));
      if (fresh.length === 0) break;
      for (const p of fresh) applied.add(p);
      const r = await this.applyLocal({ patterns: fresh, cascade: rules.cascade, l1Only: false, raisedAt: remoteRaisedAt(msg) }, true);
      if (round === 0 && typeof msg.time === 'number') this.metrics.delay.observe(Math.max(0, Date.now() - msg.time) / 1000);
      next = this.derive(r.params, rules);
    }
  }

  /**
   * The subscriber link is back after an outage: drop what may have missed an event while it was down. That is
   * every local entry stored before the link came back: one stored during the outage (a fill from the upstream
   * while Redis was unreachable) can predate a write another pod announced in the meantime.
   */
  private async resync(since: number, backAt: number): Promise<void> {
    if (this.closed) return;
    // whatever was missed, a fill in flight now may carry data older than it: none of them is stored
    this.tiers.recent.blockStartedBefore();
    // background writes queued before that may still be landing: let them finish (the ones not started yet see
    // the barrier and skip), so the removal below finds every file and every L2 entry of the outage
    await this.tiers.writer.drain().catch(() => {});
    const r = await removeStoredBefore(this.tiers, backAt, since).catch(() => emptyRemoved());
    this.metrics.resyncs.inc();
    this.metrics.entries.inc({ layer: 'l1' }, r.l1);
    this.metrics.entries.inc({ layer: 'l3' }, r.l3);
    this.rt.log.warn({ outage_started: new Date(since).toISOString(), outage_ended: new Date(backAt).toISOString(), dropped_l1: r.l1, dropped_l3: r.l3 },
      'invalidation channel was down: invalidations may have been missed, dropped local cache entries stored before it came back');
  }

  close(): void {
    this.closed = true;
    this.stopSubscriber();
    this.connOff?.();
    this.outbox.close();
    for (const u of this.unhandle) u();
  }
}

/**
 * How far another pod's clock may be behind this one's (NTP keeps nodes within a few ms): an invalidation from
 * another pod counts as raised this much later, so a copy stored just before it on a clock that runs ahead is
 * still refused (refusing one stored just after only costs a refetch).
 */
export const REMOTE_CLOCK_MARGIN_MS = 50;

/** When another pod's invalidation was raised, on this pod's side of the clock margin (now when it does not say). */
function remoteRaisedAt(msg: InvalidationMessage): number {
  return typeof msg.time === 'number' && Number.isFinite(msg.time) ? msg.time + REMOTE_CLOCK_MARGIN_MS : Date.now();
}

/** A key as a glob that matches only itself. */
function escapeGlob(key: string): string {
  return key.replace(/[*?[\]\\]/g, '\\$&');
}
