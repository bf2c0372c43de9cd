/**
 * Invalidation patterns: `cache.invalidation.patterns` compiled once per policy. A pattern is a key glob with
 * `{param}` placeholders (`draft:{draft_id}:*`); an event (or a stored entry, for cascades) fills the patterns
 * whose every placeholder it has a value for. Values are percent-encoded exactly as keys encode them
 * (lib/cache/keys.ts encodeKeyParam), so a value can never add a glob character or a `:` segment: the event
 * `draft_id=*` becomes `draft:%2A:*`, which matches only the key of that (odd) draft id.
 */
import type { InvalidationPolicy } from '../../policy/types';
import { KeyTemplate, patternMatcher } from '../keys';

export class InvalidationRules {
  readonly triggers: ReadonlySet<string>;
  private readonly templates: readonly KeyTemplate[];
  readonly cascade: boolean;
  readonly async: boolean;

  constructor(p: InvalidationPolicy) {
    this.triggers = new Set(p.triggers);
    this.templates = p.patterns.map((s) => new KeyTemplate(s));
    this.cascade = p.cascade;
    this.async = p.async;
  }

  /** Every pattern the params fill completely (patterns with an unknown placeholder are skipped). */
  fill(params: Readonly<Record<string, string>>): string[] {
    const out: string[] = [];
    for (const t of this.templates) {
      const s = t.fill(params);
      if (s !== null && !out.includes(s)) out.push(s);
    }
    return out;
  }
}

/**
 * Several globs as one predicate on keys (whole key or its readable part, like purge). Invalidation scans every
 * L1 key, so each glob is guarded by its literal prefix (`draft:42:` of `draft:42:*`): most keys are turned
 * away by one startsWith, and only the rest pay for the regular expression.
 */
export function matcherOf(patterns: readonly string[]): (key: string) => boolean {
  const ms = patterns.map((p) => {
    const glob = p.search(/[*?[\\]/);
    const literal = glob === -1 ? p : p.slice(0, glob);
    const m = patternMatcher(p);
    return (key: string) => key.startsWith(literal) && m(key);
  });
  if (ms.length === 1) return ms[0];
  return (key) => {
    for (const m of ms) if (m(key)) return true;
    return false;
  };
}

/**
 * The `X-Invalidate` response header an upstream may send to invalidate data it changed behind the sidecar's
 * back (background saves):
 *
 *   X-Invalidate: draft_updated; draft_id=42; user_id=7, template_modified; template_id=3
 *
 * Events are separated by commas; each is an event name then `; name=value` params. Values may be
 * percent-encoded (`%2C` for a comma) or double-quoted. Malformed parts are skipped.
 */
export function parseInvalidateHeader(value: string | string[]): Array<{ event: string; params: Record<string, string> }> {
  const out: Array<{ event: string; params: Record<string, string> }> = [];
  const all = Array.isArray(value) ? value.join(',') : value;
  for (const part of all.split(',')) {
    const fields = part.split(';').map((s) => s.trim());
    const event = fields[0];
    if (!event || !/^[A-Za-z0-9_.:-]+$/.test(event)) continue;
    const params: Record<string, string> = {};
    for (const f of fields.slice(1)) {
      const eq = f.indexOf('=');
      if (eq <= 0) continue;
      const name = f.slice(0, eq).trim();
      let v = f.slice(eq + 1).trim();
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      try {
        v = decodeURIComponent(v);
      } catch { /* keep it raw */ }
      if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && v !== '') params[name] = v;
    }
    out.push({ event, params });
  }
  return out;
}

/** Validate an admin/pub-sub supplied params object: string (or number/boolean) values only. */
export function cleanParams(raw: unknown): Record<string, string> | null {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v === 'string') out[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else return null;
  }
  return out;
}
