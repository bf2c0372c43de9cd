/**
 * What a reload changes, for the log line ("the log says what changed") and for the few settings that cannot be
 * applied to a running process (listen addresses): those are reported, never half-applied.
 */
import type { Policy } from '../policy/types';

export interface PolicyChanges {
  /** Dotted paths (down to the second level) whose values differ. */
  changed: string[];
  /** Changed settings that only take effect after a restart. */
  restartNeeded: string[];
}

const RESTART_KEYS = ['server.listen', 'server.admin_listen'];

export function describeChanges(prev: Policy, next: Policy): PolicyChanges {
  const changed: string[] = [];
  const keys = new Set([...Object.keys(prev), ...Object.keys(next)]) as Set<keyof Policy>;
  for (const k of keys) {
    const a = prev[k] as unknown;
    const b = next[k] as unknown;
    if (same(a, b)) continue;
    if (isPlain(a) && isPlain(b)) {
      const sub = new Set([...Object.keys(a), ...Object.keys(b)]);
      for (const s of sub) if (!same(a[s], b[s])) changed.push(`${k}.${s}`);
    } else {
      changed.push(String(k));
    }
  }
  return { changed, restartNeeded: changed.filter((c) => RESTART_KEYS.includes(c)) };
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
