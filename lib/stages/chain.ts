/**
 * THE order of a request's stages, declared once. Each entry is a feature's long-lived Component; for every
 * policy it builds that policy's Stage (or null when the policy does not use the feature), and the chain of
 * the snapshot is the non-null ones in this order (lib/server/chain.ts).
 *
 * Like an Envoy filter chain, requests pass the list top to bottom and responses bottom to top:
 *
 *   request:   ratelimit -> warm-up counts -> cache lookup -> ratelimit (count: upstream) -> queue -> upstream
 *   response:  events -> compression -> cache store -> client
 *
 * so the events stage sees the upstream's own body, and the cache stores what the compressor made of it.
 */
import type { Component, Runtime } from '../core/component';
import type { Stage } from '../core/stage';
import { RateLimitComponent } from './ratelimit';
import { CacheComponent, type CacheComponentOptions } from './cache/component';
import { CompressionComponent } from './compress';
import { QueueComponent } from './queue';
import { InvalidationComponent } from './events/component';
import { WarmupWorker } from '../cache/warmup';
import { WarmupCountsComponent } from './warmup-counts';

export interface StageComponents {
  readonly rateLimit: RateLimitComponent;
  readonly warmup: WarmupCountsComponent;
  readonly cache: CacheComponent;
  readonly compression: CompressionComponent;
  readonly events: InvalidationComponent;
  readonly queue: QueueComponent;
  /** The chain, in request order. */
  readonly ordered: ReadonlyArray<Component<Stage>>;
}

export interface StageOptions {
  cache?: CacheComponentOptions;
}

export function createStageComponents(rt: Runtime, opts: StageOptions = {}): StageComponents {
  const rateLimit = new RateLimitComponent(rt);
  const cache = new CacheComponent(rt, opts.cache);
  const queue = new QueueComponent(rt);
  const warmup = new WarmupCountsComponent(new WarmupWorker(rt, cache.tiers, (priority) => queue.scheduler.acquire(priority, null)));
  const compression = new CompressionComponent(rt);
  const events = new InvalidationComponent(rt, cache.tiers);
  const ordered = [rateLimit, warmup, cache, rateLimit.upstream, compression, events, queue];
  return { rateLimit, warmup, cache, compression, events, queue, ordered };
}
