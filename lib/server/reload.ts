/**
 * Policy reload in the primary (or the single process): triggered by the file watcher (lib/policy/watch.ts) or
 * by SIGHUP.
 *
 * A reload reads, parses and validates the WHOLE new file first:
 *  - invalid: nothing changes; the old policy keeps serving, the errors are logged as FILE:LINE:COL lines,
 *    policy_reloads_total{result="error"} counts it and /policy still shows the old version;
 *  - same content hash as the policy in force: a no-op (policy_reloads_total{result="unchanged"});
 *  - valid: the effective policy (start-only settings held, see policy-diff.ts) is handed to the primary's
 *    services and to every worker, which swaps its per-request Pipeline snapshot in one assignment;
 *    policy_info{version} shows the new hash and the log line lists what changed.
 * Workers report the version they applied, so /policy shows which worker runs which version.
 */
import { deepFreeze, formatErrors, loadPolicyFile } from '../policy/load';
import type { LoadedPolicy } from '../policy/types';
import { PolicyWatcher, DEFAULT_DEBOUNCE_MS, DEFAULT_POLL_MS } from '../policy/watch';
import { parseDuration } from '../policy/units';
import type { Logger } from '../observe/logger';
import type { PrimaryMetrics } from '../observe/metrics';
import type { PrimaryServices } from '../core/component';
import { changeDetails, describeChanges, effectivePolicy, runningSettings, type ChangeDetail, type PendingRestart, type RunningSettings } from './policy-diff';

export interface ReloadDeps {
  policyFile: string;
  /** The pod state whose `loaded` is the effective policy in force (read by /readyz, /policy, new workers). */
  state: { loaded: LoadedPolicy };
  services: readonly PrimaryServices[];
  metrics: PrimaryMetrics;
  log: Logger;
  /** Hands the new effective policy to every proxy (the local one, or a broadcast to the workers). */
  applyToProxies(next: LoadedPolicy): void;
}

/** What a worker reports after a `policy:apply` (and once at start). */
export interface WorkerPolicyReport {
  version: string;
  error?: string;
}

export type ReloadResult = 'success' | 'error' | 'unchanged';

interface LastReload {
  at: string;
  why: string;
  result: ReloadResult;
  version: string;
  changed?: string[];
  /** The changed settings with their values before and after (secrets redacted). */
  diff?: ChangeDetail[];
  errors?: string[];
}

/** Reloads remembered for the status page. */
const HISTORY = 10;

/**
 * How the file is watched: `on` (default) directory events plus the content poll; `poll` the poll alone (for
 * filesystems without inotify); `off` no watching at all, reload only on SIGHUP.
 */
export type WatchMode = 'on' | 'poll' | 'off';

/** Watcher timings from the environment (extension: not policy keys, since the watcher reads the policy). */
export function watcherTimings(env: NodeJS.ProcessEnv = process.env): { mode: WatchMode; debounceMs: number; pollMs: number } {
  const read = (name: string, dflt: number): number => {
    const v = env[name];
    if (v === undefined || v === '') return dflt;
    try {
      return parseDuration(v);
    } catch {
      return dflt;
    }
  };
  const m = (env.BRIDGE_SIDECAR_RELOAD_WATCH ?? 'on').toLowerCase();
  const mode: WatchMode = m === 'off' || m === 'poll' ? m : 'on';
  return {
    mode,
    debounceMs: read('BRIDGE_SIDECAR_RELOAD_DEBOUNCE', DEFAULT_DEBOUNCE_MS),
    pollMs: read('BRIDGE_SIDECAR_RELOAD_POLL', DEFAULT_POLL_MS),
  };
}

export class PolicyReloader {
  private readonly running: RunningSettings;
  private pending: readonly PendingRestart[] = [];
  private last: LastReload | null = null;
  private readonly recent: LastReload[] = [];
  private readonly workers = new Map<number, WorkerPolicyReport & { at: string }>();
  private watcher: PolicyWatcher | null = null;

  constructor(private readonly d: ReloadDeps) {
    this.running = runningSettings(d.state.loaded.policy);
  }

  /** Load, validate and apply the file now. Synchronous: two reloads never interleave. */
  reload(why: string): ReloadResult {
    const { state, metrics, log } = this.d;
    const r = loadPolicyFile(this.d.policyFile);
    if (!r.ok) {
      metrics.policyReloads.inc({ result: 'error' });
      metrics.policyReloadSuccessful.set(0);
      const errors = formatErrors(r.errors).split('\n');
      this.remember({ at: new Date().toISOString(), why, result: 'error', version: state.loaded.version, errors });
      log.error({ why, error: errors[0], errors, kept_version: state.loaded.version },
        'policy reload refused: the old policy keeps serving');
      return 'error';
    }
    if (r.loaded.version === state.loaded.version) {
      metrics.policyReloads.inc({ result: 'unchanged' });
      metrics.policyReloadSuccessful.set(1);
      log.debug({ why, version: r.loaded.version }, 'policy unchanged');
      return 'unchanged';
    }
    const eff = effectivePolicy(this.running, r.loaded.policy);
    const next = deepFreeze({ ...r.loaded, policy: eff.policy });
    const prev = state.loaded;
    const changes = describeChanges(prev.policy, next.policy);

    state.loaded = next;
    log.level = next.policy.server.log_level;
    for (const s of this.d.services) {
      try {
        s.configure(next);
      } catch (err) {
        log.error({ err: String(err) }, 'a pod service failed to take the new policy');
      }
    }
    this.d.applyToProxies(next);
    metrics.policyReloads.inc({ result: 'success' });
    metrics.policyReloadSuccessful.set(1);
    metrics.setPolicyVersion(next.version);
    const diff = changeDetails(prev.policy, next.policy, changes.changed);
    this.remember({ at: new Date().toISOString(), why, result: 'success', version: next.version, changed: changes.changed, diff });
    log.info({ why, from: prev.version, to: next.version, changed: changes.changed }, 'policy reloaded');
    this.reportPending(eff.pending);
    return 'success';
  }

  private remember(r: LastReload): void {
    this.last = r;
    this.recent.unshift(r);
    if (this.recent.length > HISTORY) this.recent.pop();
  }

  /** The last reloads, newest first (successes with their diff, refusals with their errors). */
  history(): readonly LastReload[] {
    return this.recent;
  }

  /** Start-only settings that differ in the file are said loudly, once per distinct set. */
  private reportPending(pending: readonly PendingRestart[]): void {
    const key = (ps: readonly PendingRestart[]) => JSON.stringify(ps);
    if (key(pending) === key(this.pending)) return;
    this.pending = pending;
    if (pending.length === 0) {
      this.d.log.info('the policy file matches the running start-only settings again: no restart pending');
      return;
    }
    this.d.log.warn({
      restart_needed: pending.map((p) => p.key),
      pending: pending.map((p) => ({ key: p.key, running: p.running, file: p.file })),
    }, `RESTART NEEDED: ${pending.map((p) => p.key).join(', ')} changed in the policy file; these take effect only after a restart (the running values stay in force, everything else is applied now)`);
  }

  workerReported(id: number, report: WorkerPolicyReport): void {
    this.workers.set(id, { ...report, at: new Date().toISOString() });
    if (report.error) this.d.log.error({ worker: id, version: report.version, error: report.error }, 'a worker failed to apply the policy and keeps its previous one');
  }

  workerGone(id: number): void {
    this.workers.delete(id);
  }

  /** For /policy: the pending restart, the last reload, and which worker runs which version. */
  status(): Record<string, unknown> {
    return {
      restart_pending: this.pending,
      last_reload: this.last,
      workers: [...this.workers.entries()].sort((a, b) => a[0] - b[0]).map(([id, w]) => ({ worker: id, version: w.version, applied_at: w.at, ...(w.error ? { error: w.error } : {}) })),
    };
  }

  async watch(): Promise<void> {
    const t = watcherTimings();
    if (t.mode === 'off') {
      this.d.log.info({ file: this.d.policyFile }, 'policy file watching is off (BRIDGE_SIDECAR_RELOAD_WATCH=off): reload with SIGHUP');
      return;
    }
    this.watcher = new PolicyWatcher({
      file: this.d.policyFile,
      initialVersion: this.d.state.loaded.version,
      onChange: (why) => this.reload(why),
      debounceMs: t.debounceMs,
      pollMs: t.pollMs,
      events: t.mode === 'on',
      log: this.d.log,
    });
    await this.watcher.start();
    this.d.log.debug({ file: this.d.policyFile, mode: t.mode, debounce_ms: t.debounceMs, poll_ms: t.pollMs }, 'watching the policy file');
  }

  async close(): Promise<void> {
    await this.watcher?.close();
    this.watcher = null;
  }
}
