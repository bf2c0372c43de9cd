/**
 * The request mix: which requests the load generator sends and in what proportion.
 *
 * A mix file is YAML or JSON (JSON is valid YAML), either a list of requests or `{ headers, requests }`:
 *
 *   headers: { x-api-key: demo }            # sent with every request (optional)
 *   requests:
 *     - name: query_script                  # label in the report (default: "METHOD path")
 *       method: POST                        # default GET
 *       path: /query_script                 # appended to the target URL's path
 *       headers: { x-user-id: "u{int:1-50}" }
 *       body: { draft_id: "draft-{int:1-20}", force_update: false }   # object/array → JSON (content-type set)
 *       weight: 8                           # relative share, default 1
 *
 * Substitutions, in path, header values and body (after an object body is turned into JSON):
 *   {seq}          a number unique to the request in this run (0, 1, 2, … across all threads); every {seq}
 *                  in one request has the same value, so an idempotency key and a path can agree
 *   {random}       a random integer 0 .. 2^31-1
 *   {int:A-B}      a random integer A..B inclusive, uniformly
 *   {zipf:A-B}     a random integer A..B, Zipf-distributed (s = 1): A is the most frequent, A+1 half as
 *                  frequent, and so on, like the popularity of drafts or pages (at most 1,000,000 values)
 *                  For int and zipf, a lower bound written with leading zeros ({int:0001-1000}) pads
 *                  every value to its width: 0001, 0002, … 1000.
 *   {choice:a|b|c} one of the listed words, uniformly
 *   {uuid}         a random UUID v4
 * Any other brace text (JSON objects included) is left as it is.
 */
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { parse as parseYaml } from 'yaml';

/** One request of the mix as read from the file; plain data, so it can be posted to worker threads. */
export interface MixEntry {
  name: string;
  method: string;
  path: string;
  headers: [string, string][];
  body: string | null;
  weight: number;
}

export class MixError extends Error {}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const ENTRY_KEYS = new Set(['name', 'method', 'path', 'headers', 'body', 'weight']);

export function loadMixFile(file: string): MixEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new MixError(`${file}: cannot read: ${(e as Error).message}`);
  }
  return parseMix(text, file);
}

/** Parse and check a mix; errors name the file and the offending entry. */
export function parseMix(text: string, source = 'mix'): MixEntry[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new MixError(`${source}: not valid YAML/JSON: ${(e as Error).message}`);
  }
  let common: [string, string][] = [];
  let list: unknown = doc;
  if (isPlainObject(doc)) {
    for (const k of Object.keys(doc)) {
      if (k !== 'headers' && k !== 'requests') throw new MixError(`${source}: unknown key "${k}" (expected headers, requests)`);
    }
    common = headerList(doc.headers, `${source}: headers`);
    list = doc.requests;
  }
  if (!Array.isArray(list) || list.length === 0) throw new MixError(`${source}: expected a non-empty list of requests`);
  return list.map((raw, i) => parseEntry(raw, `${source}: requests[${i}]`, common));
}

function parseEntry(raw: unknown, where: string, common: [string, string][]): MixEntry {
  if (!isPlainObject(raw)) throw new MixError(`${where} must be a mapping with at least a path`);
  for (const k of Object.keys(raw)) {
    if (!ENTRY_KEYS.has(k)) throw new MixError(`${where}: unknown key "${k}" (expected ${[...ENTRY_KEYS].join(', ')})`);
  }
  const method = raw.method === undefined ? 'GET' : String(raw.method).toUpperCase();
  if (!METHODS.has(method)) throw new MixError(`${where}.method: "${String(raw.method)}" is not an HTTP method`);
  if (typeof raw.path !== 'string' || !raw.path.startsWith('/')) throw new MixError(`${where}.path must be a string starting with /`);
  const weight = raw.weight === undefined ? 1 : raw.weight;
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) throw new MixError(`${where}.weight must be a positive number`);
  const headers = [...common, ...headerList(raw.headers, `${where}.headers`)];
  let body: string | null = null;
  if (raw.body !== undefined && raw.body !== null) {
    if (typeof raw.body === 'string') body = raw.body;
    else {
      body = JSON.stringify(raw.body);
      if (!headers.some(([k]) => k === 'content-type')) headers.push(['content-type', 'application/json']);
    }
  }
  const name = raw.name === undefined ? `${method} ${raw.path}` : String(raw.name);
  for (const t of [raw.path, body ?? '', ...headers.map(([, v]) => v)]) checkTemplate(t, where);
  return { name, method, path: raw.path, headers, body, weight };
}

function headerList(raw: unknown, where: string): [string, string][] {
  if (raw === undefined || raw === null) return [];
  if (!isPlainObject(raw)) throw new MixError(`${where} must be a mapping of header name to value`);
  return Object.entries(raw).map(([k, v]) => {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw new MixError(`${where}.${k} must be a string`);
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/i.test(k)) throw new MixError(`${where}: "${k}" is not a valid header name`);
    if (/[\r\n\0]/.test(String(v))) throw new MixError(`${where}.${k}: a header value cannot hold line breaks`);
    return [k.toLowerCase(), String(v)];
  });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---- templates ---------------------------------------------------------------------------------------

const PLACEHOLDER_RE = /\{(seq|random|uuid|(int|zipf):(-?\d+)-(-?\d+)|choice:([^{}]*))\}/g;
const MAX_ZIPF_VALUES = 1_000_000;

function checkTemplate(t: string, where: string): void {
  for (const m of t.matchAll(PLACEHOLDER_RE)) {
    if (m[3] !== undefined && Number(m[3]) > Number(m[4])) throw new MixError(`${where}: {${m[1]}}: the lower bound is above the upper one`);
    if (m[2] === 'zipf' && Number(m[4]) - Number(m[3]) + 1 > MAX_ZIPF_VALUES) throw new MixError(`${where}: {${m[1]}}: at most ${MAX_ZIPF_VALUES} values`);
    if (m[5] !== undefined && m[5].length === 0) throw new MixError(`${where}: {choice:} needs at least one word`);
  }
}

/** A compiled template: literal text between generators; a constant template is just its text. */
type Part = string | ((seq: number) => string);
type Template = string | Part[];

export function compileTemplate(t: string): Template {
  const parts: Part[] = [];
  let last = 0;
  for (const m of t.matchAll(PLACEHOLDER_RE)) {
    if (m.index! > last) parts.push(t.slice(last, m.index));
    parts.push(generator(m));
    last = m.index! + m[0].length;
  }
  if (parts.length === 0) return t;
  if (last < t.length) parts.push(t.slice(last));
  return parts;
}

function generator(m: RegExpMatchArray): (seq: number) => string {
  if (m[1] === 'seq') return (seq) => String(seq);
  if (m[1] === 'random') return () => String(Math.floor(Math.random() * 2 ** 31));
  if (m[1] === 'uuid') return () => randomUUID();
  if (m[3] !== undefined) {
    const lo = Number(m[3]);
    const span = Number(m[4]) - lo + 1;
    const width = /^-?0\d/.test(m[3]) ? m[3].length : 0;
    const fmt = width === 0 ? String : (n: number) => String(n).padStart(width, '0');
    if (m[2] === 'int') return () => fmt(lo + Math.floor(Math.random() * span));
    const rank = zipfSampler(span);
    return () => fmt(lo + rank());
  }
  const words = m[5]!.split('|');
  return () => words[Math.floor(Math.random() * words.length)];
}

/** Zipf (s = 1) over ranks 0..n-1 by inverse CDF: a binary search in a table built once. */
export function zipfSampler(n: number, random: () => number = Math.random): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) cdf[k] = sum += 1 / (k + 1);
  for (let k = 0; k < n; k++) cdf[k] /= sum;
  return () => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export function render(t: Template, seq: number): string {
  if (typeof t === 'string') return t;
  let out = '';
  for (const p of t) out += typeof p === 'string' ? p : p(seq);
  return out;
}

/** A request ready to hand to undici, with flat header pairs. */
export interface RenderedRequest {
  entry: number;
  method: string;
  path: string;
  headers: string[];
  body: string | null;
}

/** Turns the mix into requests: weighted random choice, then substitutions. Built once per thread. */
export class RequestFactory {
  private readonly compiled: { method: string; path: Template; headers: [string, Template][]; body: Template | null; constHeaders: string[] | null }[];
  private readonly cumulative: number[];
  private readonly totalWeight: number;

  constructor(entries: MixEntry[], basePath = '') {
    const prefix = basePath.replace(/\/+$/, '');
    this.compiled = entries.map((e) => {
      const headers = e.headers.map(([k, v]) => [k, compileTemplate(v)] as [string, Template]);
      const constant = headers.every(([, v]) => typeof v === 'string');
      return {
        method: e.method,
        path: compileTemplate(prefix + e.path || '/'),
        headers,
        body: e.body === null ? null : compileTemplate(e.body),
        constHeaders: constant ? headers.flatMap(([k, v]) => [k, v as string]) : null,
      };
    });
    let sum = 0;
    this.cumulative = entries.map((e) => (sum += e.weight));
    this.totalWeight = sum;
  }

  /** Index of the next entry, chosen by weight. */
  pick(): number {
    if (this.cumulative.length === 1) return 0;
    const x = Math.random() * this.totalWeight;
    const c = this.cumulative;
    let i = 0;
    while (i < c.length - 1 && x >= c[i]) i++;
    return i;
  }

  make(seq: number): RenderedRequest {
    const entry = this.pick();
    const c = this.compiled[entry];
    return {
      entry,
      method: c.method,
      path: render(c.path, seq),
      headers: c.constHeaders ?? c.headers.flatMap(([k, v]) => [k, render(v, seq)]),
      body: c.body === null ? null : render(c.body, seq),
    };
  }
}

/** The mix used when no file is given: GET the target URL itself (its path and query). */
export function defaultMix(target: URL): MixEntry[] {
  const path = target.pathname + target.search;
  return [{ name: `GET ${path}`, method: 'GET', path, headers: [], body: null, weight: 1 }];
}
