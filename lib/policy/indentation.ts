/**
 * Indentation mistakes explained in words, at the line that is wrong. The YAML parser's own messages ("Nested
 * mappings are not allowed in compact mappings", "All mapping items must start at the same column") name its
 * grammar, and often point at the line before the mistake. When the parser has failed, this scans the text's
 * block structure the way a person reads it and, if it finds the line whose indentation is off, says which
 * line, why, and what to write instead.
 *
 * Only consulted after a parse error, so valid YAML it does not fully understand (multi-line plain scalars,
 * flow collections over several lines) is never reported.
 */
export interface IndentProblem {
  /** 1-based line and column of the first character of the badly indented line. */
  line: number;
  col: number;
  message: string;
}

interface Line {
  no: number;
  indent: number;
  /** the text after the indentation, without a trailing comment */
  body: string;
}

/** `key:` or `key: value` (also as a list item's first key); group 1 the key, group 2 the value. */
const KEY_LINE = /^(?:- +)?("[^"]*"|'[^']*'|[^\s#'"{[\]][^:#]*?):(?:[ \t]+(.*))?$/;

const count = (s: string, re: RegExp): number => s.match(re)?.length ?? 0;

/** The key and value of a line whose value is complete on it (so nothing may be nested under it), else null. */
function keyWithValue(l: Line): { key: string } | null {
  const m = KEY_LINE.exec(l.body);
  const value = m?.[2]?.trim();
  if (!m || !value) return null;
  if (/^[|>]/.test(value) || /^[&!]\S*$/.test(value)) return null; // block scalar, or only an anchor / tag
  if (count(value, /[{[]/g) !== count(value, /[}\]]/g)) return null;
  return { key: m[1]!.trim() };
}

/** A value that opens a block scalar: its lines may be indented freely. */
const BLOCK_SCALAR = /:[ \t]+[|>][-+0-9]*\s*(#.*)?$/;

function significantLines(text: string): Line[] {
  const out: Line[] = [];
  const raw = text.split('\n');
  let blockScalarIndent = -1;
  for (let i = 0; i < raw.length; i++) {
    const line = raw[i]!.replace(/\r$/, '');
    const trimmed = line.trimStart();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const indent = line.length - trimmed.length;
    if (blockScalarIndent >= 0) {
      if (indent > blockScalarIndent) continue;
      blockScalarIndent = -1;
    }
    if (trimmed === '---' || trimmed === '...') continue;
    if (line.startsWith('\t') || /^ *\t/.test(line)) return out; // tabs: the parser's message is clear
    const body = trimmed.replace(/\s+#.*$/, '');
    out.push({ no: i + 1, indent, body });
    if (BLOCK_SCALAR.test(trimmed)) blockScalarIndent = indent;
    // a flow collection over several lines: stop here rather than guess its structure
    if (count(body, /[{[]/g) > count(body, /[}\]]/g)) return out;
  }
  return out;
}

const spaces = (n: number): string => `${n} space${n === 1 ? '' : 's'}`;
const keyOf = (l: Line): string | null => KEY_LINE.exec(l.body)?.[1]?.trim() ?? null;
/** Where a line's key starts: its indentation, plus the `- ` of a list item's first key. */
const keyColumn = (l: Line): number => l.indent + (l.body.startsWith('- ') ? l.body.length - l.body.slice(1).trimStart().length : 0);
const named = (l: Line): string => {
  const k = keyOf(l);
  return k === null ? `\`${l.body}\`` : `\`${k}:\``;
};

/** The first badly indented line, explained; null when the structure looks consistent. */
export function explainIndentation(text: string): IndentProblem | null {
  const lines = significantLines(text);
  // open block levels: the indentation of each ancestor's keys (a "- key:" line opens two: the dash and its key)
  const levels: Array<{ indent: number; line: Line }> = [];
  let prev: Line | null = null;
  for (const l of lines) {
    if (prev !== null && l.indent > keyColumn(prev)) {
      const kv = keyWithValue(prev);
      if (kv && !l.body.startsWith('- ') && keyOf(l) !== null) {
        const key = kv.key;
        const own = keyOf(l)!;
        return {
          line: l.no, col: l.indent + 1,
          message: `line ${l.no} is indented under a \`key: value\` line (line ${prev.no}, \`${prev.body}\`), which already has its value, so \`${own}:\` cannot go inside it: ` +
            `indent \`${own}:\` like \`${key}:\` (${spaces(keyColumn(prev))}), or to nest it, write \`${key}:\` with no value on line ${prev.no}`,
        };
      }
    }
    if (prev !== null && l.indent < prev.indent) {
      while (levels.length > 0 && levels[levels.length - 1]!.indent > l.indent) levels.pop();
      const top = levels[levels.length - 1];
      if (top === undefined || top.indent !== l.indent) {
        const parent = top?.line;
        const inItem = parent !== undefined && parent.body.startsWith('- ');
        const under = parent === undefined ? '' : inItem ? ` (in the list item of line ${parent.no})` : ` (under ${named(parent)} on line ${parent.no})`;
        const alt = parent === undefined || inItem ? '' : `, or like ${named(parent)} (${spaces(parent.indent)}) to end the block`;
        return {
          line: l.no, col: l.indent + 1,
          message: `line ${l.no} is indented ${spaces(l.indent)}, which lines up with no key above it${under}: ` +
            `indent it like ${named(prev)} on line ${prev.no} (${spaces(prev.indent)})${alt}`,
        };
      }
    }
    while (levels.length > 0 && levels[levels.length - 1]!.indent >= l.indent) levels.pop();
    levels.push({ indent: l.indent, line: l });
    if (l.body.startsWith('- ')) levels.push({ indent: keyColumn(l), line: l });
    prev = l;
  }
  return null;
}
