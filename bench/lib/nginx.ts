/**
 * nginx as the reference reverse proxy: configured like the sidecar's pass-through (upstream keep-alive,
 * HTTP/1.1 to the upstream, no access log), run in the foreground from a temp dir so nothing outside it
 * is touched (`nginx -c <conf> -p <dir> -e <dir>/error.log`).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startProcess, waitForHttp } from './proc';

export const NGINX = process.env.NGINX ?? '/usr/sbin/nginx';

export interface NginxOptions {
  upstreamPort: number;
  upstreamHost?: string;
  workers?: number;
  /** upstream keepalive connections per worker */
  keepalive?: number;
  /** default: a free port */
  port?: number;
  /** path that answers 200 through the proxy, to know it is up (default /get_mask_types, the service's cheapest answer) */
  readyPath?: string;
}

export interface NginxInstance {
  port: number;
  url: string;
  conf: string;
  /** the master process (its workers are its children) */
  pid: number;
  stop(): Promise<void>;
}

/**
 * The start of every bench nginx.conf: foreground, files under `dir`, no access log, long keep-alive, and the
 * `http {` block opened (the caller adds its directives and closes it).
 */
export function nginxPreamble(dir: string, workers = 1): string {
  return `worker_processes ${workers};
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_timeout 65s;
  keepalive_requests 100000;`;
}

/**
 * The `location` directives every bench nginx passes a request on with: to the `upstream` block named so, over
 * HTTP/1.1 with keep-alive (Connection emptied), as bridge-sidecar's pool does. One line each, indented for a
 * `location` inside `server`.
 */
export function keepAliveProxyPass(upstream: string): string {
  return `      proxy_pass http://${upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
`;
}

export function nginxProxyConf(dir: string, o: Required<Omit<NginxOptions, 'readyPath'>>): string {
  return `# bench: nginx as a pass-through reverse proxy, configured like bridge-sidecar's pass-through
${nginxPreamble(dir, o.workers)}
  upstream draft_service {
    server ${o.upstreamHost}:${o.upstreamPort};
    keepalive ${o.keepalive};
    keepalive_requests 100000;
  }
  server {
    listen 127.0.0.1:${o.port};
    location / {
${keepAliveProxyPass('draft_service')}    }
  }
}
`;
}

export async function startNginx(opts: NginxOptions): Promise<NginxInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-nginx-'));
  const port = opts.port ?? (await freePort());
  const conf = nginxProxyConf(dir, {
    upstreamPort: opts.upstreamPort, upstreamHost: opts.upstreamHost ?? '127.0.0.1', workers: opts.workers ?? 1,
    keepalive: opts.keepalive ?? 64, port,
  });
  return runNginx(dir, port, conf, opts.readyPath ?? '/get_mask_types');
}

/**
 * nginx proxy_cache in front of the draft service for the read-heavy mix (bench/cache.ts, bench/startup.ts):
 * POST /query_script cached by URI and body (nginx's way), everything else passed through.
 */
export async function startNginxMixCache(servicePort: number): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-nginx-mix-'));
  chmodSync(dir, 0o777);
  const port = await freePort();
  const conf = `${nginxPreamble(dir)}
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=mix:16m max_size=256m inactive=1h;
  upstream draft_service { server 127.0.0.1:${servicePort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    client_body_buffer_size 64k;
    location / {
${keepAliveProxyPass('draft_service')}    }
    location = /query_script {
${keepAliveProxyPass('draft_service')}      proxy_cache mix;
      proxy_cache_methods POST;
      proxy_cache_key "$request_uri|$request_body";
      proxy_cache_valid 200 5m;
      proxy_cache_lock on;
    }
  }
}
`;
  return runNginx(dir, port, conf);
}

/**
 * Start nginx in the foreground on `conf` (written to `dir`/nginx.conf, which must listen on `port`); resolves
 * once `readyPath` answers. stop() ends it and removes `dir`.
 */
export async function runNginx(dir: string, port: number, conf: string, readyPath = '/get_mask_types'): Promise<NginxInstance> {
  const confFile = join(dir, 'nginx.conf');
  writeFileSync(confFile, conf);
  const proc = startProcess('nginx', NGINX, ['-c', confFile, '-p', dir, '-e', join(dir, 'error.log')]);
  try {
    await waitForHttp(`http://127.0.0.1:${port}${readyPath}`, { proc, timeoutMs: 15_000 });
  } catch (e) {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    conf,
    pid: proc.child.pid!,
    async stop() {
      await proc.stop(); // SIGTERM: nginx's fast shutdown, the master waits for its workers
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function nginxVersion(): string {
  const r = spawnSync(NGINX, ['-v'], { encoding: 'utf8' });
  return (r.stderr || r.stdout || '').trim().replace(/^nginx version:\s*/, '') || 'not installed';
}
