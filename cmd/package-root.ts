import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The directory of bridge-sidecar's package.json above `from` (works from dist/, .build/<name>/ or the image). */
export function packageRoot(from: string = __dirname): string | null {
  for (let dir = from; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'bridge-sidecar') return dir;
    } catch { /* not here */ }
    if (dirname(dir) === dir) return null;
  }
}
