/**
 * Where the policy is, before anything reads it: the path given (flag, environment, default) may be the file
 * itself or the directory a ConfigMap is mounted at, which then must hold `policy.yaml`. A path that leads to
 * no file is a usage mistake, not a policy problem: it gets one line that says what to do, and the command
 * exits 2 (an invalid policy exits 1 with FILE:LINE:COL lines).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';

export const POLICY_FILE_NAME = 'policy.yaml';

export type PolicyLocation = { ok: true; file: string } | { ok: false; message: string };

/** `how` names where the path came from, for the message (e.g. "--policy", "$BRIDGE_SIDECAR_POLICY"). */
export function locatePolicy(path: string, how: string): PolicyLocation {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return { ok: false, message: `policy file ${path} does not exist (from ${how}): give an existing file with --policy FILE` };
    }
    return { ok: false, message: `cannot read the policy at ${path} (from ${how}): ${(e as Error).message}` };
  }
  if (!isDir) return { ok: true, file: path };
  const inside = join(path, POLICY_FILE_NAME);
  try {
    if (statSync(inside).isFile()) return { ok: true, file: inside };
  } catch { /* reported below */ }
  return { ok: false, message: `policy directory ${path} (from ${how}) has no ${POLICY_FILE_NAME}: put the policy there as ${POLICY_FILE_NAME}, or give the file itself with --policy FILE` };
}
