/**
 * The services that run once per pod (not per worker), in the primary or in the single process: token leases
 * for exact per-pod limits across workers, the invalidation fan-out, the warm-up scheduler.
 */
import type { Coordinator } from '../../core/ipc';
import type { PrimaryServices } from '../../core/component';
import type { Logger } from '../../observe/logger';
import { RateLimitLeaseService } from '../../stages/ratelimit';
import { InvalidationFanout } from '../../cache/invalidation';
import { WarmupScheduler, type PodGate } from '../../cache/warmup';

/** Services that run once per pod (not per worker): lease servers, schedulers. */
export function registerPrimaryServices(coordinator: Coordinator, log: Logger, pod: PodGate | null = null): PrimaryServices[] {
  const services: PrimaryServices[] = [];
  services.push(new RateLimitLeaseService(coordinator, log)); // the pod's token leases
  services.push(new InvalidationFanout(coordinator, log)); // fan-out to every worker
  services.push(new WarmupScheduler(coordinator, log, pod)); // the pod's one scheduler; gates /readyz
  return services;
}
