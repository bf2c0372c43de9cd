/**
 * Reads a few fields of a JSON document without parsing all of it: what `store_if` needs from an upstream
 * answer before it is stored.
 *
 * Why: the draft service's `query_script` answers `{"success":true,"output":{ ...the whole draft... }}`, and a
 * busy draft grows to hundreds of KB. JSON.parse of 286 KB takes ~1.2 ms here, on the event loop, for every
 * store, only to read one boolean at the front. The probe walks the bytes, descends only along the wanted
 * paths, skips every other value with a string-aware bracket scan (no objects built) and stops as soon as
 * every wanted field is known. `{"success":true,...}` costs a few dozen bytes whatever the draft's size.
 *
 * The real service (Flask's jsonify sorts keys) answers `{"error":"","output":{ ...the draft... },"success":true}`:
 * the field store_if reads comes last, after the whole draft. So wanted top-level fields are first looked for
 * from the END of the object: its trailing members whose values are scalars are read backwards (a string's
 * opening quote is the first quote before its closing one that is not escaped, i.e. not preceded by an odd
 * number of backslashes), and when every wanted field is among them the answer costs a few dozen bytes
 * whatever the draft's size (a 180 KB draft: 309 µs walking forward, ~1 µs from the end). Otherwise (a nested
 * path, a field not at the end) the forward walk below reads the document.
 *
 * Semantics, where they differ from JSON.parse + a property read (documented in the README's store_if row):
 *  - the part of the document after the last wanted field is not read, and values skipped on the way are
 *    checked for their structure (strings, brackets, literals), not every detail of the grammar; read from the
 *    end, the part before the trailing members read is not read at all;
 *  - with a duplicated key, the first occurrence counts on the forward walk (JSON.parse keeps the last; RFC
 *    8259 leaves it open); read from the end, the last occurrence counts, as for JSON.parse.
 * A document that is malformed before the wanted fields are found is "not JSON": the probe returns null.
 */

/** A value found at a path: a JSON scalar, or CONTAINER for an object or array (never equal to a scalar). */
export type ProbeValue = string | number | boolean | null | typeof CONTAINER | undefined;
export const CONTAINER: unique symbol = Symbol('json-container');

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

class Malformed extends Error {}

/**
 * The values at `paths` (each a list of keys; array elements by decimal index), in order; undefined where the
 * document has no such field; null when the document is not JSON (up to the point the probe had to read).
 */
export function probeJson(buf: Buffer, paths: ReadonlyArray<readonly string[]>): ProbeValue[] | null {
  const fromEnd = probeTail(buf, paths);
  if (fromEnd !== null) return fromEnd;
  const found: ProbeValue[] = new Array<ProbeValue>(paths.length).fill(undefined);
  const state = { pending: paths.length };
  try {
    const pos = skipWs(buf, 0);
    const wanted = paths.map((_, i) => i);
    readValue(buf, pos, paths, wanted, 0, found, state);
  } catch (e) {
    if (e instanceof Malformed) return null;
    if (e === DONE) return found;
    throw e;
  }
  return found;
}

/**
 * probeJson for a body of which only the last bytes are at hand (`tail`; `firstByte`: the body's first byte that is
 * not white space): the wanted top-level fields when they are among the trailing scalar members inside `tail`,
 * read as probeTail reads them from the whole body. null when `tail` does not decide it (a field further back,
 * a value or key reaching back past its start, not an object): the caller then reads the whole body.
 */
export function probeWindow(tail: Buffer, firstByte: number, paths: ReadonlyArray<readonly string[]>): ProbeValue[] | null {
  if (firstByte !== LBRACE) return null;
  return probeTail(tail, paths, true);
}

/**
 * The wanted fields (all top-level keys) read backwards from the end of a top-level object, through its
 * trailing members whose values are scalars; null when the document is not an object, a wanted field is not
 * among those members, or anything on the way does not look like JSON (the forward walk then decides).
 */
function probeTail(buf: Buffer, paths: ReadonlyArray<readonly string[]>, cut = false): ProbeValue[] | null {
  for (const p of paths) if (p.length !== 1) return null;
  // cut: `buf` is the body's last bytes (probeWindow); its object opened somewhere before them
  const open = cut ? -1 : skipWs(buf, 0);
  if (!cut && buf[open] !== LBRACE) return null;
  let pos = skipWsBack(buf, buf.length - 1);
  if (pos <= open || buf[pos] !== RBRACE) return null;
  pos = skipWsBack(buf, pos - 1);
  const found: ProbeValue[] = new Array<ProbeValue>(paths.length).fill(undefined);
  let pending = paths.length;
  try {
    while (pos > open) {
      // a member `"key": scalar`, read from its end
      const c = buf[pos];
      if (c === RBRACE || c === RBRACKET) return null; // a container: the forward walk reads on from here
      const valueStart = c === QUOTE ? stringStartBack(buf, pos, cut) : tokenStartBack(buf, pos, cut);
      if (valueStart < 0) return null;
      const valueEnd = pos + 1;
      pos = skipWsBack(buf, valueStart - 1);
      if (buf[pos] !== COLON) return null;
      pos = skipWsBack(buf, pos - 1);
      if (buf[pos] !== QUOTE) return null;
      const keyStart = stringStartBack(buf, pos, cut);
      if (keyStart < 0) return null;
      const key = decodeString(buf, keyStart, pos + 1);
      for (let i = 0; i < paths.length; i++) {
        if (found[i] === undefined && paths[i][0] === key) {
          found[i] = parseToken(buf, valueStart, valueEnd);
          pending--;
        }
      }
      if (pending === 0) return found;
      pos = skipWsBack(buf, keyStart - 1);
      if (buf[pos] !== COMMA) return null;
      pos = skipWsBack(buf, pos - 1);
    }
  } catch (e) {
    if (e instanceof Malformed) return null;
    throw e;
  }
  return null;
}

function skipWsBack(buf: Buffer, pos: number): number {
  while (isWs(buf[pos])) pos--;
  return pos;
}

/**
 * The opening quote of the string whose closing quote is at `end`, or -1. `cut` (the buffer is the body's last
 * bytes): a run of backslashes reaching the buffer's start may be longer, so which quote is escaped is unknown: -1.
 */
function stringStartBack(buf: Buffer, end: number, cut = false): number {
  for (let i = end - 1; i >= 0; i--) {
    if (buf[i] !== QUOTE) continue;
    let slashes = 0;
    while (i - 1 - slashes >= 0 && buf[i - 1 - slashes] === BACKSLASH) slashes++;
    if (cut && i - slashes === 0) return -1;
    if (slashes % 2 === 0) return i;
  }
  return -1;
}

/**
 * The first byte of the number or literal (true, false, null) that ends at `end`, or -1 (JSON.parse checks it).
 * `cut`: a token reaching the buffer's start may begin before it: -1.
 */
function tokenStartBack(buf: Buffer, end: number, cut = false): number {
  let i = end;
  // a number's bytes, or a literal's (lower-case letters)
  for (; i >= 0; i--) {
    const b = buf[i];
    if (!(isNumberByte(b) || (b >= 0x61 && b <= 0x7a))) break;
  }
  if (cut && i < 0) return -1;
  return i === end ? -1 : i + 1;
}

/** Thrown (not an Error: no stack is captured) once every wanted field is known. */
const DONE = { done: true };

/**
 * Read the value at `pos` for the paths in `wanted` (indexes into `paths`) that have reached `depth`; returns
 * the position after the value.
 */
function readValue(buf: Buffer, pos: number, paths: ReadonlyArray<readonly string[]>, wanted: number[], depth: number,
  found: ProbeValue[], state: { pending: number }): number {
  const c = buf[pos];
  // paths that end here take this value
  let deeper: number[] | null = null;
  for (const i of wanted) {
    if (paths[i].length === depth) {
      found[i] = c === LBRACE || c === LBRACKET ? CONTAINER : scalarAt(buf, pos);
      if (--state.pending === 0) throw DONE;
    } else (deeper ??= []).push(i);
  }
  if (deeper === null) return skipValue(buf, pos);
  if (c === LBRACE) return readObject(buf, pos, paths, deeper, depth, found, state);
  if (c === LBRACKET) return readArray(buf, pos, paths, deeper, depth, found, state);
  return skipValue(buf, pos); // a scalar where the paths wanted to go deeper: those fields stay undefined
}

function readObject(buf: Buffer, pos: number, paths: ReadonlyArray<readonly string[]>, wanted: number[], depth: number,
  found: ProbeValue[], state: { pending: number }): number {
  pos = skipWs(buf, pos + 1);
  if (buf[pos] === RBRACE) return pos + 1;
  for (;;) {
    if (buf[pos] !== QUOTE) throw new Malformed();
    const keyEnd = skipString(buf, pos);
    const key = decodeString(buf, pos, keyEnd);
    pos = skipWs(buf, keyEnd);
    if (buf[pos] !== COLON) throw new Malformed();
    pos = skipWs(buf, pos + 1);
    let next: number[] | null = null;
    for (const i of wanted) if (paths[i][depth] === key && found[i] === undefined) (next ??= []).push(i);
    pos = next === null ? skipValue(buf, pos) : readValue(buf, pos, paths, next, depth + 1, found, state);
    pos = skipWs(buf, pos);
    if (buf[pos] === COMMA) { pos = skipWs(buf, pos + 1); continue; }
    if (buf[pos] === RBRACE) return pos + 1;
    throw new Malformed();
  }
}

function readArray(buf: Buffer, pos: number, paths: ReadonlyArray<readonly string[]>, wanted: number[], depth: number,
  found: ProbeValue[], state: { pending: number }): number {
  pos = skipWs(buf, pos + 1);
  if (buf[pos] === RBRACKET) return pos + 1;
  for (let index = 0; ; index++) {
    const key = String(index);
    let next: number[] | null = null;
    for (const i of wanted) if (paths[i][depth] === key) (next ??= []).push(i);
    pos = next === null ? skipValue(buf, pos) : readValue(buf, pos, paths, next, depth + 1, found, state);
    pos = skipWs(buf, pos);
    if (buf[pos] === COMMA) { pos = skipWs(buf, pos + 1); continue; }
    if (buf[pos] === RBRACKET) return pos + 1;
    throw new Malformed();
  }
}

/** JSON's white space (a position past either end reads undefined: not white space). */
function isWs(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** A byte a JSON number can have: digits, sign, point, exponent (JSON.parse checks the exact grammar). */
function isNumberByte(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2b || b === 0x2e || b === 0x65 || b === 0x45;
}

function skipWs(buf: Buffer, pos: number): number {
  while (isWs(buf[pos])) pos++;
  return pos;
}

/** Position after the string that starts at `pos` (its opening quote). */
function skipString(buf: Buffer, pos: number): number {
  const n = buf.length;
  for (let i = pos + 1; i < n; i++) {
    const c = buf[i];
    if (c === QUOTE) return i + 1;
    if (c === BACKSLASH) i++;
    else if (c < 0x20) throw new Malformed(); // control characters must be escaped
  }
  throw new Malformed();
}

/** Position after the value at `pos`, without building it. */
function skipValue(buf: Buffer, pos: number): number {
  const c = buf[pos];
  if (c === QUOTE) return skipString(buf, pos);
  if (c === LBRACE || c === LBRACKET) {
    let depth = 0;
    const n = buf.length;
    for (let i = pos; i < n; i++) {
      const b = buf[i];
      if (b === QUOTE) { i = skipString(buf, i) - 1; continue; }
      if (b === LBRACE || b === LBRACKET) depth++;
      else if (b === RBRACE || b === RBRACKET) { if (--depth === 0) return i + 1; }
    }
    throw new Malformed();
  }
  return scalarEnd(buf, pos);
}

/** End of a number / true / false / null token; anything else there is not JSON. */
function scalarEnd(buf: Buffer, pos: number): number {
  const first = buf[pos];
  if (first === 0x74) return literalEnd(buf, pos, 'true');
  if (first === 0x66) return literalEnd(buf, pos, 'false');
  if (first === 0x6e) return literalEnd(buf, pos, 'null');
  // a number: its characters only (JSON.parse checks the exact grammar when the value is wanted)
  let i = pos;
  while (i < buf.length && isNumberByte(buf[i])) i++;
  if (i === pos) throw new Malformed();
  return i;
}

function literalEnd(buf: Buffer, pos: number, word: string): number {
  for (let k = 0; k < word.length; k++) if (buf[pos + k] !== word.charCodeAt(k)) throw new Malformed();
  return pos + word.length;
}

function scalarAt(buf: Buffer, pos: number): ProbeValue {
  const end = buf[pos] === QUOTE ? skipString(buf, pos) : scalarEnd(buf, pos);
  return parseToken(buf, pos, end);
}

function parseToken(buf: Buffer, start: number, end: number): ProbeValue {
  try {
    return JSON.parse(buf.toString('utf8', start, end)) as ProbeValue;
  } catch {
    throw new Malformed();
  }
}

function decodeString(buf: Buffer, start: number, end: number): string {
  // keys are nearly always plain ASCII: only a key with an escape needs JSON.parse
  for (let i = start + 1; i < end - 1; i++) if (buf[i] === BACKSLASH) return parseToken(buf, start, end) as string;
  return buf.toString('utf8', start + 1, end - 1);
}

export interface Span { readonly start: number; readonly end: number }

/**
 * The byte range [start, end) of the value of the top-level member `name` of a JSON object text, or null when
 * the text is not an object or has no such member. With a duplicated name the last occurrence counts, as for
 * JSON.parse (what the client will read).
 */
export function memberSpan(buf: Buffer, name: string): Span | null {
  return memberSpans(buf, [name])?.[0] ?? null;
}

/**
 * memberSpan for several names in one walk of the text (each walk reads all of it): the spans in the order of
 * `names`, null for a name the object does not have; null instead of the list when the text is not one object.
 */
export function memberSpans(buf: Buffer, names: readonly string[]): Array<Span | null> | null {
  const spans = new Array<Span | null>(names.length).fill(null);
  try {
    let pos = skipWs(buf, 0);
    if (buf[pos] !== LBRACE) return null;
    pos = skipWs(buf, pos + 1);
    if (buf[pos] === RBRACE) return skipWs(buf, pos + 1) === buf.length ? spans : null;
    for (;;) {
      if (buf[pos] !== QUOTE) return null;
      const keyEnd = skipString(buf, pos);
      const key = decodeString(buf, pos, keyEnd);
      pos = skipWs(buf, keyEnd);
      if (buf[pos] !== COLON) return null;
      pos = skipWs(buf, pos + 1);
      const end = skipValue(buf, pos);
      const i = names.indexOf(key);
      if (i >= 0) spans[i] = { start: pos, end };
      pos = skipWs(buf, end);
      if (buf[pos] === COMMA) { pos = skipWs(buf, pos + 1); continue; }
      if (buf[pos] === RBRACE) return skipWs(buf, pos + 1) === buf.length ? spans : null;
      return null;
    }
  } catch (e) {
    if (e instanceof Malformed) return null;
    throw e;
  }
}
