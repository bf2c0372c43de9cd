/** The events stage: which invalidation events a response raises. See docs/invalidation.md. */
export { InvalidationComponent } from './component';
export { EventsFilter, RESPONSE_PARAMS_LIMIT } from './filter';
