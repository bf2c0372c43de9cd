/**
 * A ConfigMap volume as the kubelet writes it (pkg/volume/util/atomic_writer.go), for tests of reading and
 * reloading a mounted policy:
 *
 *   dir/..2026_11_25_10_00_00.123456789/policy.yaml   the payload, in a timestamped directory
 *   dir/..data -> ..2026_11_25_10_00_00.123456789     swapped atomically on every update
 *   dir/policy.yaml -> ..data/policy.yaml             the user-visible name, never changes
 *
 * An update writes a new timestamped directory, points a `..data_tmp` symlink at it, renames that over
 * `..data` (the one atomic step), adds/removes user-visible links, then deletes the old directory. The file
 * a process opened by its user-visible name therefore never changes in place: a watcher of `policy.yaml`
 * sees no event on it, only on `..data` and the directories.
 */
import { lstatSync, mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const DATA = '..data';
const DATA_TMP = '..data_tmp';

let sequence = 0;

/** `..2006_01_02_15_04_05.` + digits, as the kubelet names them (MkdirTemp on that prefix). */
function timestampDirName(now = new Date()): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const stamp = `${now.getUTCFullYear()}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}`;
  sequence = (sequence + 1) % 1000;
  return `..${stamp}.${String(process.pid % 1_000_000).padStart(6, '0')}${p(sequence, 3)}`;
}

function currentDataDir(dir: string): string | null {
  try {
    return readlinkSync(join(dir, DATA));
  } catch {
    return null;
  }
}

/** Names of the files currently published (the user-visible links). */
export function publishedFiles(dir: string): string[] {
  const data = currentDataDir(dir);
  return data ? readdirSync(join(dir, data)) : [];
}

/** Writes `files` the way the kubelet updates a ConfigMap volume; returns the new timestamped directory name. */
export function atomicUpdate(dir: string, files: Readonly<Record<string, string>>): string {
  for (const name of Object.keys(files)) {
    if (name.includes('/') || name.startsWith('..')) throw new Error(`atomic writer: unsupported file name ${name}`);
  }
  const oldDir = currentDataDir(dir);
  const oldNames = publishedFiles(dir);
  // 1. the payload, in a fresh timestamped directory
  let tsDir = timestampDirName();
  while (existsSync(join(dir, tsDir))) tsDir = timestampDirName();
  mkdirSync(join(dir, tsDir), { mode: 0o755 });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, tsDir, name), content, { mode: 0o644 });
  // 2. ..data_tmp -> the new directory, renamed over ..data: the switch is one atomic rename
  rmSync(join(dir, DATA_TMP), { force: true });
  symlinkSync(tsDir, join(dir, DATA_TMP));
  renameSync(join(dir, DATA_TMP), join(dir, DATA));
  // 3. user-visible links for new names, removal of names no longer published
  for (const name of Object.keys(files)) {
    const link = join(dir, name);
    if (!isSymlink(link)) symlinkSync(join(DATA, name), link);
  }
  for (const name of oldNames) if (!(name in files)) rmSync(join(dir, name), { force: true });
  // 4. the old payload goes last
  if (oldDir) rmSync(join(dir, oldDir), { recursive: true, force: true });
  return tsDir;
}

/** Creates `dir` (if needed) and publishes the first version of `files` in it. */
export function createAtomicWriterDir(dir: string, files: Readonly<Record<string, string>>): string {
  mkdirSync(dir, { recursive: true });
  return atomicUpdate(dir, files);
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
