/**
 * Network namespaces for the interception tests: a "pod" and a "client" joined by a veth pair, with
 * addresses of a private /30 that exist only inside them. Everything is created with unique names per run
 * and removed by `destroy()` (processes started in them first, then the namespaces, which takes the veth
 * pair with them).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../helpers/ports';

export interface Started {
  readonly child: ChildProcess;
  /** stdout + stderr so far */
  output(): string;
  /** SIGTERM, then SIGKILL after a grace period; resolves when it has exited. */
  stop(): Promise<void>;
}

export function sh(cmd: string, args: string[], opts: { allowFail?: boolean; env?: NodeJS.ProcessEnv } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, env: opts.env ?? process.env });
  if (!opts.allowFail && r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal ?? r.error?.message}): ${r.stderr}${r.stdout}`);
  }
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export class PodAndClient {
  readonly id = randomBytes(3).toString('hex');
  readonly pod = `bsk-pod-${this.id}`;
  readonly client = `bsk-cli-${this.id}`;
  /** interface names are limited to 15 characters */
  readonly podIf = `bsk${this.id}p`;
  readonly clientIf = `bsk${this.id}c`;
  readonly podAddress = '10.213.0.1';
  readonly clientAddress = '10.213.0.2';
  private readonly children: Started[] = [];
  private created = false;

  create(): void {
    this.created = true;
    sh('ip', ['netns', 'add', this.pod]);
    sh('ip', ['netns', 'add', this.client]);
    sh('ip', ['link', 'add', this.podIf, 'type', 'veth', 'peer', 'name', this.clientIf]);
    sh('ip', ['link', 'set', this.podIf, 'netns', this.pod]);
    sh('ip', ['link', 'set', this.clientIf, 'netns', this.client]);
    sh('ip', ['-n', this.pod, 'addr', 'add', `${this.podAddress}/30`, 'dev', this.podIf]);
    sh('ip', ['-n', this.client, 'addr', 'add', `${this.clientAddress}/30`, 'dev', this.clientIf]);
    for (const [ns, dev] of [[this.pod, this.podIf], [this.client, this.clientIf]]) {
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
  }

  async destroy(): Promise<void> {
    await Promise.all(this.children.map((c) => c.stop()));
    if (!this.created) return;
    for (const ns of [this.pod, this.client]) sh('ip', ['netns', 'del', ns], { allowFail: true });
    // The veth pair goes with the namespaces; remove it by name in case a step failed half-way.
    sh('ip', ['link', 'del', this.podIf], { allowFail: true });
  }

  /** Runs a command inside a namespace and waits for it. */
  exec(ns: string, argv: string[], opts: { allowFail?: boolean; env?: NodeJS.ProcessEnv } = {}) {
    return sh('ip', ['netns', 'exec', ns, ...argv], opts);
  }

  /** Starts a long-running command inside a namespace, optionally as another uid (setpriv). */
  start(ns: string, argv: string[], uid?: number, env?: NodeJS.ProcessEnv): Started {
    const asUser = uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--'];
    const child = spawn('ip', ['netns', 'exec', ns, ...asUser, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const started: Started = {
      child,
      output: () => out,
      stop: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      },
    };
    this.children.push(started);
    return started;
  }

  /** Waits for `text` in the output; fails at once if the process exits first. */
  async waitForLog(p: Started, text: string, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!p.output().includes(text)) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) {
        throw new Error(`${what}: exited with ${p.child.exitCode ?? p.child.signalCode} before logging "${text}":\n${p.output()}`);
      }
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${p.output()}`);
      await sleep(100);
    }
  }

  /** The nat table as iptables-save prints it, without the comment lines (timestamps) and counters. */
  natTable(ns: string): string {
    return this.exec(ns, ['iptables-save', '-t', 'nat']).stdout.split('\n')
      .filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]')).join('\n');
  }
}

export interface HttpResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

// Runs inside a namespace: one request, prints {status, headers, body} as JSON or {error}.
const HTTP_SCRIPT = `
const http = require('node:http');
const [url, method, body] = process.argv.slice(1);
const req = http.request(url, { method, agent: false, timeout: 15000, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
  let data = '';
  res.setEncoding('utf8');
  res.on('data', (d) => { data += d; });
  res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, headers: res.headers, body: data })));
});
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', (e) => { process.stdout.write(JSON.stringify({ error: e.message })); });
req.end(body || undefined);
`;

/** One HTTP request made from inside a namespace (optionally as another uid). */
export function httpFrom(net: PodAndClient, ns: string, url: string, opts: { method?: string; body?: string; uid?: number } = {}): HttpResult {
  const asUser = opts.uid === undefined ? [] : ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', '--'];
  const r = net.exec(ns, [...asUser, process.execPath, '-e', HTTP_SCRIPT, url, opts.method ?? 'GET', opts.body ?? '']);
  const parsed = JSON.parse(r.stdout) as HttpResult & { error?: string };
  if (parsed.error) throw new Error(`${opts.method ?? 'GET'} ${url} from ${ns}: ${parsed.error}`);
  return parsed;
}

/**
 * Fails with a clear message when `uid` cannot read the files a test runs under it (a checkout below a
 * private home directory, say), instead of a confusing error from the process started later.
 */
export function assertReadableBy(uid: number, paths: readonly string[]): void {
  for (const p of paths) {
    const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', 'test', '-r', p], { encoding: 'utf8' });
    if (r.status !== 0) {
      throw new Error(`uid ${uid} cannot read ${p}: this test runs the sidecar (or the CLI) as that uid; check out and build the repository under world-readable directories`);
    }
  }
}

/**
 * A path to the repository that `uids` can read. A checkout below a private directory (a CI runner's home,
 * say) cannot be traversed by other uids; then the checkout is bind-mounted (as root) at a fresh world-readable
 * temp dir, so the sidecar can run as its own uid without copying anything. `release()` unmounts it.
 */
export function readableRepo(root: string, uids: readonly number[], probe: string): { root: string; release(): void } {
  const readable = (base: string) => uids.every((uid) =>
    spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', 'test', '-r', join(base, probe)]).status === 0);
  if (readable(root)) return { root, release() {} };
  const mnt = mkdtempSync(join(tmpdir(), 'bridge-ro-'));
  chmodSync(mnt, 0o755);
  const m = spawnSync('mount', ['--bind', root, mnt], { encoding: 'utf8' });
  if (m.status !== 0 || !readable(mnt)) {
    spawnSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
    throw new Error(`uids ${uids.join(', ')} cannot read ${root} and bind-mounting it elsewhere failed (${m.stderr.trim()}): check out the repository under world-readable directories`);
  }
  return {
    root: mnt,
    release() {
      spawnSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    },
  };
}
