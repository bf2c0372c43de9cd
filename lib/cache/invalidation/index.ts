/**
 * Cache invalidation: the worker's engine and the primary's fan-out (the events stage is lib/stages/events/).
 * See engine.ts for the flow and docs/invalidation.md for the operator's view.
 */
export { Invalidator } from './engine';
export { InvalidationFanout } from './fanout';
export { parseInvalidateHeader } from './patterns';
