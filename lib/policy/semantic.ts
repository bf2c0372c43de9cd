/**
 * The checks a JSON Schema cannot express: names that must be unique, placeholders that must name params,
 * sections that need another section, cron syntax, path templates and param sources (compiled here with
 * the router's own functions, so the loader accepts exactly what the router can run).
 *
 * Runs on the raw converted YAML even when the schema check failed, so one run reports every problem;
 * each check therefore looks at the types it needs and skips what the schema check already reported.
 */
import { Cron } from 'croner';
import { compilePathTemplate, parseParamSource } from '../routes/router';
import { formatPath, type PolicyIssue, type PolicyPath } from './issues';
import { parseDuration, parseRatio, UnitError } from './units';
import { parseTrigger, TriggerError } from '../tuning/expr';
import { ACTION_PARAMS, checkParam, type Action } from '../tuning/params';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const has = (o: Obj, k: string) => Object.prototype.hasOwnProperty.call(o, k);
const PLACEHOLDER_RE = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export function placeholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER_RE)].map((m) => m[1]);
}

function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function semanticIssues(root: unknown): PolicyIssue[] {
  const out: PolicyIssue[] = [];
  if (!isObj(root)) return out;
  const issue = (path: PolicyPath, message: string, at: 'key' | 'value' = 'value') => out.push({ path, at, message });

  const hasRedis = has(root, 'redis');
  const triggers = eventTriggers(root);

  checkListens(root, issue);
  checkUpstream(root, issue);
  checkRedis(root, issue);
  const routeNames = checkRoutes(root, triggers, issue);

  const rl = root.rate_limiting;
  if (isObj(rl)) {
    if (rl.scope === 'cluster' && !hasRedis) {
      issue(['rate_limiting', 'scope'], 'rate_limiting.scope "cluster" shares counters through redis: add a `redis` section or use scope "pod"');
    }
    if (isObj(rl.per_endpoint)) {
      for (const key of Object.keys(rl.per_endpoint)) {
        if (!key.startsWith('/') && !routeNames.has(key)) {
          issue(['rate_limiting', 'per_endpoint', key],
            `per_endpoint key ${JSON.stringify(key)} is neither a path (starting with /) nor the name of a route`, 'key');
        }
      }
    }
  }

  const cache = root.cache;
  if (isObj(cache)) {
    if (has(cache, 'l2') && !hasRedis) issue(['cache', 'l2'], 'cache.l2 is stored in Redis: add a `redis` section (or remove cache.l2)', 'key');
    const warmup = cache.warmup;
    if (isObj(warmup) && Array.isArray(warmup.strategies)) {
      uniqueNames(warmup.strategies, ['cache', 'warmup', 'strategies'], 'warm-up strategy', issue);
      warmup.strategies.forEach((s, i) => {
        if (!isObj(s) || typeof s.schedule !== 'string' || !s.schedule.trim()) return;
        try {
          new Cron(s.schedule, { paused: true });
        } catch (e) {
          issue(['cache', 'warmup', 'strategies', i, 'schedule'], `invalid cron schedule ${JSON.stringify(s.schedule)}: ${errMsg(e)}`);
        }
      });
    }
  }

  const comp = root.compression;
  if (isObj(comp) && typeof comp.level === 'number') {
    const algos = typeof comp.algorithm === 'string' ? comp.algorithm.split(',').map((a) => a.trim())
      : Array.isArray(comp.algorithm) ? comp.algorithm : ['gzip'];
    // outside 0..11 the schema already said so
    if (algos.includes('gzip') && (comp.level === 0 || (comp.level > 9 && comp.level <= 11))) {
      issue(['compression', 'level'], `compression.level must be 1..9 for gzip, not ${comp.level}`);
    }
  }

  const metrics = root.metrics;
  if (isObj(metrics) && Array.isArray(metrics.buckets)) {
    const b = metrics.buckets;
    for (let i = 1; i < b.length; i++) {
      if (typeof b[i] === 'number' && typeof b[i - 1] === 'number' && !((b[i] as number) > (b[i - 1] as number))) {
        issue(['metrics', 'buckets', i], `metrics.buckets must be in ascending order without repeats: ${b[i]} follows ${b[i - 1]}`);
      }
    }
  }

  const mem = root.memory;
  if (isObj(mem)) {
    const gc = ratioOr(mem.gc_threshold, 0.8);
    const conn = ratioOr(mem.connection_threshold, 0.9);
    if (gc !== null && conn !== null && conn <= gc) {
      issue(['memory', has(mem, 'connection_threshold') ? 'connection_threshold' : 'gc_threshold'],
        `memory.connection_threshold (${Math.round(conn * 100)}%) must be above memory.gc_threshold (${Math.round(gc * 100)}%): refusing connections is the later step`);
    }
  }

  const prof = root.profiling;
  if (isObj(prof) && isObj(prof.cpu)) {
    const iv = durationOr(prof.cpu.interval, 60_000);
    const du = durationOr(prof.cpu.duration, 30_000);
    if (iv !== null && du !== null && du > iv) {
      issue(['profiling', 'cpu', has(prof.cpu, 'duration') ? 'duration' : 'interval'],
        `profiling.cpu.duration (${du} ms) must not be longer than profiling.cpu.interval (${iv} ms)`);
    }
  }

  const at = root.auto_tuning;
  if (isObj(at) && Array.isArray(at.strategies)) {
    uniqueNames(at.strategies, ['auto_tuning', 'strategies'], 'auto-tuning strategy', issue);
    checkAutoTuning(at.strategies, issue);
  }

  return out;
}

type Issue = (path: PolicyPath, message: string, at?: 'key' | 'value') => void;

/**
 * auto-tuning: each trigger is parsed by the engine's own parser, and a mistake is reported at the
 * exact character inside the string (the trailing number of the path is an index into it: positions.ts);
 * each action's params must be ones it knows, within their bounds (lib/tuning/params.ts).
 */
function checkAutoTuning(strategies: unknown[], issue: Issue): void {
  strategies.forEach((s, i) => {
    if (!isObj(s)) return;
    const base: PolicyPath = ['auto_tuning', 'strategies', i];
    // an empty or non-string trigger was reported by the schema check
    if (typeof s.trigger === 'string' && s.trigger.trim() !== '') {
      try {
        parseTrigger(s.trigger);
      } catch (e) {
        if (!(e instanceof TriggerError)) throw e;
        issue([...base, 'trigger', e.index], `auto_tuning.strategies[${i}].trigger: ${e.message} (column ${e.col} of the trigger)`);
      }
    }
    const action = s.action;
    if (typeof action !== 'string' || !Object.prototype.hasOwnProperty.call(ACTION_PARAMS, action) || !isObj(s.params)) return;
    for (const [name, raw] of Object.entries(s.params)) {
      let value: number;
      if (typeof raw === 'number') value = raw;
      else if (typeof raw === 'string') {
        try {
          value = parseRatio(raw);
        } catch {
          value = NaN; // the schema reported its form; still say if the name is unknown
        }
      } else value = NaN;
      const problem = checkParam(action as Action, name, value);
      if (problem === null) continue;
      const unknown = !Object.prototype.hasOwnProperty.call(ACTION_PARAMS[action as Action], name);
      if (unknown) issue([...base, 'params', name], `auto_tuning.strategies[${i}].params: ${problem}`, 'key');
      else if (!Number.isNaN(value)) issue([...base, 'params', name], `auto_tuning.strategies[${i}].${problem}`);
    }
  });
}

function ratioOr(v: unknown, dflt: number): number | null {
  if (v === undefined || v === null) return dflt;
  try {
    return parseRatio(v);
  } catch {
    return null; // the schema check reports it
  }
}

function durationOr(v: unknown, dflt: number): number | null {
  if (v === undefined) return dflt;
  try {
    return parseDuration(v);
  } catch (e) {
    if (e instanceof UnitError) return null;
    throw e;
  }
}

/** The events invalidation listens to, or null when there is no invalidation section (any event is fine). */
function eventTriggers(root: Obj): Set<string> | null {
  const cache = root.cache;
  if (!isObj(cache) || !has(cache, 'invalidation')) return null;
  const inv = cache.invalidation;
  const list = isObj(inv) && Array.isArray(inv.triggers) ? inv.triggers : [];
  return new Set(list.filter((t): t is string => typeof t === 'string'));
}

function uniqueNames(items: unknown[], base: PolicyPath, what: string, issue: Issue): Set<string> {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    if (!isObj(item) || typeof item.name !== 'string') return;
    const first = seen.get(item.name);
    if (first !== undefined) issue([...base, i, 'name'], `${what} name ${JSON.stringify(item.name)} is already used by ${formatPath([...base, first])}`);
    else seen.set(item.name, i);
  });
  return new Set(seen.keys());
}

const LISTEN_SHAPE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):[0-9]{1,5}$/;

export function parseHostPort(v: unknown): { host: string; port: number } | null {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= 65535 ? { host: '0.0.0.0', port: v } : null;
  if (typeof v !== 'string') return null;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):([0-9]{1,5})$/.exec(v);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function checkListens(root: Obj, issue: Issue): void {
  const server = root.server;
  if (!isObj(server)) return;
  const parsed: Record<string, { host: string; port: number } | null> = {};
  for (const k of ['listen', 'admin_listen'] as const) {
    if (!has(server, k)) continue;
    const v = server[k];
    parsed[k] = parseHostPort(v);
    // only the port can be wrong once the schema's shape check passed; other shapes were reported there
    const shapeOk = typeof v === 'string' && LISTEN_SHAPE.test(v);
    if (parsed[k] === null && shapeOk) {
      issue(['server', k], `server.${k}: port ${String(v).replace(/^.*:/, '')} is out of range 0..65535`);
    }
  }
  const listen = has(server, 'listen') ? parsed.listen : { host: '0.0.0.0', port: 15006 };
  const admin = has(server, 'admin_listen') ? parsed.admin_listen : { host: '0.0.0.0', port: 9901 };
  if (listen && admin && listen.port !== 0 && listen.port === admin.port) {
    issue(['server', has(server, 'admin_listen') ? 'admin_listen' : 'listen'],
      `server.listen and server.admin_listen both use port ${listen.port}`);
  }
}

function checkUpstream(root: Obj, issue: Issue): void {
  const up = root.upstream;
  if (!isObj(up) || typeof up.url !== 'string' || !/^https?:\/\/[^/?#\s]+\/?$/.test(up.url)) return;
  try {
    new URL(up.url);
  } catch {
    issue(['upstream', 'url'], `upstream.url ${JSON.stringify(up.url)} is not a valid URL (host or port)`);
  }
}

function checkRedis(root: Obj, issue: Issue): void {
  const r = root.redis;
  if (!isObj(r)) return;
  if (typeof r.url === 'string' && /^rediss?:\/\//.test(r.url)) {
    try {
      new URL(r.url);
    } catch {
      issue(['redis', 'url'], `redis.url ${JSON.stringify(r.url)} is not a valid URL`);
    }
  }
  if (Array.isArray(r.cluster)) {
    r.cluster.forEach((n, i) => {
      if (typeof n === 'string' && LISTEN_SHAPE.test(n) && parseHostPort(n) === null) issue(['redis', 'cluster', i], `redis.cluster: port of ${JSON.stringify(n)} is out of range`);
    });
  }
}

function checkRoutes(root: Obj, triggers: Set<string> | null, issue: Issue): Set<string> {
  const routes = root.routes;
  if (!Array.isArray(routes)) return new Set();
  const names = uniqueNames(routes, ['routes'], 'route', issue);
  routes.forEach((r, i) => {
    if (!isObj(r)) return;
    const base: PolicyPath = ['routes', i];
    const match = isObj(r.match) ? r.match : null;

    let pathVars: Set<string> | null = null;
    if (match && typeof match.path === 'string') {
      try {
        const segs = compilePathTemplate(match.path);
        pathVars = new Set(segs.filter((s): s is readonly [string] => Array.isArray(s)).map((s) => s[0]));
      } catch (e) {
        issue([...base, 'match', 'path'], `routes[${i}].match.path: ${errMsg(e)}`);
      }
    }
    if (match && isObj(match.body)) {
      for (const k of Object.keys(match.body)) {
        if (k.split('.').some((p) => p === '')) issue([...base, 'match', 'body', k], `body field ${JSON.stringify(k)} must be a dotted path like draft.id`, 'key');
      }
    }
    if (match && isObj(match.headers)) {
      for (const k of Object.keys(match.headers)) {
        if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k)) issue([...base, 'match', 'headers', k], `${JSON.stringify(k)} is not a valid header name`, 'key');
      }
    }

    const paramKinds = new Map<string, string>();
    if (isObj(r.params)) {
      for (const [name, expr] of Object.entries(r.params)) {
        if (typeof expr !== 'string') continue;
        try {
          const src = parseParamSource(expr);
          paramKinds.set(name, src.kind);
          if (src.kind === 'path') {
            if (pathVars === null && !(match && typeof match.path === 'string')) {
              issue([...base, 'params', name], `param ${name} reads path.${src.name} but the route has no match.path with {${src.name}}`);
            } else if (pathVars && !pathVars.has(src.name)) {
              issue([...base, 'params', name], `param ${name} reads path.${src.name} but match.path has no {${src.name}} segment`);
            }
          }
        } catch (e) {
          issue([...base, 'params', name], `routes[${i}].params.${name}: ${errMsg(e)}`);
        }
      }
    }

    const cache = r.cache;
    if (isObj(cache)) {
      if (typeof cache.key === 'string') {
        for (const p of placeholders(cache.key)) {
          const kind = paramKinds.get(p);
          if (kind === undefined && !(isObj(r.params) && has(r.params, p))) {
            issue([...base, 'cache', 'key'], `cache key placeholder {${p}} is not a param of route ${JSON.stringify(r.name)} (add it under params)`);
          } else if (kind === 'response') {
            issue([...base, 'cache', 'key'], `cache key placeholder {${p}} comes from the response, which is not known when the key is computed`);
          }
        }
      }
      if (isObj(cache.store_if)) {
        for (const k of Object.keys(cache.store_if)) {
          if (!/^response(\.[^.]+)+$/.test(k)) issue([...base, 'cache', 'store_if', k], `store_if field ${JSON.stringify(k)} must be a dotted path into the response, like response.success`, 'key');
        }
      }
    }

    const emitted = Array.isArray(r.emits) ? r.emits : isObj(r.emits) && Array.isArray(r.emits.events) ? r.emits.events : null;
    const emittedAt = Array.isArray(r.emits) ? [...base, 'emits'] : [...base, 'emits', 'events'];
    if (emitted !== null && triggers !== null) {
      emitted.forEach((ev, j) => {
        if (typeof ev === 'string' && /^[A-Za-z0-9_.-]+$/.test(ev) && !triggers.has(ev)) {
          issue([...emittedAt, j], `event ${JSON.stringify(ev)} is not in cache.invalidation.triggers, so it would invalidate nothing (add it there or remove it here)`);
        }
      });
    }
  });
  return names;
}
