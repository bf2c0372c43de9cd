/**
 * Shared pieces of the hot-reload tests: a tiny upstream that counts its TCP connections, the real sidecar
 * started on a ConfigMap-style (atomic writer) or plain policy directory, a bounded load loop, and /metrics and
 * /policy readers. Nothing is mocked.
 */
import { createServer, request, Agent, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSidecar, type SidecarProcess } from '../helpers/sidecar';
import { createAtomicWriterDir } from '../helpers/atomic-writer';

export interface CountingUpstream {
  port: number;
  /** TCP connections accepted so far. */
  connections(): number;
  requests(): number;
  close(): Promise<void>;
}

/** Answers every request 200 with a small JSON body; `?delay=MS` answers after MS. Keep-alive for 60 s. */
export async function startCountingUpstream(): Promise<CountingUpstream> {
  let connections = 0;
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
    req.resume();
    req.on('end', () => {
      const send = () => {
        const body = JSON.stringify({ path: req.url, n: requests });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      };
      if (delay > 0) setTimeout(send, Math.min(delay, 10_000));
      else send();
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    requests: () => requests,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

export interface ReloadSidecar extends SidecarProcess {
  /** The directory holding policy.yaml (the mount point). */
  mount: string;
}

/**
 * The real `serve` on `yaml`. layout 'configmap': the mount is laid out exactly like a kubelet ConfigMap volume
 * (policy.yaml -> ..data/policy.yaml -> ..<timestamp>/policy.yaml); 'plain': policy.yaml is a regular file.
 */
export async function startReloadSidecar(
  t: { after(fn: () => unknown): void },
  yaml: string,
  opts: { layout?: 'configmap' | 'plain'; env?: Record<string, string> } = {},
): Promise<ReloadSidecar> {
  const root = mkdtempSync(join(tmpdir(), 'bridge-sidecar-reload-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const mount = join(root, 'config');
  if ((opts.layout ?? 'configmap') === 'configmap') createAtomicWriterDir(mount, { 'policy.yaml': yaml });
  // startSidecar (re)writes policy.yaml with the same content; through the symlink for the ConfigMap layout
  const sc = await startSidecar(yaml, { dir: (opts.layout ?? 'configmap') === 'configmap' ? mount : mkdirp(mount), env: opts.env });
  t.after(() => sc.stop());
  return Object.assign(sc, { mount });
}

function mkdirp(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

export interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

export function get(url: string, opts: { agent?: Agent | false; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: opts.agent ?? false, headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.setTimeout(opts.timeoutMs ?? 15_000, () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export interface PolicyView {
  version: string;
  file: string;
  policy: { server: { listen: { host: string; port: number } }; routes: Array<{ name: string }> } & Record<string, unknown>;
  restart_pending: Array<{ key: string; running: unknown; file: unknown }>;
  last_reload: { result: string; version: string; why: string; changed?: string[]; errors?: string[] } | null;
  workers: Array<{ worker: number; version: string }>;
}

export async function policyView(sc: SidecarProcess): Promise<PolicyView> {
  const r = await get(sc.adminUrl + '/policy');
  if (r.status !== 200) throw new Error(`/policy answered ${r.status}`);
  return JSON.parse(r.body) as PolicyView;
}

/** Sum of the samples of `name` whose label set contains every `labels` pair (e.g. 'endpoint="a"'). */
export function sumSeries(metrics: string, name: string, ...labels: string[]): number {
  let sum = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line[name.length];
    if (rest !== '{' && rest !== ' ') continue;
    if (labels.every((l) => line.includes(l))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export async function metricsText(sc: SidecarProcess): Promise<string> {
  return (await get(sc.adminUrl + '/metrics')).body;
}

export interface LoadResult {
  ok: number;
  failures: string[];
  statuses: Map<number, number>;
}

/**
 * `connections` keep-alive clients each send requests back to back to `url + path()` until stop() (or maxMs, or
 * maxRequests in all): a bounded loop. Any status other than `okStatuses`, or any socket error, is a failure.
 */
export function startLoad(url: string, opts: { connections?: number; path?: () => string; maxMs?: number; maxRequests?: number; okStatuses?: number[] } = {}) {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.connections ?? 8 });
  const okStatuses = new Set(opts.okStatuses ?? [200]);
  const result: LoadResult = { ok: 0, failures: [], statuses: new Map() };
  const deadline = Date.now() + (opts.maxMs ?? 90_000);
  const maxRequests = opts.maxRequests ?? 200_000;
  let sent = 0;
  let stopped = false;
  const loop = async () => {
    while (!stopped && Date.now() < deadline && sent < maxRequests) {
      sent++;
      try {
        const r = await get(url + (opts.path ? opts.path() : '/load'), { agent });
        result.statuses.set(r.status, (result.statuses.get(r.status) ?? 0) + 1);
        if (okStatuses.has(r.status)) result.ok++;
        else result.failures.push(`${r.status} ${r.body.slice(0, 200)}`);
      } catch (e) {
        result.failures.push(String(e));
      }
    }
  };
  const loops = Array.from({ length: opts.connections ?? 8 }, loop);
  return {
    result,
    async stop(): Promise<LoadResult> {
      stopped = true;
      await Promise.all(loops);
      agent.destroy();
      return result;
    },
  };
}
