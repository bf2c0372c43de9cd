/**
 * A temporary directory for one test, removed when the test ends.
 *
 * node:test runs a test's `after` hooks in the order they were registered, so this removal runs before the
 * hooks of what the test started later (a sidecar whose L3 is in the directory may still be writing when it
 * runs). The removal retries, and if files keep coming it gives up quietly and tries once more as the test
 * process exits: a hook that throws stops the hooks after it, and a sidecar left running then kept the test
 * file alive until its 300 s timeout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempDir(t: { after(fn: () => void | Promise<void>): void }, prefix = 'bridge-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => removeDir(d));
  return d;
}

function removeDir(d: string): void {
  try {
    rmSync(d, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  } catch {
    process.once('exit', () => {
      try { rmSync(d, { recursive: true, force: true }); } catch { /* left in the temp directory */ }
    });
  }
}
