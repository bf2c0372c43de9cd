/** Scheduled cache warm-up (issue 6): the worker runner and the primary's scheduler. See docs/invalidation.md. */
export { WarmupWorker } from './runner';
export { WarmupScheduler, STARTUP_GATE, type PodGate } from './scheduler';
export { RequestCounts } from './counts';
