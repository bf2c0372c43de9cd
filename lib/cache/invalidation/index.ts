/**
 * Cache invalidation (issue 6): the worker component (engine + events filter) and the primary's fan-out.
 * See engine.ts for the flow and docs/invalidation.md for the operator's view.
 */
import type { Component, Runtime } from '../../core/component';
import type { LoadedPolicy } from '../../policy/types';
import type { Stage } from '../../core/stage';
import type { CacheComponent } from '../../stages/cache';
import { EventsFilter } from '../../stages/events';
import { Invalidator } from './engine';
import { TOPIC_ADMIN_INVALIDATE, type RaiseResult } from './protocol';
import { cleanParams } from './patterns';

export { Invalidator } from './engine';
export { InvalidationFanout } from './fanout';
export { parseInvalidateHeader } from './patterns';


/** The events filter's component: one Invalidator per process, one EventsFilter per policy. */
export class InvalidationComponent implements Component<Stage> {
  readonly invalidator: Invalidator;
  private readonly views = new WeakMap<LoadedPolicy, EventsFilter | null>();

  constructor(rt: Runtime, cache: CacheComponent) {
    this.invalidator = new Invalidator(rt, cache);
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
