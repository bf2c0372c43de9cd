/**
 * bench/RESULTS.md is shared by every benchmark: each owns one `## <title>` section and rewrites only
 * that one, so figures from different benches (and engineers) live side by side.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The repository root (the directory with package.json and tsconfig.json above the build). */
export function repoRoot(from = __dirname): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'tsconfig.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`repository root not found above ${from}`);
    dir = up;
  }
}

export const RESULTS_FILE = (): string => join(repoRoot(), 'bench', 'RESULTS.md');

const HEADER = '# Benchmark results\n\nEach section is written by one benchmark (`bench/*.ts`); re-running it replaces only its section.\n';

/**
 * Replaces the section `## title` of `text` with `markdown` (the section's body, without the heading), or
 * appends it. A section runs until the next `## ` heading.
 */
export function replaceSection(text: string, title: string, markdown: string): string {
  const heading = `## ${title}`;
  const body = `${heading}\n\n${markdown.trim()}\n`;
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trimEnd() === heading);
  if (start === -1) return `${text.trimEnd()}\n\n${body}`;
  let end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  if (end === -1) end = lines.length;
  const before = lines.slice(0, start).join('\n').trimEnd();
  const after = lines.slice(end).join('\n').trim();
  return `${before}\n\n${body}${after ? `\n${after}\n` : ''}`;
}

/** Writes the section into bench/RESULTS.md (or `file`), creating the file if needed. */
export function updateSection(title: string, markdown: string, file: string = RESULTS_FILE()): void {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : HEADER;
  writeFileSync(file, replaceSection(text, title, markdown));
}
