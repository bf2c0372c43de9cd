/**
 * Cache-Control (and the targeted fields that share its syntax, RFC 9213) parsed into directives.
 */

export type Headers = Record<string, string | string[] | undefined>;

/** Parsed Cache-Control: directive name (lower-case) -> argument ('' when none). First occurrence wins. */
export type Directives = Map<string, string>;

export function parseCacheControl(value: string | string[] | undefined): Directives {
  const out: Directives = new Map();
  if (value === undefined) return out;
  const s = Array.isArray(value) ? value.join(',') : value;
  // directive = token [ "=" ( token / quoted-string ) ], comma separated; quoted strings may hold commas
  const re = /\s*([^,=\s]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,]*))?\s*(?:,|$)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    if (m[0] === '') { re.lastIndex++; if (re.lastIndex > s.length) break; continue; }
    const name = m[1].toLowerCase();
    let arg = (m[2] ?? '').trim();
    if (arg.startsWith('"') && arg.endsWith('"') && arg.length >= 2) arg = arg.slice(1, -1).replace(/\\(.)/g, '$1');
    if (!out.has(name)) out.set(name, arg);
  }
  return out;
}

const MAX_DELTA = 2 ** 31;

/** delta-seconds in ms; null when absent; 0 when present but malformed (RFC 9111 §4.2.1: treat as stale). */
export function deltaSeconds(d: Directives, name: string): number | null {
  const v = d.get(name);
  if (v === undefined) return null;
  if (!/^\d+$/.test(v)) return 0;
  return Math.min(Number(v), MAX_DELTA) * 1000;
}

