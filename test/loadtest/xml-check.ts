/**
 * A tiny XML well-formedness check for the SVG files (tags balanced and properly nested, attributes quoted,
 * one root element). Enough to catch a broken writer; not a full XML parser.
 */
export function checkWellFormedXml(text: string): { root: string; rootAttrs: Record<string, string> } {
  const body = text.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  let root: string | null = null;
  let rootAttrs: Record<string, string> = {};
  const TOKEN = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<!--[\s\S]*?-->|([^<]+)|(<)/g;
  let closedRoot = false;
  for (const m of body.matchAll(TOKEN)) {
    if (m[6] !== undefined) throw new Error(`stray "<" at offset ${m.index}: ${body.slice(m.index, m.index! + 40)}`);
    if (m[5] !== undefined) {
      if (/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/i.test(m[5])) throw new Error(`unescaped & in text: ${m[5]}`);
      if (stack.length === 0 && m[5].trim() !== '') throw new Error(`text outside the root: ${m[5]}`);
      continue;
    }
    if (m[2] === undefined) continue; // comment
    const [, closing, name, attrs, selfClosing] = m;
    if (closedRoot) throw new Error(`element <${name}> after the root element closed`);
    if (closing) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open ?? 'nothing'}>`);
      if (stack.length === 0) closedRoot = true;
      continue;
    }
    if (root === null) {
      root = name;
      rootAttrs = Object.fromEntries([...attrs.matchAll(/([\w:-]+)="([^"]*)"/g)].map((a) => [a[1], a[2]]));
    } else if (stack.length === 0) throw new Error(`second root element <${name}>`);
    if (selfClosing) {
      if (stack.length === 0) closedRoot = true;
    } else stack.push(name);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (root === null) throw new Error('no root element');
  return { root, rootAttrs };
}
