/**
 * Reading V8 `.cpuprofile` files (node --cpu-prof) into what fits in a repository: a table of the functions
 * with the most self time, folded stacks (the input of flamegraph.pl / speedscope / inferno), and a small
 * self-contained SVG flame graph. The raw profiles are megabytes; these are kilobytes.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; hitCount?: number; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; samples?: number[] }

interface Tree { name: string; self: number; total: number; children: Map<string, Tree> }

/** "fn (file:line)" with the path cut to what tells the function apart (node:internal, lib/..., dist/...). */
function frameName(f: CallFrame): string {
  const fn = f.functionName || '(anonymous)';
  if (!f.url) return fn;
  let file = f.url.replace(/^file:\/\//, '');
  const at = file.search(/\/(dist|node_modules)\//);
  if (at !== -1) file = file.slice(at + 1);
  else if (!file.startsWith('node:')) file = basename(file);
  return `${fn} ${file}:${f.lineNumber + 1}`;
}

/** The profile as a tree of frames by name (recursion keeps its depth), with self and total sample counts. */
export function loadProfile(file: string): Tree {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const hits = new Map<number, number>();
  if (p.samples) for (const id of p.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const childIds = new Set(p.nodes.flatMap((n) => n.children ?? []));
  const root: Tree = { name: 'all', self: 0, total: 0, children: new Map() };
  const walk = (n: ProfileNode, into: Tree): number => {
    const name = frameName(n.callFrame);
    if (name === '(root)') {
      let t = 0;
      for (const c of n.children ?? []) t += walk(byId.get(c)!, into);
      return t;
    }
    let node = into.children.get(name);
    if (!node) into.children.set(name, (node = { name, self: 0, total: 0, children: new Map() }));
    const self = hits.get(n.id) ?? n.hitCount ?? 0;
    node.self += self;
    let total = self;
    for (const c of n.children ?? []) total += walk(byId.get(c)!, node);
    node.total += total;
    return total;
  };
  for (const n of p.nodes) if (!childIds.has(n.id)) root.total += walk(n, root);
  return root;
}

/** The `limit` frames with the most self time, across the whole tree, as a Markdown table. */
export function topSelf(tree: Tree, limit = 25): string {
  const self = new Map<string, number>();
  const visit = (t: Tree) => {
    for (const c of t.children.values()) {
      self.set(c.name, (self.get(c.name) ?? 0) + c.self);
      visit(c);
    }
  };
  visit(tree);
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, limit);
  const out = ['| self % | function |', '|---:|---|'];
  for (const [name, n] of rows) out.push(`| ${((100 * n) / Math.max(1, tree.total)).toFixed(1)} | \`${name.replace(/\|/g, '\\|')}\` |`);
  return out.join('\n');
}

/** Folded stacks ("a;b;c count" per line), frames under `minShare` of the samples left out. */
export function folded(tree: Tree, minShare = 0.002): string {
  const lines: string[] = [];
  const min = tree.total * minShare;
  const visit = (t: Tree, path: string) => {
    for (const c of t.children.values()) {
      if (c.total < min) continue;
      const p = path ? `${path};${c.name}` : c.name;
      if (c.self > 0) lines.push(`${p.replace(/ /g, '_')} ${c.self}`);
      visit(c, p);
    }
  };
  visit(tree, '');
  return lines.join('\n') + '\n';
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A flame graph (root at the bottom) as a standalone SVG; frames narrower than ~0.2 % are left out. */
export function flameSvg(tree: Tree, title: string, width = 1200): string {
  const rowH = 16;
  const rects: string[] = [];
  let depthMax = 0;
  const scale = (width - 20) / Math.max(1, tree.total);
  const visit = (t: Tree, x: number, depth: number) => {
    depthMax = Math.max(depthMax, depth);
    let cx = x;
    for (const c of [...t.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      const w = c.total * scale;
      if (w >= 2) {
        rects.push(`${cx.toFixed(1)}|${depth}|${w.toFixed(1)}|${c.name}|${((100 * c.total) / tree.total).toFixed(1)}`);
        visit(c, cx, depth + 1);
      }
      cx += w;
    }
  };
  visit(tree, 10, 0);
  const height = (depthMax + 2) * rowH + 40;
  const body = rects.map((r) => {
    const [x, d, w, name, pct] = r.split('|');
    const y = height - 20 - (Number(d) + 1) * rowH;
    const hue = name!.includes('node_modules') ? 40 : name!.includes('dist/') ? 10 : name!.includes('node:') ? 200 : 280;
    const label = Number(w) > 40 ? `<text x="${Number(x) + 3}" y="${y + 11}">${esc(name!.slice(0, Math.floor(Number(w) / 6.5)))}</text>` : '';
    return `<g><title>${esc(name!)} (${pct}%)</title><rect x="${x}" y="${y}" width="${w}" height="${rowH - 1}" fill="hsl(${hue},70%,${60 + (Number(d) % 3) * 6}%)"/>${label}</g>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace" font-size="10">
<text x="10" y="16" font-size="13">${esc(title)} (${tree.total} samples; hover for names; orange: dependencies, red: bridge-sidecar, blue: node internals)</text>
${body.join('\n')}
</svg>
`;
}
