/**
 * .dockerignore matching as Docker does it (patterns anchored at the context root, `*` within one path
 * segment, `**` across segments, `!` re-includes, the last matching line wins, a match on a directory
 * covers everything below it).
 */
import { readFileSync } from 'node:fs';

interface Rule { readonly negate: boolean; readonly re: RegExp }

function toRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') { re += '.*'; i++; if (pattern[i + 1] === '/') i++; }
    else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}(/.*)?$`);
}

export function readDockerignore(path: string): Rule[] {
  return readFileSync(path, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const p = (negate ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
      return { negate, re: toRegExp(p) };
    });
}

/** True when `relPath` (relative to the context root, '/' separated) is left out of the build context. */
export function isIgnored(rules: readonly Rule[], relPath: string): boolean {
  let ignored = false;
  for (const r of rules) if (r.re.test(relPath)) ignored = !r.negate;
  return ignored;
}
