/**
 * A strict RFC 6902 applier for the webhook tests (add, remove, replace, test): every path must resolve as the
 * RFC says, or it throws, like the API server would refuse the patch. Independent of lib/k8s/json-patch.ts,
 * which makes the patches.
 */
type Json = unknown;

function unescape(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

function parse(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new Error(`bad JSON pointer ${JSON.stringify(path)}`);
  return path.slice(1).split('/').map(unescape);
}

function index(arr: unknown[], token: string, forAdd: boolean): number {
  if (forAdd && token === '-') return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new Error(`bad array index ${token}`);
  const i = Number(token);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new Error(`array index ${i} out of range`);
  return i;
}

export interface Op { op: string; path: string; value?: Json }

export function applyPatch(doc: Json, ops: readonly Op[]): Json {
  let root = structuredClone(doc);
  for (const op of ops) {
    const tokens = parse(op.path);
    if (tokens.length === 0) {
      if (op.op === 'replace' || op.op === 'add') { root = structuredClone(op.value); continue; }
      throw new Error(`${op.op} on the root`);
    }
    let parent: any = root;
    for (const t of tokens.slice(0, -1)) {
      if (Array.isArray(parent)) parent = parent[index(parent, t, false)];
      else if (parent !== null && typeof parent === 'object' && t in parent) parent = parent[t];
      else throw new Error(`${op.op} ${op.path}: ${t} does not exist`);
    }
    const last = tokens[tokens.length - 1];
    const value = structuredClone(op.value);
    if (Array.isArray(parent)) {
      const i = index(parent, last, op.op === 'add');
      if (op.op === 'add') parent.splice(i, 0, value);
      else if (op.op === 'remove') parent.splice(i, 1);
      else if (op.op === 'replace') parent[i] = value;
      else if (op.op === 'test') { if (JSON.stringify(parent[i]) !== JSON.stringify(value)) throw new Error(`test ${op.path} failed`); }
      else throw new Error(`unsupported op ${op.op}`);
    } else if (parent !== null && typeof parent === 'object') {
      const exists = Object.prototype.hasOwnProperty.call(parent, last);
      if ((op.op === 'remove' || op.op === 'replace' || op.op === 'test') && !exists) throw new Error(`${op.op} ${op.path}: does not exist`);
      if (op.op === 'add' || op.op === 'replace') parent[last] = value;
      else if (op.op === 'remove') delete parent[last];
      else if (op.op === 'test') { if (JSON.stringify(parent[last]) !== JSON.stringify(value)) throw new Error(`test ${op.path} failed`); }
      else throw new Error(`unsupported op ${op.op}`);
    } else {
      throw new Error(`${op.op} ${op.path}: parent is not a container`);
    }
  }
  return root;
}
