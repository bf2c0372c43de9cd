/**
 * The auto-tuning trigger language: a small boolean expression over the figures of one interval, e.g.
 *
 *     memory_usage > 85% and (queue_length > 100 or not p99_latency < 1s)
 *
 * Parsed once when the policy is loaded, by a tokenizer and a recursive-descent parser (never eval), into a
 * tree that the engine evaluates every interval. Every error carries the 1-based column inside the
 * expression, so the policy loader can point at the exact character in the file.
 *
 * Grammar (keywords are case-insensitive; figure names are lower-case):
 *     expr       := and_expr ( "or" and_expr )*
 *     and_expr   := unary ( "and" unary )*
 *     unary      := "not" unary | "(" expr ")" | comparison
 *     comparison := figure OP quantity | quantity OP figure        OP: > >= < <= == !=
 *     quantity   := number [unit]                                   unit: % ms s m B KB MB GB
 *
 * Units are checked against the figure: ratios (memory_usage, cpu_usage, error_rate, cache_hit_ratio) take
 * `85%` or a plain 0..1 number; times (connection_wait_time, p99_latency) need `ms`, `s` or `m`; counts
 * (queue_length) are plain numbers; memory_usage also takes a size (`512MB`: the working set itself).
 *
 * Evaluation is three-valued (Kleene): a figure that could not be measured in an interval (no cache lookups,
 * say) is unknown, a comparison with it is unknown, `false and unknown` is false, `true or unknown` is true, and
 * a trigger fires only when its value is true.
 */
import { editDistance } from '../util/edit-distance';

export const FIGURE_NAMES = [
  'memory_usage', 'cpu_usage', 'connection_wait_time', 'queue_length', 'error_rate', 'p99_latency', 'cache_hit_ratio',
] as const;
export type FigureName = (typeof FIGURE_NAMES)[number];

export type FigureKind = 'ratio' | 'time' | 'count';

export const FIGURE_KINDS: Readonly<Record<FigureName, FigureKind>> = {
  memory_usage: 'ratio',
  cpu_usage: 'ratio',
  connection_wait_time: 'time',
  queue_length: 'count',
  error_rate: 'ratio',
  p99_latency: 'time',
  cache_hit_ratio: 'ratio',
};

/**
 * The figures of one interval. Ratios are 0..1, times milliseconds, `memory_bytes` the container's working set
 * (what `memory_usage > 512MB` compares). null: not measurable in this interval (unknown).
 */
export interface Figures {
  readonly memory_usage: number | null;
  readonly memory_bytes: number | null;
  readonly cpu_usage: number | null;
  readonly connection_wait_time: number | null;
  readonly queue_length: number | null;
  readonly error_rate: number | null;
  readonly p99_latency: number | null;
  readonly cache_hit_ratio: number | null;
}

export type CompareOp = '>' | '>=' | '<' | '<=' | '==' | '!=';

/** The longest trigger accepted, and the deepest nesting: bounds for the parser's work and stack. */
export const MAX_TRIGGER_LENGTH = 1000;
export const MAX_NESTING = 32;

export type TriggerNode =
  | { readonly kind: 'cmp'; readonly figure: FigureName; readonly bytes: boolean; readonly op: CompareOp; readonly value: number; readonly text: string }
  | { readonly kind: 'and' | 'or'; readonly left: TriggerNode; readonly right: TriggerNode }
  | { readonly kind: 'not'; readonly arg: TriggerNode };

/** A problem in a trigger: `col` is 1-based within the expression (`index` is the same, 0-based). */
export class TriggerError extends Error {
  readonly index: number;
  constructor(message: string, index: number) {
    super(message);
    this.name = 'TriggerError';
    this.index = index;
  }

  get col(): number {
    return this.index + 1;
  }
}

/** A parsed trigger: evaluate it on an interval's figures; `figures` names those it reads (for the logs). */
export class Trigger {
  readonly figures: readonly FigureName[];

  constructor(readonly source: string, readonly root: TriggerNode) {
    const used = new Set<FigureName>();
    const walk = (n: TriggerNode): void => {
      if (n.kind === 'cmp') used.add(n.figure);
      else if (n.kind === 'not') walk(n.arg);
      else { walk(n.left); walk(n.right); }
    };
    walk(root);
    this.figures = [...used];
  }

  /** true / false, or null when the figures it depends on were not measurable (it then does not fire). */
  evaluate(f: Figures): boolean | null {
    return evalNode(this.root, f);
  }
}

function evalNode(n: TriggerNode, f: Figures): boolean | null {
  switch (n.kind) {
    case 'cmp': {
      const v = n.bytes ? f.memory_bytes : f[n.figure];
      if (v === null || !Number.isFinite(v)) return null;
      return compare(v, n.op, n.value);
    }
    case 'not': {
      const a = evalNode(n.arg, f);
      return a === null ? null : !a;
    }
    case 'and': {
      const a = evalNode(n.left, f);
      if (a === false) return false;
      const b = evalNode(n.right, f);
      if (b === false) return false;
      return a === null || b === null ? null : true;
    }
    case 'or': {
      const a = evalNode(n.left, f);
      if (a === true) return true;
      const b = evalNode(n.right, f);
      if (b === true) return true;
      return a === null || b === null ? null : false;
    }
  }
}

function compare(a: number, op: CompareOp, b: number): boolean {
  switch (op) {
    case '>': return a > b;
    case '>=': return a >= b;
    case '<': return a < b;
    case '<=': return a <= b;
    case '==': return a === b;
    case '!=': return a !== b;
  }
}

// ---- tokenizer --------------------------------------------------------------------------------------------

type Token =
  | { readonly t: 'num'; readonly value: number; readonly unit: string | null; readonly unitAt: number; readonly at: number; readonly end: number }
  | { readonly t: 'word'; readonly value: string; readonly at: number; readonly end: number }
  | { readonly t: 'op'; readonly value: CompareOp; readonly at: number; readonly end: number }
  | { readonly t: '(' | ')' | 'end'; readonly at: number; readonly end: number };

const UNIT_SCALE: Readonly<Record<string, { kind: 'ratio' | 'time' | 'size'; scale: number }>> = {
  '%': { kind: 'ratio', scale: 0.01 },
  ms: { kind: 'time', scale: 1 },
  s: { kind: 'time', scale: 1000 },
  m: { kind: 'time', scale: 60_000 },
  b: { kind: 'size', scale: 1 },
  kb: { kind: 'size', scale: 1024 },
  mb: { kind: 'size', scale: 1024 ** 2 },
  gb: { kind: 'size', scale: 1024 ** 3 },
};

const isDigit = (c: string) => c >= '0' && c <= '9';
const isLetter = (c: string) => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_';
const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\r';

function unitKey(raw: string): string | null {
  if (raw === '%' || raw === 'ms' || raw === 's' || raw === 'm') return raw;
  const lower = raw.toLowerCase();
  return lower === 'b' || lower === 'kb' || lower === 'mb' || lower === 'gb' ? lower : null;
}

function show(s: string): string {
  return JSON.stringify(s.length > 20 ? s.slice(0, 17) + '...' : s);
}

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (isSpace(c)) { i++; continue; }
    const at = i;
    if (isDigit(c) || (c === '.' && isDigit(src[i + 1] ?? ''))) {
      while (i < src.length && isDigit(src[i])) i++;
      if (src[i] === '.') {
        i++;
        while (i < src.length && isDigit(src[i])) i++;
      }
      const value = Number(src.slice(at, i));
      if (!Number.isFinite(value)) throw new TriggerError(`number ${show(src.slice(at, i))} is too large`, at);
      const numEnd = i;
      // the unit may follow at once (85%) or after spaces (100 ms)
      let j = i;
      while (j < src.length && (src[j] === ' ' || src[j] === '\t')) j++;
      let unit: string | null = null;
      let unitAt = j;
      if (src[j] === '%') {
        unit = '%';
        i = j + 1;
      } else if (isLetter(src[j] ?? '')) {
        let k = j;
        while (k < src.length && (isLetter(src[k]) || isDigit(src[k]))) k++;
        const word = src.slice(j, k);
        const key = unitKey(word);
        if (key !== null) {
          unit = key;
          i = k;
        } else if (j === numEnd) {
          // letters glued to a number are a unit or a mistake, never the next word
          throw new TriggerError(`unknown unit ${show(word)} (expected %, ms, s, m, B, KB, MB or GB)`, j);
        }
      }
      if (unit === null) unitAt = numEnd;
      if (i < src.length && (isLetter(src[i]) || isDigit(src[i]) || src[i] === '.')) {
        throw new TriggerError(`unexpected ${show(src[i])} after ${show(src.slice(at, i))}`, i);
      }
      out.push({ t: 'num', value, unit, unitAt, at, end: i });
      continue;
    }
    if (isLetter(c)) {
      while (i < src.length && (isLetter(src[i]) || isDigit(src[i]))) i++;
      out.push({ t: 'word', value: src.slice(at, i), at, end: i });
      continue;
    }
    if (c === '(' || c === ')') {
      out.push({ t: c, at, end: ++i });
      continue;
    }
    const two = src.slice(i, i + 2);
    if (two === '>=' || two === '<=' || two === '==' || two === '!=') {
      out.push({ t: 'op', value: two, at, end: (i += 2) });
      continue;
    }
    if (c === '>' || c === '<') {
      out.push({ t: 'op', value: c, at, end: ++i });
      continue;
    }
    if (c === '=') throw new TriggerError('"=" is not a comparison: write == (or >=, <=)', at);
    if (two === '&&') throw new TriggerError('write "and" instead of "&&"', at);
    if (two === '||') throw new TriggerError('write "or" instead of "||"', at);
    if (c === '!') throw new TriggerError('write "not" instead of "!"', at);
    const cp = src.codePointAt(i) ?? 0;
    throw new TriggerError(`unexpected character ${show(String.fromCodePoint(cp))}`, at);
  }
  out.push({ t: 'end', at: src.length, end: src.length });
  return out;
}

// ---- parser -----------------------------------------------------------------------------------------------

const KEYWORDS = new Set(['and', 'or', 'not']);

class Parser {
  private pos = 0;
  private depth = 0;

  constructor(private readonly src: string, private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.pos];
  }

  private next(): Token {
    const t = this.tokens[this.pos];
    if (t.t !== 'end') this.pos++;
    return t;
  }

  private isKeyword(t: Token, kw: string): boolean {
    return t.t === 'word' && t.value.toLowerCase() === kw;
  }

  private describe(t: Token): string {
    if (t.t === 'end') return 'the end of the trigger';
    return show(this.src.slice(t.at, t.end));
  }

  parse(): TriggerNode {
    const node = this.orExpr();
    const t = this.peek();
    if (t.t !== 'end') {
      const hint = t.t === ')' ? ' (a ")" without its "(")' : t.t === 'word' || t.t === 'num' || t.t === '(' ? ' (join conditions with "and" or "or")' : '';
      throw new TriggerError(`unexpected ${this.describe(t)}${hint}`, t.at);
    }
    return node;
  }

  private orExpr(): TriggerNode {
    let left = this.andExpr();
    while (this.isKeyword(this.peek(), 'or')) {
      this.next();
      left = { kind: 'or', left, right: this.andExpr() };
    }
    return left;
  }

  private andExpr(): TriggerNode {
    let left = this.unary();
    while (this.isKeyword(this.peek(), 'and')) {
      this.next();
      left = { kind: 'and', left, right: this.unary() };
    }
    return left;
  }

  private unary(): TriggerNode {
    const t = this.peek();
    if (this.depth >= MAX_NESTING) throw new TriggerError(`nested more than ${MAX_NESTING} deep`, t.at);
    this.depth++;
    try {
      if (this.isKeyword(t, 'not')) {
        this.next();
        return { kind: 'not', arg: this.unary() };
      }
      if (t.t === '(') {
        this.next();
        const inner = this.orExpr();
        const close = this.peek();
        if (close.t !== ')') {
          throw new TriggerError(close.t === 'end' ? `missing ")" to close the "(" at column ${t.at + 1}` : `expected ")" or "and"/"or", found ${this.describe(close)}`, close.at);
        }
        this.next();
        return inner;
      }
      return this.comparison();
    } finally {
      this.depth--;
    }
  }

  private comparison(): TriggerNode {
    const first = this.next();
    if (first.t === 'word' && !KEYWORDS.has(first.value.toLowerCase())) {
      const figure = this.figureName(first);
      const op = this.operator(first);
      const q = this.next();
      if (q.t !== 'num') throw this.expectedQuantity(q, figure);
      return this.cmp(figure, op, q, false, first.at, q.end);
    }
    if (first.t === 'num') {
      const op = this.operator(first);
      const f = this.next();
      if (f.t !== 'word' || KEYWORDS.has(f.value.toLowerCase())) {
        throw new TriggerError(`expected a figure (${FIGURE_NAMES.join(', ')}) after ${show(op)}, found ${this.describe(f)}`, f.at);
      }
      return this.cmp(this.figureName(f), op, first, true, first.at, f.end);
    }
    if (first.t === 'op') throw new TriggerError(`expected a figure before ${show(first.value)}`, first.at);
    throw new TriggerError(`expected a condition like "memory_usage > 85%", found ${this.describe(first)}`, first.at);
  }

  private figureName(t: Token & { t: 'word' }): FigureName {
    if ((FIGURE_NAMES as readonly string[]).includes(t.value)) return t.value as FigureName;
    const hint = closest(t.value.toLowerCase(), FIGURE_NAMES);
    throw new TriggerError(
      `unknown figure ${show(t.value)}` + (hint ? ` (did you mean "${hint}"?)` : ` (expected one of: ${FIGURE_NAMES.join(', ')})`),
      t.at,
    );
  }

  private operator(after: Token): CompareOp {
    const t = this.next();
    if (t.t === 'op') return t.value;
    throw new TriggerError(`expected a comparison (> >= < <= == !=) after ${this.describe(after)}, found ${this.describe(t)}`, t.at);
  }

  private expectedQuantity(t: Token, figure: FigureName): TriggerError {
    if (t.t === 'word' && (FIGURE_NAMES as readonly string[]).includes(t.value)) {
      return new TriggerError(`compare ${figure} with a number, not with another figure`, t.at);
    }
    return new TriggerError(`expected a number${unitHint(figure)} after the comparison, found ${this.describe(t)}`, t.at);
  }

  private cmp(figure: FigureName, op: CompareOp, q: Token & { t: 'num' }, flipped: boolean, start: number, end: number): TriggerNode {
    const kind = FIGURE_KINDS[figure];
    const unit = q.unit === null ? null : UNIT_SCALE[q.unit];
    const unitAt = q.unit === null ? q.at : q.unitAt;
    let value = q.value;
    let bytes = false;
    if (unit === null) {
      if (kind === 'time') throw new TriggerError(`${figure} is a time: give the number a unit, like 100ms or 1s`, q.at);
      if (kind === 'ratio' && value > 1) throw new TriggerError(`${figure} is a ratio: write ${fmt(value)}% or a number between 0 and 1`, q.at);
    } else if (unit.kind === 'size' && figure === 'memory_usage') {
      bytes = true;
      value *= unit.scale;
    } else if (unit.kind !== kind) {
      const what = kind === 'ratio' ? `a ratio (like 85% or 0.85)${figure === 'memory_usage' ? ' or a size (like 512MB)' : ''}`
        : kind === 'time' ? 'a time (like 100ms or 2s)' : 'a plain number (like 100)';
      throw new TriggerError(`${figure} is compared with ${what}, not with ${show(this.src.slice(unitAt, q.end))}`, unitAt);
    } else {
      value *= unit.scale;
      if (unit.kind === 'ratio' && q.value > 100 && figure !== 'cpu_usage') {
        throw new TriggerError(`${figure} cannot be above 100%`, q.at);
      }
    }
    const finalOp = flipped ? FLIP[op] : op;
    return { kind: 'cmp', figure, bytes, op: finalOp, value, text: this.src.slice(start, end) };
  }
}

const FLIP: Readonly<Record<CompareOp, CompareOp>> = { '>': '<', '>=': '<=', '<': '>', '<=': '>=', '==': '==', '!=': '!=' };

function unitHint(figure: FigureName): string {
  const kind = FIGURE_KINDS[figure];
  return kind === 'time' ? ' with a time unit (100ms, 1s)' : kind === 'ratio' ? ' (85% or 0.85)' : '';
}

function fmt(n: number): string {
  return String(Math.round(n * 1000) / 1000);
}

/** The known name closest to a misspelt one, if it is close enough to be a likely typo. */
function closest(word: string, names: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const n of names) {
    const d = editDistance(word, n, 4);
    if (d < bestD) { bestD = d; best = n; }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(best.length / 4)) ? best : null;
}


/** Parse a trigger. Throws TriggerError (and nothing else) for any input. */
export function parseTrigger(source: string): Trigger {
  if (typeof source !== 'string') throw new TriggerError('a trigger must be a string', 0);
  if (source.length > MAX_TRIGGER_LENGTH) throw new TriggerError(`a trigger is at most ${MAX_TRIGGER_LENGTH} characters`, MAX_TRIGGER_LENGTH);
  if (source.trim() === '') throw new TriggerError('a trigger must be a condition like "memory_usage > 85%"', 0);
  const tokens = tokenize(source);
  return new Trigger(source, new Parser(source, tokens).parse());
}

/** The canonical text of a parsed trigger (for logs and tests): fully parenthesised where it matters. */
export function formatTrigger(n: TriggerNode): string {
  switch (n.kind) {
    case 'cmp': return n.text;
    case 'not': return `not ${n.arg.kind === 'cmp' || n.arg.kind === 'not' ? formatTrigger(n.arg) : `(${formatTrigger(n.arg)})`}`;
    case 'and': case 'or': {
      const side = (c: TriggerNode) => (c.kind === 'or' && n.kind === 'and' ? `(${formatTrigger(c)})` : formatTrigger(c));
      return `${side(n.left)} ${n.kind} ${side(n.right)}`;
    }
  }
}
