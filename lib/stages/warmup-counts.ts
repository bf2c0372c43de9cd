/**
 * The warm-up's counting stage, just before the cache lookup: with warm-up strategies in the policy, every
 * cacheable request (hits included) counts once for its cache key, and the strategies warm the most requested
 * keys (lib/cache/warmup/). The component also hands each policy to the worker's warm-up runner.
 */
import type { Component } from '../core/component';
import type { RequestContext } from '../core/context';
import type { Stage } from '../core/stage';
import type { LoadedPolicy } from '../policy/types';
import { KeyTemplate } from '../cache/keys';
import type { RequestCounts, WarmupWorker } from '../cache/warmup';

export class WarmupCountsComponent implements Component<Stage> {
  constructor(readonly runner: WarmupWorker) {}

  configure(next: LoadedPolicy): Stage | null {
    this.runner.configure(next.policy);
    const w = next.policy.cache?.warmup;
    if (!w?.enabled || w.strategies.length === 0) return null;
    return new LookupCounter(this.runner.counts, next.policy.routes.map((r) => (r.cache ? new KeyTemplate(r.cache.key) : undefined)));
  }

  close(): Promise<void> {
    return this.runner.close();
  }
}

/** The request counts warm-up ranks keys by: one count per cacheable request, by its cache key. */
class LookupCounter implements Stage {
  readonly name = 'warmup-counts';
  readonly span = null;

  constructor(private readonly counts: RequestCounts, private readonly templates: ReadonlyArray<KeyTemplate | undefined>) {}

  onRequest(ctx: RequestContext): boolean {
    const t = ctx.route === null ? undefined : this.templates[ctx.route.index];
    if (t !== undefined) {
      const key = t.fill(ctx.params);
      if (key !== null) this.counts.hit(key);
    }
    return false;
  }
}
