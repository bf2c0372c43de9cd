/**
 * The processes a benchmark measures: the example draft service and bridge-sidecar, each in its own
 * process (as in a pod), started from the same build as the benchmark (dist/ or .build/<name>/).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocument, type Document } from 'yaml';
import { freePort, startProcess, waitForHttp, type Proc } from './proc';
import { repoRoot } from '../results';
import type { MixEntry } from '../../lib/loadtest/mix';

/** The build root that holds this file: <root>/bench/lib/services.js. */
export const BUILD_ROOT = join(__dirname, '..', '..');

export interface ServiceProcess {
  port: number;
  url: string;
  proc: Proc;
  stop(): Promise<void>;
}

export interface DraftServiceProcessOptions {
  port?: number;
  serviceTime?: string;
  maxConcurrency?: number;
  extraArgs?: string[];
}

/** `node <build>/examples/draft-service/main.js` on a free port; resolves once /get_mask_types answers. */
export async function startDraftServiceProcess(opts: DraftServiceProcessOptions = {}): Promise<ServiceProcess> {
  const port = opts.port ?? (await freePort());
  const args = [join(BUILD_ROOT, 'examples', 'draft-service', 'main.js'), '--port', String(port), '--service-time', opts.serviceTime ?? '0ms',
    '--keep-alive-timeout', '75s'];
  if (opts.maxConcurrency) args.push('--max-concurrency', String(opts.maxConcurrency));
  args.push(...(opts.extraArgs ?? []));
  const proc = startProcess('draft-service', process.execPath, args);
  try {
    await waitForHttp(`http://127.0.0.1:${port}/get_mask_types`, { proc, timeoutMs: 15_000 });
  } catch (e) {
    // a service left running would keep the bench (and the bench lock it holds) alive forever
    await proc.stop();
    throw e;
  }
  return { port, url: `http://127.0.0.1:${port}`, proc, stop: () => proc.stop() };
}

export interface SidecarPorts {
  port: number;
  adminPort: number;
}

export interface SidecarProcess extends SidecarPorts {
  url: string;
  adminUrl: string;
  proc: Proc;
  policyFile: string;
  stop(): Promise<void>;
}

export interface SidecarOptions {
  /**
   * Path answered 200 through the proxy once it is up (default /get_mask_types, the service's cheapest answer);
   * null: wait for the admin /readyz only, sending nothing through the proxy (start-up benchmarks measure the
   * very first requests).
   */
  readyPath?: string | null;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] */
  nodeArgs?: string[];
}

/**
 * `node <build>/cmd/bridge-sidecar.js serve --policy <tmp file>`. `policy` gets two free ports to put in
 * server.listen / server.admin_listen. Resolves once the admin /healthz answers 200 and the proxy answers
 * `readyPath` with 200.
 */
export async function startSidecar(policy: (ports: SidecarPorts) => string, opts: SidecarOptions = {}): Promise<SidecarProcess> {
  const ports = { port: await freePort(), adminPort: await freePort() };
  const dir = mkdtempSync(join(tmpdir(), 'bench-sidecar-'));
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, policy(ports));
  const proc = startProcess('bridge-sidecar', process.execPath, [...(opts.nodeArgs ?? []), join(BUILD_ROOT, 'cmd', 'bridge-sidecar.js'), 'serve', '--policy', policyFile], {
    env: { ...process.env, ...opts.env },
  });
  const stop = async () => {
    await proc.stop(15_000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    await waitForHttp(`http://127.0.0.1:${ports.adminPort}/healthz`, { proc, timeoutMs });
    if (opts.readyPath === null) await waitForHttp(`http://127.0.0.1:${ports.adminPort}/readyz`, { proc, timeoutMs, pollMs: 10 });
    else await waitForHttp(`http://127.0.0.1:${ports.port}${opts.readyPath ?? '/get_mask_types'}`, { proc, timeoutMs });
  } catch (e) {
    await stop();
    throw e;
  }
  return { ...ports, url: `http://127.0.0.1:${ports.port}`, adminUrl: `http://127.0.0.1:${ports.adminPort}`, proc, policyFile, stop };
}

/**
 * A reference Node proxy in front of `upstreamUrl`: bench/lib/bare-proxy.ts (the smallest node:http + undici proxy),
 * or bench/lib/llhttp-proxy.ts (net sockets and node's HTTP parser alone: Node's floor).
 */
export async function startReferenceProxy(upstreamUrl: string, which: 'bare-proxy' | 'llhttp-proxy'): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  const proc = startProcess(which, process.execPath, [join(BUILD_ROOT, 'bench', 'lib', `${which}.js`), upstreamUrl, String(port)]);
  await proc.waitForLine('listening', 15_000);
  return { url: `http://127.0.0.1:${port}`, pid: proc.child.pid!, stop: () => proc.stop() };
}

/**
 * examples/demo-policy.yaml (the example's routes, limits and cache, without Redis) in front of `upstreamUrl` on
 * the given ports: `workers` workers, quiet logs, its disk cache at `l3Path(port)`, no cache warm-up or
 * auto-tuning; `edit` changes anything else.
 */
export function demoPolicy(upstreamUrl: string, opts: { workers: number; l3Path: (port: number) => string; edit?: (doc: Document) => void }): (p: SidecarPorts) => string {
  return (p) => {
    const doc = parseDocument(readFileSync(join(repoRoot(), 'examples', 'demo-policy.yaml'), 'utf8'));
    doc.setIn(['server', 'listen'], `127.0.0.1:${p.port}`);
    doc.setIn(['server', 'admin_listen'], `127.0.0.1:${p.adminPort}`);
    doc.setIn(['server', 'workers'], opts.workers);
    doc.setIn(['server', 'log_level'], 'warn');
    doc.setIn(['upstream', 'url'], upstreamUrl);
    doc.setIn(['cache', 'l3', 'path'], opts.l3Path(p.port));
    doc.setIn(['cache', 'warmup', 'enabled'], false);
    doc.setIn(['auto_tuning', 'enabled'], false);
    opts.edit?.(doc);
    return doc.toString();
  };
}

/** The smallest policy: a transparent proxy in front of `upstreamUrl` (no routes, no features). */
export function passThroughPolicy(upstreamUrl: string, workers: number, logLevel = 'warn', poolPerWorker: number | null = null): (p: SidecarPorts) => string {
  return (p) => `# bench: pass-through, nothing but server and upstream
version: 1
server:
  listen: 127.0.0.1:${p.port}
  admin_listen: 127.0.0.1:${p.adminPort}
  workers: ${workers}
  log_level: ${logLevel}
upstream:
  url: ${upstreamUrl}
${poolPerWorker === null ? '' : `  pool: { max_connections_per_host: ${poolPerWorker} }\n`}`;
}

/** The example's cached POST read, as a policy `routes:` entry (the read-heavy mix and the CPU bench use it). */
export const QUERY_SCRIPT_ROUTE = `  - name: query_script
    match: { method: POST, path: /query_script, body: { force_update: false } }
    params: { draft_id: body.draft_id }
    cache: { key: "draft:{draft_id}:script", ttl: 5m, store_if: { "response.success": true } }`;

/**
 * The mix, driven by the `bridge-sidecar loadtest` engine (open loop, one keep-alive connection per request in
 * flight, latency from each request's due time into an HdrHistogram): 90 % reads of 1,000 drafts, 10 % writes,
 * both Zipf-distributed over the drafts (the popular drafts are the ones both read and edited).
 */
export const DRAFT_MIX: MixEntry[] = [
  { name: 'read', method: 'POST', path: '/query_script', headers: [['content-type', 'application/json']], weight: 9,
    body: '{"draft_id":"dft_{zipf:000001-001000}","force_update":false}' },
  { name: 'write', method: 'POST', path: '/add_text', headers: [['content-type', 'application/json']], weight: 1,
    body: '{"draft_id":"dft_{zipf:000001-001000}","text":"hello","start":0,"end":1}' },
];
