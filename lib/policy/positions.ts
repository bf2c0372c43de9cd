/**
 * Maps a path into the policy (['routes', 2, 'cache', 'key']) back to where it is written in the YAML text,
 * so every problem is reported as LINE:COL like a compiler error.
 */
import { isAlias, isMap, isNode, isPair, isScalar, isSeq, type Document, type Node, type Pair, type Scalar } from 'yaml';
import type { PolicyPath } from './issues';

export interface Position {
  readonly line: number;
  readonly col: number;
}

/** 1-based line/column of string offsets (columns count UTF-16 code units, as editors using LSP do). */
export class LineIndex {
  private readonly starts: number[] = [0];

  constructor(text: string) {
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) this.starts.push(i + 1);
  }

  at(offset: number): Position {
    const off = Math.max(0, offset);
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= off) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: off - this.starts[lo] + 1 };
  }
}

function keyString(key: unknown): string | undefined {
  if (isScalar(key)) return key.value === null ? '' : String(key.value);
  return undefined;
}

function deref(doc: Document, node: unknown): unknown {
  // bounded: an alias resolves to an anchored node, which is never itself an alias
  for (let i = 0; i < 8 && isAlias(node); i++) node = node.resolve(doc);
  return node;
}

function startOf(node: unknown): number | undefined {
  if (isNode(node) && node.range) return node.range[0];
  if (isPair(node)) return startOf(node.key) ?? startOf(node.value);
  return undefined;
}

/**
 * The offset of the key or value at `path`. When the path goes further than the document (a required key
 * that is missing), the deepest node that exists is used, so the error points at the mapping lacking it.
 * A number after the path of a string value is a character index INSIDE that string (auto-tuning triggers
 * point at the exact character of their expression): see offsetInString.
 */
export function offsetOf(doc: Document, path: PolicyPath, at: 'key' | 'value'): number {
  let node: unknown = doc.contents;
  let best = startOf(node) ?? 0;
  let lastPair: Pair | null = null;
  for (let i = 0; i < path.length; i++) {
    node = deref(doc, node);
    const seg = path[i];
    let next: unknown;
    lastPair = null;
    if (isMap(node)) {
      // the last pair with this key wins, as in the converted value
      for (const pair of node.items) if (keyString(pair.key) === String(seg)) lastPair = pair;
      next = lastPair ? lastPair.value : undefined;
      if (lastPair) {
        const isLast = i === path.length - 1;
        const keyOff = startOf(lastPair.key);
        const valOff = startOf(lastPair.value);
        // a key with an empty value (`cache:`) has no value node worth pointing at: use the key
        best = isLast && at === 'key' ? keyOff ?? best : valOff ?? keyOff ?? best;
        if (isLast && at === 'value' && isScalar(lastPair.value) && lastPair.value.value === null && keyOff !== undefined) {
          const src = (lastPair.value as Node).range;
          if (!src || src[0] === src[1]) best = keyOff;
        }
      }
    } else if (isScalar(node) && typeof node.value === 'string' && typeof seg === 'number' && i === path.length - 1) {
      return offsetInString(node as Scalar<string>, seg) ?? best;
    } else if (isSeq(node) && typeof seg === 'number') {
      next = node.items[seg];
      const off = startOf(next);
      if (off !== undefined) best = off;
    } else {
      return best;
    }
    if (next === undefined) return best;
    node = next;
  }
  return best;
}

/**
 * The file offset of character `index` of a string scalar's value. Exact for plain scalars on one line and for
 * quoted ones on one line whose only escapes are \\ and \" (or '' in single quotes), which covers
 * expressions as people write them; anything else (other escapes, folded lines, block scalars) cannot be
 * mapped without the source text, and points at the string's first character instead.
 */
export function offsetInString(node: Scalar<string>, index: number): number | undefined {
  const range = node.range;
  if (!range) return undefined;
  const [start, end] = range;
  const value = node.value;
  const i = Math.max(0, Math.min(index, value.length));
  const count = (ch: string) => value.split(ch).length - 1;
  switch (node.type) {
    case 'PLAIN':
      return end - start === value.length ? start + i : start;
    case 'QUOTE_SINGLE':
    case 'QUOTE_DOUBLE': {
      const escaped = node.type === 'QUOTE_SINGLE' ? ["'"] : ['"', '\\'];
      const rawLength = 2 + value.length + escaped.reduce((n, ch) => n + count(ch), 0);
      const plainInside = !/[\n\r\t\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]/.test(value);
      if (end - start !== rawLength || !plainInside) return start + 1;
      let off = start + 1;
      for (let j = 0; j < i; j++) off += escaped.includes(value[j]) ? 2 : 1;
      return off;
    }
    default:
      return start;
  }
}
