/** The rate-limit stage: see component.ts (per-request checks), service.ts (the pod's lease server). */
export { RateLimitComponent, RateLimitView, endpointKeyFor, type RateLimitOptions } from './component';
export { RateLimitLeaseService } from './service';
export { sendRateLimited } from './respond';
export type { RateLimitDecision } from './decision';
export { TokenBucket } from './token-bucket';
export { SlidingWindow } from './sliding-window';
export { ManualClock, monotonicClock, type Clock } from './clock';
export { compileLimits, type CompiledLimits, type LimitSpec } from './limits';
