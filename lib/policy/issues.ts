/**
 * A problem found in the policy before it has a line and column: where it is (a path into the document,
 * and whether the key or the value is at fault) and what is wrong. load.ts turns these into PolicyErrors.
 */
export type PolicyPath = ReadonlyArray<string | number>;

export interface PolicyIssue {
  readonly path: PolicyPath;
  /** 'key': point at the mapping key (unknown keys, bad names); 'value': at the value (or the parent if absent). */
  readonly at: 'key' | 'value';
  readonly message: string;
}

/** `routes[2].cache.key` — how messages name a place in the file. */
export function formatPath(path: PolicyPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out || '(top level)';
}
