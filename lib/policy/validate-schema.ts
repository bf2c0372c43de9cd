/**
 * Checks a plain value (the YAML converted to JS) against the subset of JSON Schema that schema.ts uses,
 * and reports every failure with its path, so the loader can point at the line and column.
 *
 * Hand-written rather than ajv: the subset is small, and walking it ourselves gives messages an operator
 * can act on (unknown key with a "did you mean", the key's own position, the def's errorMessage).
 */
import { formatPath, type PolicyIssue, type PolicyPath } from './issues';
import type { JsonSchema } from './schema';
import { editDistance } from '../util/edit-distance';

type Schema = { readonly [k: string]: unknown };

export function validateAgainstSchema(root: JsonSchema, value: unknown): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  check(root, root, value, [], issues);
  return issues;
}

function resolveRef(root: Schema, schema: Schema): Schema {
  const ref = schema.$ref;
  if (typeof ref !== 'string') return schema;
  const m = /^#\/\$defs\/(.+)$/.exec(ref);
  const defs = root.$defs as Record<string, Schema> | undefined;
  const target = m && defs ? defs[m[1]] : undefined;
  if (!target) throw new Error(`schema: unresolvable $ref ${ref}`);
  const { $ref: _ignored, ...siblings } = schema;
  // siblings of $ref here are annotations (default, description); a sibling errorMessage wins
  return { ...resolveRef(root, target), ...siblings };
}

function sameSegments(a: PolicyPath, b: PolicyPath): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

function check(root: Schema, raw: Schema, value: unknown, path: PolicyPath, out: PolicyIssue[]): void {
  const schema = resolveRef(root, raw);
  const local: PolicyIssue[] = [];
  checkResolved(root, schema, value, path, local);
  const msg = schema.errorMessage;
  if (typeof msg === 'string' && local.some((i) => i.at === 'value' && sameSegments(i.path, path))) {
    // failures of this value itself get the schema's message; failures deeper inside keep their own
    out.push({ path, at: 'value', message: `${formatPath(path)} ${msg}` });
    for (const i of local) if (!(i.at === 'value' && sameSegments(i.path, path))) out.push(i);
  } else {
    out.push(...local);
  }
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : Number.isFinite(v) ? 'a number' : String(v);
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'boolean') return 'a boolean';
  return typeof v;
}

const TYPE_WORDS: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  null: 'empty',
};

function isType(v: unknown, t: string): boolean {
  switch (t) {
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return typeof v === 'number' && Number.isSafeInteger(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'null':
      return v === null;
    default:
      return false;
  }
}

function typesOf(schema: Schema): string[] | null {
  const t = schema.type;
  if (typeof t === 'string') return [t];
  if (Array.isArray(t)) return t as string[];
  return null;
}

/** Whether a branch of anyOf/oneOf is meant for this kind of value (its type, const or enum fits). */
function branchFits(root: Schema, raw: Schema, v: unknown): boolean {
  const s = resolveRef(root, raw);
  const types = typesOf(s);
  if (types) return types.some((t) => isType(v, t) || (t === 'integer' && typeof v === 'number'));
  if ('const' in s) return typeof s.const === typeof v;
  if (Array.isArray(s.enum)) return s.enum.some((e) => typeof e === typeof v);
  return true;
}

/** YAML 1.1's booleans: YAML 1.2 (what the policy is read as, like Kubernetes) reads them as plain strings. */
const YAML11_BOOLEANS = new Set(['yes', 'no', 'on', 'off', 'y', 'n']);

function yaml11Hint(types: string[], v: unknown): string {
  if (!types.includes('boolean') || typeof v !== 'string' || !YAML11_BOOLEANS.has(v.toLowerCase())) return '';
  const meant = ['yes', 'on', 'y'].includes(v.toLowerCase());
  return ` ("${v}": YAML 1.2 reads yes/no/on/off as strings, not booleans; write ${meant})`;
}

function checkResolved(root: Schema, s: Schema, v: unknown, path: PolicyPath, out: PolicyIssue[]): void {
  const where = formatPath(path);
  const types = typesOf(s);
  if (types && !types.some((t) => isType(v, t))) {
    const words = types.filter((t) => t !== 'null').map((t) => TYPE_WORDS[t] ?? t);
    const want = words.length === 1 ? words[0] + (words[0] === 'a boolean' ? ' (true or false)' : '')
      : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
    out.push({ path, at: 'value', message: `${where} must be ${want}, not ${typeName(v)}${yaml11Hint(types, v)}` });
    return;
  }
  if ('const' in s && v !== s.const) {
    out.push({ path, at: 'value', message: `${where} must be ${JSON.stringify(s.const)}` });
    return;
  }
  if (Array.isArray(s.enum) && !s.enum.includes(v)) {
    out.push({ path, at: 'value', message: `${where} must be one of ${s.enum.map((e) => String(e)).join(', ')}, not ${describe(v)}` });
    return;
  }
  if (typeof v === 'string') {
    if (typeof s.minLength === 'number' && v.length < s.minLength) {
      out.push({ path, at: 'value', message: `${where} must not be empty` });
    } else if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v)) {
      out.push({ path, at: 'value', message: `${where}: ${describe(v)} does not match ${s.pattern}` });
    }
  }
  if (typeof v === 'number') {
    if (typeof s.minimum === 'number' && v < s.minimum) out.push({ path, at: 'value', message: `${where} must be at least ${s.minimum}, not ${v}` });
    if (typeof s.maximum === 'number' && v > s.maximum) out.push({ path, at: 'value', message: `${where} must be at most ${s.maximum}, not ${v}` });
    if (typeof s.exclusiveMinimum === 'number' && v <= s.exclusiveMinimum) {
      out.push({ path, at: 'value', message: `${where} must be greater than ${s.exclusiveMinimum}, not ${v}` });
    }
  }
  if (Array.isArray(v)) {
    if (typeof s.minItems === 'number' && v.length < s.minItems) {
      out.push({ path, at: 'value', message: `${where} must have at least ${s.minItems} item${s.minItems === 1 ? '' : 's'}` });
    }
    if (s.items && typeof s.items === 'object') v.forEach((item, i) => check(root, s.items as Schema, item, [...path, i], out));
  }
  if (isType(v, 'object')) checkObject(root, s, v as Record<string, unknown>, path, out);
  for (const kw of ['anyOf', 'oneOf'] as const) {
    const branches = s[kw];
    if (!Array.isArray(branches)) continue;
    const results = branches.map((b: Schema) => {
      const issues: PolicyIssue[] = [];
      check(root, b, v, path, issues);
      return issues;
    });
    const passing = results.filter((r) => r.length === 0).length;
    if (kw === 'anyOf' ? passing >= 1 : passing === 1) continue;
    const fitting = branches.map((b: Schema, i) => (branchFits(root, b, v) ? i : -1)).filter((i) => i >= 0);
    if (kw === 'anyOf' && fitting.length === 1 && typeof s.errorMessage !== 'string') {
      out.push(...results[fitting[0]]);
    } else {
      out.push({ path, at: 'value', message: `${where} has an unexpected form` });
    }
  }
}

function checkObject(root: Schema, s: Schema, obj: Record<string, unknown>, path: PolicyPath, out: PolicyIssue[]): void {
  const props = (s.properties ?? {}) as Record<string, Schema>;
  if (Array.isArray(s.required)) {
    for (const k of s.required as string[]) {
      if (!Object.prototype.hasOwnProperty.call(obj, k)) {
        out.push({ path, at: 'value', message: `${formatPath([...path, k])} is required` });
      }
    }
  }
  const names = s.propertyNames as Schema | undefined;
  for (const key of Object.keys(obj)) {
    const keyPath = [...path, key];
    if (names) {
      const keyIssues: PolicyIssue[] = [];
      check(root, names, key, keyPath, keyIssues);
      const why = typeof names.errorMessage === 'string' ? names.errorMessage : 'is not allowed here';
      if (keyIssues.length > 0) out.push({ path: keyPath, at: 'key', message: `${formatPath(path)}: key ${JSON.stringify(key)} ${why}` });
    }
    if (Object.prototype.hasOwnProperty.call(props, key)) {
      check(root, props[key], obj[key], keyPath, out);
    } else if (s.additionalProperties === false) {
      const known = Object.keys(props);
      const hint = suggest(key, known);
      out.push({
        path: keyPath,
        at: 'key',
        message: `unknown key ${JSON.stringify(key)} in ${formatPath(path)}` +
          (hint ? ` (did you mean "${hint}"?)` : known.length ? ` (expected one of: ${known.join(', ')})` : ''),
      });
    } else if (s.additionalProperties && typeof s.additionalProperties === 'object') {
      check(root, s.additionalProperties as Schema, obj[key], keyPath, out);
    }
  }
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 57) + '...' : v);
  return typeName(v) === 'a mapping' || typeName(v) === 'a list' ? typeName(v) : String(v);
}

/** The known key closest to a misspelt one, if it is close enough to be a likely typo. */
function suggest(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k, 3);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== null && bestD <= Math.max(1, Math.floor(best.length / 3)) ? best : null;
}

