/**
 * Worker side of warm-up. The primary's scheduler (scheduler.ts) asks every worker for its request counts
 * (`warmup:counts`), then one worker to run the strategy (`warmup:run`):
 *
 *   1. rank: the counts the primary gathered + the fleet's shared counts in Redis; keys this worker's L3 holds
 *      fill the list up to `top` when there are no counts yet (a restarted pod in one-pod mode);
 *   2. for each key (and each of its variants): fresh in L1 -> nothing to do; fresh in L2/L3 -> promoted into
 *      L1; expired (or only stale) and the entry remembers its request -> refetched from the upstream through
 *      the queue class named by the strategy's `priority` (AdmissionScheduler.acquire, exactly like a client
 *      request of that class, so warm-up never takes a slot ahead of more important traffic), and stored in
 *      every tier;
 *   3. the scheduler then asks the other workers (`warmup:promote`) to pull the warmed keys into their own L1.
 * Without L2 (one-pod mode) nothing is shared between workers, so the scheduler asks every worker to run the
 * strategy on its own tiers instead (each with the pod's merged counts).
 */
import type { Runtime } from '../../core/component';
import type { Policy, Priority, RoutePolicy, WarmupStrategyPolicy } from '../../policy/types';
import type { Tiers } from '../tiers';
import type { EntryMeta } from '../entry';
import { requestBody } from '../entry';
import { KeyTemplate, globToRegExp, readablePart, VARIANT_SEPARATOR } from '../keys';
import { fetchUpstream } from '../refresh';
import { buildEntry, compileStoreIf, headNotStorable, storeIfPasses, type StoreRequest } from '../admission';
import { RequestCounts, mergeCounts } from './counts';
import { warmupMetrics, type WarmupMetrics } from './metrics';
import { TOPIC_COUNTS, TOPIC_PROMOTE, TOPIC_RUN, type RunRequest, type RunResult } from './protocol';


/** Refetches of one run in flight at once (each also waits for its queue slot). */
const REFETCH_PARALLEL = 2;
const LARGE_BODY = 10 * 1024 * 1024;

interface RouteInfo {
  readonly route: RoutePolicy;
  readonly template: KeyTemplate;
}

/** Waits for an upstream slot in a queue class, like a client request of that class; the slot is given back once. */
export type Admit = (priority: Priority) => SlotRelease | Promise<SlotRelease>;
type SlotRelease = (outcome: { ok: boolean; latencyMs: number }) => void;

export class WarmupWorker {
  readonly counts: RequestCounts;
  private readonly metrics: WarmupMetrics;
  private policy: Policy | null = null;
  private routes: RouteInfo[] = [];

  constructor(private readonly rt: Runtime, private readonly tiers: Tiers, private readonly admit: Admit) {
    this.counts = new RequestCounts(() => rt.redis(), rt.log);
    this.metrics = warmupMetrics(rt.metrics.registry);
    rt.coordinator.handle(TOPIC_COUNTS, async (p: { pattern: string; top: number }) => {
      // the fleet's counts are in Redis: a run before the link is up would rank nothing (the scheduler retries
      // "not connected" until its deadline)
      const conn = rt.redis();
      if (conn !== null && !conn.healthy) throw new Error('redis not connected yet');
      await this.counts.flush();
      return this.counts.topLocal(p.pattern, p.top);
    });
    rt.coordinator.handle(TOPIC_RUN, (req: RunRequest) => this.run(req));
    rt.coordinator.handle(TOPIC_PROMOTE, async (p: { keys: string[] }) => {
      if (Array.isArray(p?.keys)) await this.promote(p.keys);
      return true;
    });
  }

  /** The policy in force: which routes' entries may be refetched, and how. */
  configure(policy: Policy): void {
    this.policy = policy;
    this.routes = policy.routes.flatMap((route) => (route.cache ? [{ route, template: new KeyTemplate(route.cache.key) }] : []));
  }

  /** Run one strategy in this worker. */
  async run(req: RunRequest): Promise<RunResult> {
    const s = req.strategy;
    const sources: Record<string, number> = {};
    const count = (source: string, n = 1) => {
      sources[source] = (sources[source] ?? 0) + n;
      this.metrics.entries.inc({ strategy: s.name, source }, n);
    };
    let result: RunResult['result'] = 'ok';
    let keys: string[] = [];
    let warmedKeys: string[] = [];
    try {
      const tiers = this.tiers;
      await tiers.l3?.ready.catch(() => {});
      const ranked = mergeCounts([req.counts, await this.counts.topShared(s.pattern, s.top)], s.top);
      keys = ranked.map(([k]) => k);
      if (keys.length < s.top && tiers.l3 !== null) {
        // nothing counted yet (a fresh pod): what this pod's disk holds still beats a cold L1
        const re = globToRegExp(s.pattern);
        for (const k of tiers.l3.keys()) {
          if (keys.length >= s.top) break;
          const r = readablePart(k);
          if (re.test(r) && !keys.includes(r)) keys.push(r);
        }
      }
      const variants = await this.variantsOf(keys);
      const refetch: EntryMeta[] = [];
      const warmed: string[] = [];
      for (const full of variants) {
        if (Date.now() > req.deadline) { result = 'timeout'; break; }
        const now = Date.now();
        const inL1 = tiers.l1?.get(full);
        if (inL1 !== undefined && now < inL1.meta.freshUntil) { count('l1'); continue; }
        const found = await tiers.getLower(full);
        if (found !== null && (found.meta.kind === 'vary' || Date.now() < found.meta.freshUntil)) {
          count(found.layer);
          warmed.push(full);
          continue;
        }
        const meta = found?.meta ?? inL1?.meta;
        if (meta !== undefined && meta.kind === 'response' && meta.request !== null) refetch.push(meta);
        else count('missing');
      }
      // refetch through the queue, a few at a time
      let failed = 0;
      let next = 0;
      const workers = Array.from({ length: Math.min(REFETCH_PARALLEL, refetch.length) }, async () => {
        while (next < refetch.length) {
          if (Date.now() > req.deadline) { result = 'timeout'; return; }
          const meta = refetch[next++];
          const stored = await this.refetch(meta, s.priority, req.deadline).catch((err: unknown) => {
            this.rt.log.debug({ err: (err as Error).message, key: meta.key }, 'warm-up refetch failed');
            return null;
          });
          if (stored !== null) { count('upstream'); warmed.push(stored); } else { count('failed'); failed++; }
        }
      });
      await Promise.all(workers);
      if (failed > 0 && result === 'ok') result = 'partial';
      if (warmed.length > 0) {
        // refetched entries reach L2/L3 through the background writer: let them land before the others pull
        await Promise.race([this.tiers.writer.drain(), new Promise((r) => setTimeout(r, 2000).unref())]);
      }
      warmedKeys = warmed;
    } catch (err) {
      result = 'error';
      this.rt.log.warn({ err, strategy: s.name }, 'warm-up run failed');
    }
    this.metrics.runs.inc({ strategy: s.name, result });
    this.rt.log.info({ strategy: s.name, result, keys: keys.length, sources }, 'warm-up run finished');
    return { strategy: s.name, result, keys: keys.length, sources, warmed: warmedKeys };
  }

  /** Every stored key (variants, vary markers) of these readable keys, in L1, L3 and L2's tag index. */
  private async variantsOf(readable: readonly string[]): Promise<string[]> {
    const want = new Set(readable);
    const out = new Set<string>();
    const tiers = this.tiers;
    if (tiers.l1 !== null) for (const k of tiers.l1.keys()) if (want.has(readablePart(k))) out.add(k);
    if (tiers.l3 !== null) for (const k of tiers.l3.keys()) if (want.has(readablePart(k))) out.add(k);
    const conn = this.rt.redis();
    if (tiers.l2 !== null && conn !== null && conn.healthy) {
      for (const r of readable) {
        // the tag set's name mirrors lib/cache/l2.ts: every key is a member of ct:<its readable part>
        const members = await conn.withTimeout((c) => c.smembers(conn.prefix + 'ct:' + r), 2000).catch(() => [] as string[]);
        for (const k of members) out.add(k);
      }
    }
    // markers (base keys) before the variants they point to
    return [...out].sort((a, b) => a.length - b.length);
  }

  /** Replay an entry's request upstream through the queue class `priority`; store the answer. */
  private async refetch(meta: EntryMeta, priority: Priority, deadline: number): Promise<string | null> {
    const policy = this.policy;
    const req = meta.request;
    if (policy === null || req === null) return null;
    const readable = readablePart(meta.key);
    const info = this.routes.find((r) => r.template.fill(meta.params) === readable);
    if (info === undefined || info.route.cache === null) return null;
    // a per-user entry cannot be replayed faithfully: the stored request keeps only content-type, accept and the
    // Vary-named headers, not the identity or header the params came from (replaying it could store another
    // user's answer under this user's key)
    for (const expr of Object.values(info.route.params)) {
      if (expr === 'identity') return null;
      if (expr.startsWith('header.') && req.headers[expr.slice(7).toLowerCase()] === undefined) return null;
    }
    const release = await this.admit(priority);
    const started = performance.now();
    const fillStart = this.tiers.recent.now();
    let ok = false;
    try {
      const path = req.query ? `${req.path}?${req.query}` : req.path;
      const body = requestBody(req);
      const timeout = Math.max(1, Math.min(policy.upstream.pool.read_timeout, deadline - Date.now()));
      const r = await fetchUpstream(policy.upstream, req.method, path, { ...req.headers }, body, timeout, policy.memory?.large_body_threshold ?? LARGE_BODY, () => this.rt.clock.now());
      const c = info.route.cache;
      const sep = meta.key.indexOf(VARIANT_SEPARATOR);
      const sr: StoreRequest = {
        method: req.method, path: req.path, query: req.query, headers: { ...req.headers }, body, params: meta.params,
        // the base key: readable part + '#' + the 16-hex request hash (keys.ts); a variant adds '.<hash>'
        baseKey: sep === -1 ? meta.key : meta.key.slice(0, sep + 17),
        requestTime: r.requestTime,
        rules: { ttl: c.ttl, staleWhileRevalidate: c.stale_while_revalidate, staleIfError: c.stale_if_error, override: c.override_upstream },
        storeIf: compileStoreIf(c.store_if),
        noStore: false,
      };
      ok = r.status < 500;
      if (headNotStorable(r.status, r.headers, sr) !== null || !storeIfPasses(sr.storeIf, r.headers, r.body)) return null;
      const built = buildEntry(sr, r.status, r.headers, r.body, r.responseTime);
      if (built === null) return null;
      // an invalidation of this key while the refetch was in flight: its answer may predate it, store nothing
      return this.tiers.storeBuilt(built, fillStart) ? built.key : null;
    } finally {
      release({ ok, latencyMs: performance.now() - started });
    }
  }

  /** Another worker warmed these keys: pull them into this worker's L1 from L2 (or this worker's L3). */
  private async promote(keys: readonly string[]): Promise<void> {
    const tiers = this.tiers;
    for (const k of keys) {
      if (tiers.l1?.get(k) !== undefined) continue;
      await tiers.getLower(k).catch(() => null);
    }
  }

  async close(): Promise<void> {
    this.counts.close();
  }
}
