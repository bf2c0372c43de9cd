/** The example draft service: `startDraftService(opts)` (see server.ts) and its types. */
export { startDraftService, type DraftService, type DraftServiceOptions, type DraftServiceStats } from './server';
export { TYPE_LISTS, TOOLS } from './catalog';
