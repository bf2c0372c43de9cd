/**
 * The stage components of a worker, in request order. Each is created once per process and configured for
 * every policy (see Component in ./runtime.ts). Primary-side services (e.g. token leases for exact per-pod
 * limits across workers) are registered in registerPrimaryServices and run in the primary, or in the single
 * process when server.workers is 0.
 */
import type { Component, Runtime } from '../core/component';
import type { CacheStage, QueueStage, RateLimitStage, ResponseFilter } from '../core/stage';
import type { Coordinator } from '../core/ipc';
import type { LoadedPolicy } from '../policy/types';
import type { Logger } from '../observe/logger';
import { QueueComponent } from '../stages/queue';
import { RateLimitComponent, RateLimitLeaseService } from '../stages/ratelimit'; // rate limiting (issue 3)
import { CacheComponent } from '../stages/cache'; // cache (issue 5)
import { CompressionComponent } from '../stages/compress'; // compression (issue 7)
import { InvalidationComponent, InvalidationFanout } from '../cache/invalidation'; // invalidation (issue 6)
import { WarmupWorker, WarmupScheduler, type PodGate } from '../cache/warmup'; // warm-up (issue 6)

export interface StageComponents {
  rateLimit: Component<RateLimitStage> | null;
  cache: Component<CacheStage> | null;
  queue: Component<QueueStage> | null;
  /** Response filters in the order the body passes them: events, compression, cache store. */
  filters: Array<Component<ResponseFilter>>;
  /** Everything above plus components with no per-request view (warm-up, profilers, ...), for close(). */
  all: Array<Component<unknown>>;
}

export function createComponents(rt: Runtime): StageComponents {
  const set: StageComponents = { rateLimit: null, cache: null, queue: null, filters: [], all: [] };
  set.rateLimit = new RateLimitComponent(rt); // rate limiting (issue 3)
  set.queue = new QueueComponent(rt); // queue (issue 4)
  set.cache = new CacheComponent(rt); // cache (issue 5): its store filter must stay the LAST filter
  set.filters.push(new CompressionComponent(rt)); // compression (issue 7): before the cache store filter
  if (set.cache instanceof CacheComponent) set.filters.push(set.cache.filter); // cache (issue 5): after compression
  if (set.cache instanceof CacheComponent) set.filters.unshift(new InvalidationComponent(rt, set.cache)); // invalidation (issue 6): events filter FIRST
  set.all.push(...[set.rateLimit, set.cache, set.queue, ...set.filters].filter((c): c is Component<any> => c !== null));
  if (set.cache instanceof CacheComponent) set.all.push(new WarmupWorker(rt, set.cache, set.queue instanceof QueueComponent ? set.queue : null)); // warm-up (issue 6)
  return set;
}

export interface PrimaryServices {
  /** Called on every valid policy (start and reload). */
  configure(next: LoadedPolicy): void;
  close(): Promise<void>;
}

/** Services that run once per pod (not per worker): lease servers, schedulers. */
export function registerPrimaryServices(coordinator: Coordinator, log: Logger, pod: PodGate | null = null): PrimaryServices[] {
  const services: PrimaryServices[] = [];
  services.push(new RateLimitLeaseService(coordinator, log)); // rate limiting (issue 3): the pod's token leases
  services.push(new InvalidationFanout(coordinator, log)); // invalidation (issue 6): fan-out to every worker
  services.push(new WarmupScheduler(coordinator, log, pod)); // warm-up (issue 6): the pod's one scheduler; gates /readyz
  return services;
}
