/**
 * Loads a policy file: YAML -> schema check -> semantic checks -> normalised, deep-frozen Policy.
 *
 * Every problem is reported, each positioned at the offending key or value (`FILE:LINE:COL: message`), and
 * bad input never throws: a file that cannot be read, is empty, too big, not YAML, or breaks any rule comes
 * back as `{ ok: false, errors }`.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isAlias, isCollection, isScalar, parseDocument, visit, type Document } from 'yaml';
import { normalize } from './defaults';
import type { PolicyIssue } from './issues';
import { LineIndex, offsetOf } from './positions';
import { explainIndentation } from './indentation';
import { POLICY_SCHEMA } from './schema';
import { semanticIssues } from './semantic';
import type { LoadedPolicy, Policy, PolicyError } from './types';
import { formatSize } from './units';
import { validateAgainstSchema } from './validate-schema';

export type PolicyResult = { ok: true; loaded: LoadedPolicy } | { ok: false; errors: PolicyError[] };

/** Bigger than any sane policy: refused rather than parsed (a policy is read on every reload). */
export const MAX_POLICY_BYTES = 1024 * 1024;
/** YAML aliases expand; bound them so a small file cannot become a huge value ("billion laughs"). */
const MAX_ALIAS_COUNT = 100;

/** First 12 hex digits of the sha256 of the file's content: the policy's version everywhere. */
export function policyVersion(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

export function parsePolicy(text: string, file: string): PolicyResult {
  try {
    return parseUnsafe(text, file);
  } catch (e) {
    // a bug of ours must still come out as a positioned error, never as a crash of `validate` or a reload
    return fail(file, 1, 1, `internal error while checking the policy: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export function loadPolicyFile(file: string): PolicyResult {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    return fail(file, 1, 1, `cannot read policy: ${errnoMessage(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) return fail(file, 1, 1, 'cannot read policy: it is a directory');
    if (st.size > MAX_POLICY_BYTES) return tooBig(file, st.size);
    // read at most one byte over the limit, so a file that grows while we read is still refused
    let buf = Buffer.allocUnsafe(st.size + 1);
    let len = 0;
    for (;;) {
      if (len === buf.length) {
        if (len > MAX_POLICY_BYTES) return tooBig(file, len);
        const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, MAX_POLICY_BYTES + 1));
        buf.copy(bigger, 0, 0, len);
        buf = bigger;
      }
      const n = readSync(fd, buf, len, buf.length - len, null);
      if (n === 0) break;
      len += n;
    }
    return parsePolicy(buf.subarray(0, len).toString('utf8'), file);
  } catch (e) {
    return fail(file, 1, 1, `cannot read policy: ${errnoMessage(e)}`);
  } finally {
    closeSync(fd);
  }
}

function tooBig(file: string, bytes: number): PolicyResult {
  return fail(file, 1, 1, `policy is too large (${formatSize(bytes)}; the limit is ${formatSize(MAX_POLICY_BYTES)})`);
}

function errnoMessage(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err && err.code === 'ENOENT') return 'no such file';
  if (err && err.code === 'EACCES') return 'permission denied';
  if (err && err.code === 'EISDIR') return 'it is a directory';
  return err instanceof Error ? err.message : String(e);
}

function fail(file: string, line: number, col: number, message: string): PolicyResult {
  return { ok: false, errors: [{ file, line, col, message }] };
}

function parseUnsafe(text: string, file: string): PolicyResult {
  if (Buffer.byteLength(text, 'utf8') > MAX_POLICY_BYTES) return tooBig(file, Buffer.byteLength(text, 'utf8'));
  const lines = new LineIndex(text);
  const positioned = (offset: number, message: string): PolicyError => ({ file, ...lines.at(offset), message });

  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, strict: true, keepSourceTokens: false });
  // yaml's own problems first: if the text is not well-formed YAML, its structure cannot be trusted
  const yamlErrors = [...doc.errors, ...doc.warnings].map((e) =>
    positioned(e.pos[0], e.code === 'MULTIPLE_DOCS' ? 'a policy is one YAML document: remove the second `---` and what follows' : yamlMessage(e.message)));
  yamlErrors.push(...structuralYamlIssues(doc, positioned));
  if (yamlErrors.length > 0) return { ok: false, errors: trimCascade(sortErrors(withIndentationExplained(text, file, yamlErrors))) };

  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    return fail(file, 1, 1, 'policy is empty: `upstream.url` is required');
  }

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    return fail(file, 1, 1, `policy cannot be read: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    const start = doc.contents?.range?.[0] ?? 0;
    return { ok: false, errors: [positioned(start, 'policy must be a mapping of sections (server:, upstream:, ...)')] };
  }

  const issues: PolicyIssue[] = [...validateAgainstSchema(POLICY_SCHEMA, raw), ...semanticIssues(raw)];
  if (issues.length > 0) {
    const errors = issues.map((i) => positioned(offsetOf(doc, i.path, i.at), i.message));
    return { ok: false, errors: sortErrors(errors) };
  }

  const policy: Policy = normalize(raw);
  const loaded: LoadedPolicy = { policy, version: policyVersion(text), source: text, file };
  return { ok: true, loaded: deepFreeze(loaded) };
}

/**
 * The parser's errors about an indentation mistake (its grammar's words, often on the line before) replaced by
 * one that says which line is off and what to write. Errors elsewhere in the file are kept.
 */
function withIndentationExplained(text: string, file: string, errors: PolicyError[]): PolicyError[] {
  const problem = explainIndentation(text);
  if (problem === null) return errors;
  const near = (e: PolicyError) => e.line >= problem.line - 1 && e.line <= problem.line + 1;
  if (!errors.some(near)) return errors;
  return [{ file, line: problem.line, col: problem.col, message: problem.message }, ...errors.filter((e) => !near(e))];
}

/** yaml's messages sometimes carry a trailing source excerpt; keep the first line. */
function yamlMessage(msg: string): string {
  const first = msg.split('\n')[0].trim();
  return first.replace(/ at line \d+, column \d+:?$/, '') || 'invalid YAML';
}

/**
 * Problems that the YAML parser accepts but a policy must not have: non-scalar mapping keys (which JS
 * objects would stringify) and aliases to anchors that do not exist (which would fail only at conversion).
 */
function structuralYamlIssues(doc: Document, positioned: (offset: number, message: string) => PolicyError): PolicyError[] {
  const out: PolicyError[] = [];
  visit(doc, {
    Pair(_key, pair) {
      if (isCollection(pair.key) || isAlias(pair.key)) {
        out.push(positioned(((pair.key as { range?: number[] }).range ?? [0])[0], 'mapping keys must be plain strings'));
      }
    },
    Alias(_key, node) {
      if (node.resolve(doc) === undefined) out.push(positioned(node.range?.[0] ?? 0, `alias *${node.source} has no anchor &${node.source} before it`));
    },
  });
  return out;
}

/**
 * After one YAML syntax error the parser reports every following token as unexpected too; that cascade
 * hides the real mistake. Keep the first error of each line, and at most MAX_YAML_ERRORS of them.
 */
const MAX_YAML_ERRORS = 10;
function trimCascade(errors: PolicyError[]): PolicyError[] {
  const lines = new Set<number>();
  const firstPerLine = errors.filter((e) => (lines.has(e.line) ? false : (lines.add(e.line), true)));
  if (firstPerLine.length <= MAX_YAML_ERRORS) return firstPerLine;
  const shown = firstPerLine.slice(0, MAX_YAML_ERRORS);
  const last = shown[shown.length - 1];
  shown.push({ ...last, message: `(${firstPerLine.length - MAX_YAML_ERRORS} more YAML errors after this one not shown; fix the first ones)` });
  return shown;
}

function sortErrors(errors: PolicyError[]): PolicyError[] {
  const seen = new Set<string>();
  return errors
    .filter((e) => {
      const k = `${e.line}:${e.col}:${e.message}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .sort((a, b) => a.line - b.line || a.col - b.col);
}

/** Freeze an object graph so no stage can change the policy another stage is reading. */
export function deepFreeze<T>(value: T): T {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object' || Object.isFrozen(v)) continue;
    Object.freeze(v);
    for (const k of Object.keys(v)) stack.push((v as Record<string, unknown>)[k]);
  }
  return value;
}

/** `FILE:LINE:COL: message`, one line per problem (like nginx -t or a compiler). */
export function formatErrors(errors: readonly PolicyError[]): string {
  return errors.map((e) => `${e.file}:${e.line}:${e.col}: ${e.message.replace(/\s*\n\s*/g, ' ')}`).join('\n');
}

/** One line for `validate` and the logs: what is on, at a glance. */
export function summarize(loaded: LoadedPolicy): string {
  const p = loaded.policy;
  const parts = [`policy ok: version ${loaded.version}`, `${p.routes.length} route${p.routes.length === 1 ? '' : 's'}`];
  parts.push(`upstream ${p.upstream.host}:${p.upstream.port}`);
  parts.push(`listen ${p.server.listen.host}:${p.server.listen.port}`);
  parts.push(`${p.server.workers} worker${p.server.workers === 1 ? '' : 's'}`);
  if (p.rate_limiting) {
    const scopes = [p.rate_limiting.global && 'global', p.rate_limiting.per_user && 'per_user',
      Object.keys(p.rate_limiting.per_endpoint).length > 0 && 'per_endpoint'].filter(Boolean);
    parts.push(`rate limiting (${p.rate_limiting.scope}${scopes.length ? ': ' + scopes.join('+') : ''})`);
  }
  if (p.queues) parts.push(`queues (max_in_flight ${p.queues.max_in_flight})`);
  if (p.cache) {
    const tiers = (['l1', 'l2', 'l3'] as const).filter((t) => p.cache![t] !== null);
    parts.push(`cache ${tiers.length ? tiers.join('+') : 'no tiers'}`);
    if (p.cache.warmup?.enabled) parts.push(`warm-up ${p.cache.warmup.strategies.length}`);
    if (p.cache.invalidation) parts.push(`invalidation ${p.cache.invalidation.triggers.length} event${p.cache.invalidation.triggers.length === 1 ? '' : 's'}`);
  }
  if (p.compression?.enabled) parts.push(`compression ${p.compression.algorithm.join('/')}`);
  if (p.redis) parts.push(p.redis.cluster ? `redis cluster (${p.redis.cluster.length} seeds)` : 'redis');
  if (p.tracing?.enabled) parts.push('tracing');
  if (p.profiling?.enabled) parts.push('profiling');
  if (p.auto_tuning?.enabled) parts.push(`auto-tuning ${p.auto_tuning.strategies.length}${p.auto_tuning.dry_run ? ' (dry run)' : ''}`);
  return parts.join(', ');
}
