/**
 * Watches the policy file and says when its content changed, in the way that works for Kubernetes ConfigMap
 * volumes as well as for a plain file.
 *
 * A ConfigMap key is a symlink `policy.yaml -> ..data/policy.yaml`, and `..data` is itself a symlink to a
 * timestamped directory. The kubelet updates it by writing a new timestamped directory, renaming a new symlink
 * `..data_tmp` over `..data`, then deleting the old directory: the visible path never changes, so a watch on the
 * resolved real path goes deaf after the first update and a plain fs.watch on the file misses most of them. So:
 *  - chokidar watches the DIRECTORY of the visible path at depth 0 and reacts to events on the file itself
 *    (edited in place, replaced by rename) and on the `..`-prefixed kubelet entries (`..data`, the timestamped
 *    directories);
 *  - `unlink` events are never taken as "the policy is gone": every kubelet update deletes the old copy;
 *  - a slow poll re-reads the file and compares its content hash, so an update that no event announced is still
 *    picked up within one poll interval;
 *  - a burst of events is debounced (quiet period, bounded by a maximum wait) into one check of the final content;
 *  - `onChange` is called only when the content hash differs from the last one seen, so an event that changed
 *    nothing (or a poll) costs one read and one hash.
 *
 * The watcher only says "the content changed"; parsing, validating and applying is the caller's job.
 */
import { basename, dirname, resolve } from 'node:path';
import { open } from 'node:fs/promises';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from '../observe/logger';
import { MAX_POLICY_BYTES, policyVersion } from './load';

export interface PolicyWatcherOptions {
  /** The policy path as the operator gave it (the visible path: never resolve its symlinks). */
  file: string;
  /** Content hash (policyVersion) of the policy in force, so a change made before start() is still noticed. */
  initialVersion: string;
  /** Called once per debounced content change, with a short reason for the log. */
  onChange(why: string): void;
  /** Quiet period after the last event before the file is read. Default 200 ms. */
  debounceMs?: number;
  /** A burst that never goes quiet is still checked after this long. Default 2 s. */
  maxWaitMs?: number;
  /** Content-hash poll interval; 0 turns the poll off. Default 5 s. */
  pollMs?: number;
  /** Set false to rely on the poll alone (filesystems without inotify). Default true. */
  events?: boolean;
  log?: Logger;
}

export const DEFAULT_DEBOUNCE_MS = 200;
export const DEFAULT_POLL_MS = 5000;
const READY_TIMEOUT_MS = 5000;

export class PolicyWatcher {
  private readonly file: string;
  private readonly dir: string;
  private readonly name: string;
  private readonly debounceMs: number;
  private readonly maxWaitMs: number;
  private readonly pollMs: number;
  private lastVersion: string;
  private watcher: FSWatcher | null = null;
  private poller: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private burstStartedAt = 0;
  private burstWhy = '';
  private checking: Promise<void> | null = null;
  private recheck: string | null = null;
  /** The last read error logged, so an unreadable file is reported once, not every poll. */
  private unreadable: string | null = null;
  private closed = false;

  constructor(private readonly opts: PolicyWatcherOptions) {
    this.file = resolve(opts.file);
    this.dir = dirname(this.file);
    this.name = basename(this.file);
    this.debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.maxWaitMs = Math.max(opts.maxWaitMs ?? 2000, this.debounceMs);
    this.pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
    this.lastVersion = opts.initialVersion;
  }

  /** Resolves once the directory watch is in place (or at once when events are off). */
  async start(): Promise<void> {
    if (this.opts.events !== false) {
      const w = watch(this.dir, {
        depth: 0,
        ignoreInitial: true,
        persistent: true,
        // only the policy file and the kubelet's `..` entries matter; other files in the directory are not watched
        ignored: (p: string) => p !== this.dir && dirname(p) === this.dir && !this.relevant(basename(p)),
      });
      this.watcher = w;
      w.on('all', (event: string, path: string) => this.onEvent(event, path));
      w.on('error', (err: unknown) => this.opts.log?.warn({ err: String(err), dir: this.dir }, 'policy watch error: the content poll still runs'));
      // a watch that cannot be set up (inotify limits reached) must not hold up start-up: the poll still runs
      const ready = await new Promise<boolean>((r) => {
        const t = setTimeout(() => r(false), READY_TIMEOUT_MS);
        w.once('ready', () => { clearTimeout(t); r(true); });
      });
      if (!ready) this.opts.log?.warn({ dir: this.dir }, `policy directory watch not ready after ${READY_TIMEOUT_MS} ms: relying on the content poll until it is`);
    }
    if (this.pollMs > 0) {
      this.poller = setInterval(() => {
        // a burst in progress will be checked when it goes quiet; a poll now could catch it half-written
        if (this.debounce === null) this.check('poll');
      }, this.pollMs);
      this.poller.unref();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.poller) clearInterval(this.poller);
    if (this.debounce) clearTimeout(this.debounce);
    this.poller = this.debounce = null;
    const w = this.watcher;
    this.watcher = null;
    await w?.close();
    await this.checking;
  }

  /** The content hash last passed to onChange (or the initial one). */
  get version(): string {
    return this.lastVersion;
  }

  private relevant(entry: string): boolean {
    return entry === this.name || entry.startsWith('..');
  }

  private onEvent(event: string, path: string): void {
    // An unlink is never "the policy is gone": each kubelet update deletes the previous timestamped copy, and an
    // editor's save may unlink before it writes. Whatever follows (add, change, the poll) is what counts.
    if (event === 'unlink' || event === 'unlinkDir' || this.closed) return;
    const entry = basename(path);
    if (dirname(resolve(path)) !== this.dir || !this.relevant(entry)) return;
    this.schedule(`${event} ${entry}`);
  }

  private schedule(why: string): void {
    const now = Date.now();
    if (this.debounce === null) {
      this.burstStartedAt = now;
      this.burstWhy = why;
    } else {
      clearTimeout(this.debounce);
    }
    const wait = Math.min(this.debounceMs, Math.max(0, this.burstStartedAt + this.maxWaitMs - now));
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.check(`file watch (${this.burstWhy})`);
    }, wait);
  }

  /** Read and hash the file; call onChange if the content differs from the last seen. Checks never overlap. */
  private check(why: string): void {
    if (this.closed) return;
    if (this.checking) {
      this.recheck = why;
      return;
    }
    this.checking = this.readVersion().then((v) => {
      if (this.closed || v === null || v === this.lastVersion) return;
      this.lastVersion = v;
      try {
        this.opts.onChange(why);
      } catch (err) {
        this.opts.log?.error({ err: String(err) }, 'policy reload failed');
      }
    }).finally(() => {
      this.checking = null;
      const again = this.recheck;
      this.recheck = null;
      if (again !== null) this.check(again);
    });
  }

  /** Content hash of the file now, or null if it cannot be read at this moment (logged once). */
  private async readVersion(): Promise<string | null> {
    try {
      const fh = await open(this.file, 'r');
      try {
        const st = await fh.stat();
        // never slurp a huge file to hash it: its size and mtime stand for it, and the reload reports "too large"
        if (st.size > MAX_POLICY_BYTES) return `too-large:${st.size}:${st.mtimeMs}`;
        const text = (await fh.readFile()).toString('utf8');
        if (this.unreadable !== null) {
          this.unreadable = null;
          this.opts.log?.info({ file: this.opts.file }, 'policy file is readable again');
        }
        return policyVersion(text);
      } finally {
        await fh.close();
      }
    } catch (err) {
      const msg = (err as NodeJS.ErrnoException).code ?? String(err);
      if (this.unreadable !== msg) {
        this.unreadable = msg;
        this.opts.log?.warn({ file: this.opts.file, error: msg }, 'policy file cannot be read right now: the policy in force keeps serving');
      }
      return null;
    }
  }
}
