/**
 * An RFC 6902 JSON Patch that turns one JSON document into another: what a mutating admission webhook answers.
 * Objects are diffed key by key; arrays of the same length element by element; any other change replaces
 * the value (a whole array when its length changed, which stays correct whatever other webhooks did).
 */
export interface PatchOp {
  op: 'add' | 'remove' | 'replace';
  path: string;
  value?: unknown;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 6901: `~` -> `~0`, `/` -> `~1` (annotation keys such as prometheus.io/scrape have slashes). */
export const pointerToken = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');

export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

export function diffPatch(from: unknown, to: unknown, path = '', ops: PatchOp[] = []): PatchOp[] {
  if (jsonEqual(from, to)) return ops;
  if (isObj(from) && isObj(to)) {
    for (const k of Object.keys(from)) if (!(k in to)) ops.push({ op: 'remove', path: `${path}/${pointerToken(k)}` });
    for (const [k, v] of Object.entries(to)) {
      const p = `${path}/${pointerToken(k)}`;
      if (!(k in from)) ops.push({ op: 'add', path: p, value: v });
      else diffPatch(from[k], v, p, ops);
    }
    return ops;
  }
  if (Array.isArray(from) && Array.isArray(to) && from.length === to.length) {
    to.forEach((v, i) => diffPatch(from[i], v, `${path}/${i}`, ops));
    return ops;
  }
  ops.push({ op: 'replace', path, value: to });
  return ops;
}
