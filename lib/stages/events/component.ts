/**
 * The events stage's component: one Invalidator per process (lib/cache/invalidation/engine.ts), one
 * EventsFilter per policy with cache.invalidation (filter.ts), and the worker's side of POST /admin/invalidate.
 */
import type { Component, Runtime } from '../../core/component';
import type { Stage } from '../../core/stage';
import type { LoadedPolicy } from '../../policy/types';
import type { Tiers } from '../../cache/tiers';
import { Invalidator } from '../../cache/invalidation/engine';
import { TOPIC_ADMIN_INVALIDATE, type RaiseResult } from '../../cache/invalidation/protocol';
import { cleanParams } from '../../cache/invalidation/patterns';
import { EventsFilter } from './filter';

/** The events filter's component: one Invalidator per process, one EventsFilter per policy. */
export class InvalidationComponent implements Component<Stage> {
  readonly invalidator: Invalidator;
  private readonly views = new WeakMap<LoadedPolicy, EventsFilter | null>();

  constructor(rt: Runtime, tiers: Tiers) {
    this.invalidator = new Invalidator(rt, tiers);
    // POST /admin/invalidate lands here (the primary asks one worker): the whole invalidation is awaited
    rt.coordinator.handle(TOPIC_ADMIN_INVALIDATE, async (payload: { event?: unknown; params?: unknown }) => {
      const event = payload?.event;
      const params = cleanParams(payload?.params);
      if (typeof event !== 'string' || params === null) throw new Error('body must be {"event": "<name>", "params": {"name": "value"}}');
      const rules = this.invalidator.rules;
      if (rules === null) throw new Error('cache.invalidation is not configured');
      if (!rules.triggers.has(event)) throw new Error(`event ${JSON.stringify(event)} is not in cache.invalidation.triggers`);
      const r = await this.invalidator.raise(event, params).all;
      return r ?? ({ event, patterns: [], removed: { l1: 0, l2: 0, l3: 0 } } satisfies RaiseResult);
    });
  }

  configure(next: LoadedPolicy): Stage | null {
    if (this.views.has(next)) return this.views.get(next) ?? null;
    this.invalidator.configure(next.policy);
    // with any cache, unsafe requests invalidate by URI (RFC 9111 §4.4) even without cache.invalidation
    const view = next.policy.cache ? new EventsFilter(this.invalidator) : null;
    this.views.set(next, view);
    return view;
  }

  async close(): Promise<void> {
    this.invalidator.close();
  }
}
