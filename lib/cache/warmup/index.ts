/** Scheduled cache warm-up: the worker runner and the primary's scheduler. See docs/invalidation.md. */
export { WarmupWorker, type Admit } from './runner';
export { WarmupScheduler, STARTUP_GATE, type PodGate } from './scheduler';
export { RequestCounts } from './counts';
