/**
 * Real redis-server processes on loopback for tests: a single node, or a 3-master Redis Cluster
 * (optionally with one replica each, for failover tests). Each instance runs in its own temp dir and is
 * killed by stop(). Nothing here is a mock.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'node:net';
import { freePort, waitFor, sleep } from './ports';

export const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';
export const REDIS_CLI = process.env.REDIS_CLI ?? 'redis-cli';

export interface RedisInstance {
  port: number;
  url: string;
  dir: string;
  proc: ChildProcess;
  /** SIGKILL the server (a crash). */
  kill(): Promise<void>;
  /** Start it again on the same port and dir. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    let buf = '';
    s.setTimeout(500, () => { s.destroy(); resolve(false); });
    s.on('error', () => resolve(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => { buf += d.toString(); if (buf.includes('\r\n')) { s.destroy(); resolve(buf.startsWith('+PONG')); } });
  });
}

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((r) => proc.once('exit', () => r()));
}

export async function startRedis(opts: { port?: number; args?: string[] } = {}): Promise<RedisInstance> {
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), `redis-${port}-`));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', ...(opts.args ?? [])];
  const inst: RedisInstance = {
    port, dir, url: `redis://127.0.0.1:${port}`,
    proc: undefined as unknown as ChildProcess,
    async kill() { inst.proc.kill('SIGKILL'); await exited(inst.proc); },
    async restart() { await launch(); },
    async stop() { inst.proc.kill('SIGKILL'); await exited(inst.proc); rmSync(dir, { recursive: true, force: true }); },
  };
  async function launch(): Promise<void> {
    inst.proc = spawn(REDIS_SERVER, args, { stdio: 'ignore' });
    inst.proc.on('error', () => {});
    await waitFor(`redis-server on ${port}`, () => ping(port), 10_000);
  }
  await launch();
  return inst;
}

export interface RedisClusterInstance {
  nodes: RedisInstance[];
  /** host:port of every node, for the policy's redis.cluster list. */
  seeds: string[];
  stop(): Promise<void>;
}

/**
 * A real Redis Cluster of `masters` masters (default 3) and `replicas` replicas per master (default 0),
 * created with `redis-cli --cluster create`.
 */
export async function startRedisCluster(opts: { masters?: number; replicas?: number } = {}): Promise<RedisClusterInstance> {
  const masters = opts.masters ?? 3;
  const replicas = opts.replicas ?? 0;
  const total = masters * (1 + replicas);
  const nodes: RedisInstance[] = [];
  for (let i = 0; i < total; i++) {
    nodes.push(await startRedis({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '1000'] }));
  }
  const seeds = nodes.map((n) => `127.0.0.1:${n.port}`);
  const res = spawnSync(REDIS_CLI, ['--cluster', 'create', ...seeds, '--cluster-replicas', String(replicas), '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
  if (res.status !== 0) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw new Error(`redis-cli --cluster create failed: ${res.stderr || res.stdout}`);
  }
  // wait until every node reports cluster_state:ok
  for (const n of nodes) {
    await waitFor(`cluster_state:ok on ${n.port}`, () => {
      const r = spawnSync(REDIS_CLI, ['-p', String(n.port), 'cluster', 'info'], { encoding: 'utf8' });
      return r.stdout.includes('cluster_state:ok');
    }, 20_000, 100);
  }
  await sleep(200);
  return { nodes, seeds, async stop() { await Promise.all(nodes.map((n) => n.stop())); } };
}
