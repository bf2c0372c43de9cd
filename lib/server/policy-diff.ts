/**
 * What a reload changes, for the log line ("the log says what changed"), and the few settings that a running
 * process cannot take on: those are reported as needing a restart and are never half-applied.
 *
 * Settings bound when the process starts:
 *  - server.listen, server.admin_listen: the sockets are bound once (re-binding would drop connections);
 *  - server.workers: the number of forked processes;
 *  - upstream.url's scheme (http: / https:): the connection pool is built for one (a new host or port is
 *    applied: new requests go there, requests in flight finish where they were sent);
 *  - queues.worker_threads: libuv reads UV_THREADPOOL_SIZE once, before its pool is first used.
 * A reload keeps the running values of these in the EFFECTIVE policy (what the workers get and /policy shows)
 * and lists every difference from the file in `pending`, until a restart (or the file going back) clears it.
 */
import type { HostPort, Policy, UpstreamPolicy } from '../policy/types';
import { redactSecrets } from '../util/redact';

/** The start-only settings of the running process. */
export interface RunningSettings {
  readonly listen: HostPort;
  readonly admin_listen: HostPort;
  readonly workers: number;
  readonly upstream: Pick<UpstreamPolicy, 'url' | 'protocol' | 'host' | 'port'>;
  /** libuv thread pool size in force (queues.worker_threads at start, else UV_THREADPOOL_SIZE, else 4). */
  readonly worker_threads: number;
}

/** A setting whose value in the file differs from the one the process runs with. */
export interface PendingRestart {
  readonly key: string;
  readonly running: unknown;
  readonly file: unknown;
}

export interface EffectivePolicy {
  readonly policy: Policy;
  readonly pending: readonly PendingRestart[];
}

export function runningSettings(boot: Policy, env: NodeJS.ProcessEnv = process.env): RunningSettings {
  const { url, protocol, host, port } = boot.upstream;
  return {
    listen: boot.server.listen,
    admin_listen: boot.server.admin_listen,
    workers: boot.server.workers,
    upstream: { url, protocol, host, port },
    worker_threads: boot.queues?.worker_threads ?? (Number(env.UV_THREADPOOL_SIZE) || 4),
  };
}

/** The file's policy with the start-only settings held at their running values, and what differs. */
export function effectivePolicy(running: RunningSettings, file: Policy): EffectivePolicy {
  const pending: PendingRestart[] = [];
  const hold = <T>(key: string, runningValue: T, fileValue: T): T => {
    if (same(runningValue, fileValue)) return fileValue;
    pending.push({ key, running: runningValue, file: fileValue });
    return runningValue;
  };
  const server = {
    ...file.server,
    listen: hold('server.listen', running.listen, file.server.listen),
    admin_listen: hold('server.admin_listen', running.admin_listen, file.server.admin_listen),
    workers: hold('server.workers', running.workers, file.server.workers),
  };
  let upstream = file.upstream;
  if (file.upstream.protocol !== running.upstream.protocol) {
    pending.push({ key: 'upstream.url', running: running.upstream.url, file: file.upstream.url });
    upstream = { ...file.upstream, ...running.upstream };
  }
  const queues = file.queues === null ? null
    : { ...file.queues, worker_threads: hold('queues.worker_threads', running.worker_threads, file.queues.worker_threads) };
  return { policy: { ...file, server, upstream, queues }, pending };
}

export interface PolicyChanges {
  /** Dotted paths (down to the second level; routes by name) whose values differ. */
  changed: string[];
}

/** What differs between two (effective) policies, for the reload log line. */
export function describeChanges(prev: Policy, next: Policy): PolicyChanges {
  const changed: string[] = [];
  const keys = new Set([...Object.keys(prev), ...Object.keys(next)]) as Set<keyof Policy>;
  for (const k of keys) {
    const a = prev[k] as unknown;
    const b = next[k] as unknown;
    if (same(a, b)) continue;
    if (k === 'routes') {
      changed.push(...routeChanges(prev.routes, next.routes));
    } else if (isPlain(a) && isPlain(b)) {
      const sub = new Set([...Object.keys(a), ...Object.keys(b)]);
      for (const s of sub) if (!same(a[s], b[s])) changed.push(`${k}.${s}`);
    } else if (a === null || a === undefined) {
      changed.push(`${k} (added)`);
    } else if (b === null || b === undefined) {
      changed.push(`${k} (removed)`);
    } else {
      changed.push(String(k));
    }
  }
  return { changed };
}

/** One changed setting with its values before and after (secrets redacted), for people to read. */
export interface ChangeDetail {
  readonly path: string;
  readonly before: unknown;
  readonly after: unknown;
}

/** The values behind describeChanges' paths: `routes.X` by route name, `routes (order)` as the name lists. */
export function changeDetails(prev: Policy, next: Policy, changed: readonly string[]): ChangeDetail[] {
  const a = redactSecrets(prev) as unknown as Record<string, unknown>;
  const b = redactSecrets(next) as unknown as Record<string, unknown>;
  const at = (root: Record<string, unknown>, path: string): unknown => {
    if (path === 'routes (order)') return (root.routes as Array<{ name: string }>).map((r) => r.name);
    const [top, ...rest] = path.replace(/ \((added|removed)\)$/, '').split('.');
    let cur: unknown = root[top];
    if (top === 'routes' && rest.length > 0) return (cur as Array<{ name: string }>).find((r) => r.name === rest.join('.')) ?? null;
    for (const k of rest) cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[k] : undefined;
    return cur ?? null;
  };
  return changed.map((path) => ({ path, before: at(a, path), after: at(b, path) }));
}

/** Routes by name: added, removed, changed, and "routes (order)" when only their order moved (first match wins). */
function routeChanges(prev: Policy['routes'], next: Policy['routes']): string[] {
  const out: string[] = [];
  const before = new Map(prev.map((r) => [r.name, r]));
  const after = new Map(next.map((r) => [r.name, r]));
  for (const [name, r] of after) {
    const old = before.get(name);
    if (!old) out.push(`routes.${name} (added)`);
    else if (!same(old, r)) out.push(`routes.${name}`);
  }
  for (const name of before.keys()) if (!after.has(name)) out.push(`routes.${name} (removed)`);
  if (out.length === 0) out.push('routes (order)');
  return out;
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
