/**
 * Token-guarded admin endpoints whose work happens where the state lives: in a worker (or the single process).
 * The primary receives the HTTP call and asks one worker over IPC; that worker acts on the shared tiers (L2, and
 * L3 where shared) and broadcasts to the other workers for their own L1.
 *
 *   POST /admin/purge {"pattern": "draft:42:*"}   -> {"purged": N}
 *   POST /admin/invalidate {"event": "draft_updated", "params": {"draft_id": "42"}}
 *                                                  -> {"event", "patterns": [...], "removed": {l1, l2, l3}}
 */
import type { AdminServer } from './admin';
import type { Coordinator } from '../core/ipc';
import type { ReplyOf, RequestOf } from '../core/topics';
import type { ProxyWorker } from './worker';

/** Worker side: what a worker answers to the primary's admin calls. */
export function handleWorkerAdmin(coordinator: Coordinator, worker: ProxyWorker): void {
  coordinator.handle('admin:purge', async (payload) => {
    return { purged: await worker.components.cache.purge(payload.pattern) };
  });
}

/** Primary side: the HTTP endpoints. `local` is set in single-process mode. */
export function registerAdminActions(admin: AdminServer, coordinator: Coordinator, local: () => ProxyWorker | null): void {
  const callOneWorker = async <K extends 'admin:purge' | 'admin:invalidate'>(topic: K, payload: RequestOf<K>): Promise<ReplyOf<K>> => {
    if (local() || coordinator.role !== 'primary') return coordinator.request(topic, payload);
    const ids = coordinator.workerIds();
    if (ids.length === 0) throw new Error('no worker is running');
    return coordinator.requestWorker(ids[0], topic, payload, 30_000);
  };

  admin.route('POST', '/admin/purge', async ({ body }) => {
    const pattern = (body as { pattern?: unknown } | undefined)?.pattern;
    if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > 512) {
      return { status: 400, body: { error: 'body must be {"pattern": "<glob on cache keys>"}' } };
    }
    try {
      return { status: 200, body: await callOneWorker('admin:purge', { pattern }) };
    } catch (e) {
      return { status: 409, body: { error: (e as Error).message } };
    }
  }, { guarded: true });

  // invalidation: the worker's handler is registered by lib/cache/invalidation (admin:invalidate)
  admin.route('POST', '/admin/invalidate', async ({ body }) => {
    const b = body as { event?: unknown; params?: unknown } | undefined;
    if (typeof b?.event !== 'string' || b.event.length === 0 || b.event.length > 256 || (b.params !== undefined && (typeof b.params !== 'object' || b.params === null || Array.isArray(b.params)))) {
      return { status: 400, body: { error: 'body must be {"event": "<name>", "params": {"name": "value", ...}}' } };
    }
    try {
      return { status: 200, body: await callOneWorker('admin:invalidate', { event: b.event, params: b.params ?? {} }) };
    } catch (e) {
      return { status: 409, body: { error: (e as Error).message } };
    }
  }, { guarded: true });
}
