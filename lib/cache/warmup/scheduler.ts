/**
 * Primary side of warm-up: the one place per pod where strategies are scheduled (croner), so N workers never
 * warm the same keys N times. On a tick it gathers every worker's request counts and asks one worker to run the
 * strategy (runner.ts). At start-up, strategies with `on_start` run once and /readyz reports "waiting for
 * warm-up" until they are done, or until `cache.warmup.start_timeout` has passed.
 */
import { Cron } from 'croner';
import type { Coordinator } from '../../core/ipc';
import type { Logger } from '../../observe/logger';
import type { LoadedPolicy, WarmupStrategyPolicy } from '../../policy/types';
import { mergeCounts } from './counts';
import { TOPIC_COUNTS, TOPIC_PROMOTE, TOPIC_RUN, type RunRequest, type RunResult } from './protocol';

export const STARTUP_GATE = 'warm-up';
/** A scheduled run stops warming after this long (the next tick starts afresh). */
const SCHEDULED_BUDGET_MS = 5 * 60_000;
const RETRY_MS = 100;

export interface PodGate {
  readonly startupPending: Set<string>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

/** Errors that mean "no worker can take it yet" (start-up): retry until the deadline. */
function notReadyYet(err: unknown): boolean {
  const m = err instanceof Error ? err.message : String(err);
  return /no handler for|is not running|no worker|not connected/.test(m);
}

export class WarmupScheduler {
  private jobs: Cron[] = [];
  private readonly running = new Set<string>();
  private started = false;
  private closed = false;
  /** L2 is on: one worker warms the shared tier and the others pull from it. */
  private sharedTier = false;

  constructor(private readonly coordinator: Coordinator, private readonly log: Logger, private readonly pod: PodGate | null) {}

  configure(next: LoadedPolicy): void {
    for (const j of this.jobs) j.stop();
    this.jobs = [];
    const w = next.policy.cache?.warmup ?? null;
    this.sharedTier = next.policy.cache?.l2 != null && next.policy.redis !== null;
    const on = w !== null && w.enabled ? w.strategies : [];
    for (const s of on) {
      this.jobs.push(new Cron(s.schedule, { protect: true, catch: true, unref: true }, () => {
        void this.run(s, Date.now() + SCHEDULED_BUDGET_MS, 'schedule');
      }));
    }
    if (!this.started) {
      this.started = true;
      const atStart = on.filter((s) => s.on_start);
      if (atStart.length > 0 && w !== null) void this.startup(atStart, w.start_timeout);
    }
  }

  private async startup(strategies: readonly WarmupStrategyPolicy[], timeoutMs: number): Promise<void> {
    this.pod?.startupPending.add(STARTUP_GATE);
    const deadline = Date.now() + timeoutMs;
    const all = (async () => {
      for (const s of strategies) await this.run(s, deadline, 'start');
    })();
    const timedOut = await Promise.race([all.then(() => false), sleep(timeoutMs).then(() => true)]);
    if (timedOut) this.log.warn({ start_timeout_ms: timeoutMs }, 'start-up warm-up did not finish within start_timeout: ready anyway');
    this.pod?.startupPending.delete(STARTUP_GATE);
  }

  /** Run a strategy on one worker (retrying while no worker can take it yet). Never throws. */
  async run(s: WarmupStrategyPolicy, deadline: number, why: string): Promise<RunResult | null> {
    if (this.running.has(s.name) || this.closed) return null;
    this.running.add(s.name);
    try {
      for (;;) {
        try {
          return await this.runOnce(s, deadline);
        } catch (err) {
          if (!notReadyYet(err) || Date.now() + RETRY_MS > deadline || this.closed) {
            this.log.warn({ err: (err as Error).message, strategy: s.name, why }, 'warm-up run could not be started');
            return null;
          }
          await sleep(RETRY_MS);
        }
      }
    } finally {
      this.running.delete(s.name);
    }
  }

  private async runOnce(s: WarmupStrategyPolicy, deadline: number): Promise<RunResult> {
    const c = this.coordinator;
    const ask = { pattern: s.pattern, top: s.top };
    const budget = Math.max(1000, deadline - Date.now() + 5000);
    if (c.role !== 'primary') {
      const counts = await c.request(TOPIC_COUNTS, ask);
      return c.request(TOPIC_RUN, { strategy: s, counts, deadline } satisfies RunRequest, budget);
    }
    const ids = c.workerIds();
    if (ids.length === 0) throw new Error('no worker is running');
    const lists = await Promise.allSettled(ids.map((id) => c.requestWorker(id, TOPIC_COUNTS, ask, 5000)));
    const firstErr = lists.find((l) => l.status === 'rejected');
    if (firstErr && lists.every((l) => l.status === 'rejected')) throw (firstErr as PromiseRejectedResult).reason;
    const counts = mergeCounts(lists.flatMap((l) => (l.status === 'fulfilled' ? [l.value] : [])), s.top);
    const run: RunRequest = { strategy: s, counts, deadline };
    if (!this.sharedTier) {
      // one-pod mode: each worker's L1 and L3 are its own, and only it can warm them
      const all = await Promise.allSettled(ids.map((id) => c.requestWorker(id, TOPIC_RUN, run, budget)));
      const ok = all.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      if (ok.length === 0) throw (all[0] as PromiseRejectedResult).reason;
      return ok[0];
    }
    const result = await c.requestWorker(ids[0], TOPIC_RUN, run, budget);
    // every worker has its own L1: the others pull what the runner warmed (from L2, or their own L3)
    if (result.warmed.length > 0) {
      await Promise.allSettled(ids.slice(1).map((id) => c.requestWorker(id, TOPIC_PROMOTE, { keys: result.warmed }, Math.max(1000, deadline - Date.now()))));
    }
    return result;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.jobs) j.stop();
    this.jobs = [];
  }
}
