/**
 * The one request matcher every stage asks "which route is this, and what are its params".
 *
 * Routes are compiled once per policy: path templates become segment arrays, param sources become
 * accessor paths. Matching is two-phase so bodies are only read when needed:
 *   1. needsBody(method, path): does any route that could match by method and path look at the body?
 *   2. match(...): the first route (policy order) whose every condition holds.
 */
import type { JsonScalar, Policy, Priority, RoutePolicy } from '../policy/types';

export type ParamSource =
  | { readonly kind: 'path' | 'query' | 'header'; readonly name: string }
  | { readonly kind: 'body' | 'response'; readonly path: readonly string[] }
  | { readonly kind: 'identity' };

export interface CompiledRoute {
  readonly index: number;
  readonly name: string;
  readonly policy: RoutePolicy;
  readonly priority: Priority | null;
  /** The route looks at JSON body fields (match or params). */
  readonly needsBody: boolean;
  readonly params: ReadonlyArray<readonly [string, ParamSource]>;
  /** Params that come from the upstream response (only for events). */
  readonly responseParams: ReadonlyArray<readonly [string, readonly string[]]>;
  /** Dotted body paths the route matched on (part of cache variant keys). */
  readonly bodyMatchPaths: ReadonlyArray<readonly string[]>;
  readonly usesIdentity: boolean;
}

interface CompiledMatcher {
  readonly route: CompiledRoute;
  readonly method: string | null;
  /** null: any path. Otherwise literal segments, '{name}' captures as [name], '*' as the rest. */
  readonly segments: ReadonlyArray<string | readonly [string] | '*'> | null;
  readonly query: ReadonlyArray<readonly [string, string]> | null;
  readonly headers: ReadonlyArray<readonly [string, string]> | null;
  readonly body: ReadonlyArray<readonly [readonly string[], JsonScalar]> | null;
  readonly jsonrpc: string | null;
}

export interface MatchInput {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body when it was read, else undefined. */
  json: unknown;
}

export interface RouteMatch {
  readonly route: CompiledRoute;
  readonly params: Record<string, string>;
}

export function parseParamSource(expr: string): ParamSource {
  if (expr === 'identity') return { kind: 'identity' };
  const dot = expr.indexOf('.');
  const kind = dot === -1 ? expr : expr.slice(0, dot);
  const rest = dot === -1 ? '' : expr.slice(dot + 1);
  switch (kind) {
    case 'path':
    case 'query':
      if (rest) return { kind, name: rest };
      break;
    case 'header':
      if (rest) return { kind, name: rest.toLowerCase() };
      break;
    case 'body':
    case 'response':
      if (rest) return { kind, path: rest.split('.') };
      break;
  }
  throw new Error(`param source "${expr}" must be path.X, query.X, header.X, body.a.b, response.a.b or identity`);
}

/** Split a path template into matcher segments; throws on a malformed template. */
export function compilePathTemplate(template: string): Array<string | readonly [string] | '*'> {
  if (!template.startsWith('/')) throw new Error(`path "${template}" must start with /`);
  const parts = template.split('/').slice(1);
  return parts.map((p, i) => {
    if (p === '*') {
      if (i !== parts.length - 1) throw new Error(`"*" may only end a path template ("${template}")`);
      return '*' as const;
    }
    const m = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(p);
    if (m) return [m[1]] as const;
    if (p.includes('{') || p.includes('}')) throw new Error(`path segment "${p}" must be a literal or a whole {name}`);
    return p;
  });
}

export function getPath(obj: unknown, path: readonly string[]): unknown {
  let cur = obj;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function scalarToParam(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

export class Router {
  private readonly matchers: CompiledMatcher[];
  readonly routes: readonly CompiledRoute[];
  private readonly scratch: MatchScratch = { pathSegs: null, query: null, captures: null };
  /** True when some route needs the body: lets the pass-through path skip the check entirely. */
  readonly anyBody: boolean;

  constructor(routes: readonly RoutePolicy[]) {
    this.matchers = routes.map((r, index) => compileRoute(r, index));
    this.routes = this.matchers.map((m) => m.route);
    this.anyBody = this.routes.some((r) => r.needsBody);
  }

  get empty(): boolean {
    return this.matchers.length === 0;
  }

  /** Whether reading the body could change which route matches or its params. */
  needsBody(method: string, path: string): boolean {
    if (!this.anyBody) return false;
    let pathSegs: string[] | null = null;
    for (const m of this.matchers) {
      if (m.method !== null && !methodMatches(m.method, method)) continue;
      if (m.segments !== null) {
        pathSegs ??= path.split('/').slice(1);
        if (!matchSegments(m.segments, pathSegs, null)) continue;
      }
      if (m.route.needsBody) return true;
      // a route that needs no body and matches method+path may still fail on query/headers: keep looking
      if (m.query === null && m.headers === null) return false;
    }
    return false;
  }

  match(input: MatchInput): RouteMatch | null {
    // one scratch per router, reset per call: match() is synchronous, so no two calls share it
    const scratch = this.scratch;
    scratch.pathSegs = null;
    scratch.query = null;
    for (const m of this.matchers) {
      if (check(m, input, scratch) === MATCHED) return { route: m.route, params: this.resolveParams(m.route, input, scratch.captures, scratch.query) };
    }
    return null;
  }

  /**
   * Every route tried in order, with the condition that ruled each out, up to the first match (and its params):
   * what `explain` prints. The same check as match(), so the answer is the proxy's.
   */
  explain(input: MatchInput): { tried: RouteVerdict[]; match: RouteMatch | null } {
    const scratch: MatchScratch = { pathSegs: null, query: null, captures: null };
    const tried: RouteVerdict[] = [];
    for (const m of this.matchers) {
      const failed = check(m, input, scratch);
      if (failed === MATCHED) {
        tried.push({ route: m.route.name, matched: true, why: 'every condition holds' });
        return { tried, match: { route: m.route, params: this.resolveParams(m.route, input, scratch.captures, scratch.query) } };
      }
      tried.push({ route: m.route.name, matched: false, why: describeFailure(m, failed, input) });
    }
    return { tried, match: null };
  }

  private resolveParams(
    route: CompiledRoute,
    input: MatchInput,
    captures: Record<string, string> | null,
    query: URLSearchParams | null,
  ): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, src] of route.params) {
      let v: string | undefined;
      switch (src.kind) {
        case 'path':
          v = captures?.[src.name];
          if (v !== undefined) {
            try { v = decodeURIComponent(v); } catch { /* keep raw */ }
          }
          break;
        case 'query':
          query ??= new URLSearchParams(input.query);
          v = query.get(src.name) ?? undefined;
          break;
        case 'header': {
          const h = input.headers[src.name];
          v = Array.isArray(h) ? h[0] : h;
          break;
        }
        case 'body':
          v = scalarToParam(getPath(input.json, src.path));
          break;
        default:
          break; // identity and response params are filled later
      }
      if (v !== undefined) out[name] = v;
    }
    return out;
  }
}

interface MatchScratch {
  pathSegs: string[] | null;
  query: URLSearchParams | null;
  captures: Record<string, string> | null;
}

/** One route's outcome for a request, as `explain` shows it. */
export interface RouteVerdict {
  readonly route: string;
  readonly matched: boolean;
  readonly why: string;
}

const MATCHED = 0;
const FAIL_METHOD = 1;
const FAIL_PATH = 2;
const FAIL_QUERY = 3;
const FAIL_HEADERS = 4;
const FAIL_JSONRPC = 5;
const FAIL_BODY = 6;

/** The first condition of `m` the request fails (FAIL_*), or MATCHED. Numbers, not strings: it runs per request. */
function check(m: CompiledMatcher, input: MatchInput, s: MatchScratch): number {
  if (m.method !== null && !methodMatches(m.method, input.method)) return FAIL_METHOD;
  s.captures = null;
  if (m.segments !== null) {
    s.pathSegs ??= input.path.split('/').slice(1);
    s.captures = {};
    if (!matchSegments(m.segments, s.pathSegs, s.captures)) return FAIL_PATH;
  }
  if (m.query !== null) {
    const q = (s.query ??= new URLSearchParams(input.query));
    if (!m.query.every(([k, v]) => (v === '*' ? q.has(k) : q.get(k) === v))) return FAIL_QUERY;
  }
  if (m.headers !== null && !m.headers.every(([k, v]) => headerMatches(input.headers[k], v))) return FAIL_HEADERS;
  if (m.jsonrpc !== null && getPath(input.json, ['method']) !== m.jsonrpc) return FAIL_JSONRPC;
  if (m.body !== null && !m.body.every(([p, v]) => getPath(input.json, p) === v)) return FAIL_BODY;
  return MATCHED;
}

/** Words for the condition that failed, with what the request had instead. */
function describeFailure(m: CompiledMatcher, failed: number, input: MatchInput): string {
  const r = m.route.policy.match;
  const shown = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));
  switch (failed) {
    case FAIL_METHOD: return `method: wants ${m.method}, the request is ${input.method}`;
    case FAIL_PATH: return `path: wants ${r.path}, the request is ${input.path}`;
    case FAIL_QUERY: {
      const q = new URLSearchParams(input.query);
      const bad = m.query!.find(([k, v]) => !(v === '*' ? q.has(k) : q.get(k) === v))!;
      return `query: wants ${bad[0]}=${bad[1] === '*' ? '(any value)' : bad[1]}, the request has ${q.has(bad[0]) ? `${bad[0]}=${q.get(bad[0])}` : `no ${bad[0]}`}`;
    }
    case FAIL_HEADERS: {
      const bad = m.headers!.find(([k, v]) => !headerMatches(input.headers[k], v))!;
      return `header: wants ${bad[0]}: ${bad[1] === '*' ? '(any value)' : bad[1]}, the request has ${shown(input.headers[bad[0]])}`;
    }
    case FAIL_JSONRPC:
      return input.json === undefined
        ? `JSON-RPC method: wants ${m.jsonrpc}, the body is not JSON (or was not read)`
        : `JSON-RPC method: wants ${m.jsonrpc}, the body has ${shown(getPath(input.json, ['method']))}`;
    case FAIL_BODY: {
      const bad = m.body!.find(([p, v]) => getPath(input.json, p) !== v)!;
      return `body: wants ${bad[0].join('.')} = ${JSON.stringify(bad[1])}, the body has ${input.json === undefined ? 'no JSON' : shown(getPath(input.json, bad[0]))}`;
    }
    default: return 'matched';
  }
}

/** The rate_limiting.per_endpoint keys that are paths: they double as metric labels for unrouted requests. */
export function endpointPathsOf(policy: Policy): ReadonlySet<string> {
  return new Set(Object.keys(policy.rate_limiting?.per_endpoint ?? {}).filter((k) => k.startsWith('/')));
}

/** The `endpoint` metric label: the route's name, else the path when it is a per-endpoint key, else "other". */
export function endpointLabel(route: CompiledRoute | null, path: string, endpointPaths: ReadonlySet<string>): string {
  if (route !== null) return route.name;
  return endpointPaths.has(path) ? path : 'other';
}

/** The queue class of a request: its route's priority, else the policy's default_priority, else medium. */
export function queueClassOf(route: CompiledRoute | null, policy: Policy): Priority {
  return route?.priority ?? policy.queues?.default_priority ?? 'medium';
}

/** HEAD is GET without the body (RFC 9110 §9.3.2): a GET route also matches HEAD, so HEAD can use its cache. */
function methodMatches(want: string, actual: string): boolean {
  return want === actual || (want === 'GET' && actual === 'HEAD');
}

function headerMatches(actual: string | string[] | undefined, want: string): boolean {
  if (actual === undefined) return false;
  if (want === '*') return true;
  return Array.isArray(actual) ? actual.includes(want) : actual === want;
}

function matchSegments(
  segs: ReadonlyArray<string | readonly [string] | '*'>,
  path: string[],
  captures: Record<string, string> | null,
): boolean {
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    if (s === '*') return true;
    const p = path[i];
    if (p === undefined) return false;
    if (typeof s === 'string') {
      if (s !== p) return false;
    } else {
      if (p === '') return false;
      if (captures) captures[s[0]] = p;
    }
  }
  return segs.length === path.length;
}

function compileRoute(r: RoutePolicy, index: number): CompiledMatcher {
  const params = Object.entries(r.params).map(([k, expr]) => [k, parseParamSource(expr)] as const);
  const body = r.match.body ? Object.entries(r.match.body).map(([k, v]) => [k.split('.'), v] as const) : null;
  const route: CompiledRoute = {
    index,
    name: r.name,
    policy: r,
    priority: r.priority,
    // a cached route that is not GET/HEAD keys on its body (key-shape.ts), so it needs the body too
    needsBody: body !== null || r.match.jsonrpc_method !== null || params.some(([, s]) => s.kind === 'body')
      || (r.cache !== null && r.match.method !== 'GET' && r.match.method !== 'HEAD'),
    params: params.filter(([, s]) => s.kind !== 'response'),
    responseParams: params.flatMap(([k, s]) => (s.kind === 'response' ? [[k, s.path] as const] : [])),
    bodyMatchPaths: body ? body.map(([p]) => p) : [],
    usesIdentity: params.some(([, s]) => s.kind === 'identity'),
  };
  return {
    route,
    method: r.match.method,
    segments: r.match.path === null ? null : compilePathTemplate(r.match.path),
    query: r.match.query ? Object.entries(r.match.query) : null,
    headers: r.match.headers ? Object.entries(r.match.headers).map(([k, v]) => [k.toLowerCase(), v] as const) : null,
    body,
    jsonrpc: r.match.jsonrpc_method,
  };
}
