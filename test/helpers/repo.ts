import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The repository root, found from a compiled test file wherever the build put it. */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'tsconfig.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root not found above ' + __dirname);
    dir = up;
  }
}

/** The compiled output root that holds this file (dist/ or .build/<name>/). */
export function buildRoot(): string {
  // this file is <build>/test/helpers/repo.js
  return dirname(dirname(__dirname));
}
