/**
 * GET /app-health/<container>/<liveness|readiness|startup> on the admin port: the app's own probe, which
 * injection moved here (BRIDGE_SIDECAR_APP_PROBERS). The sidecar calls the app directly with a fresh
 * connection: never through the proxy's rate limits, queues or cache, so a sidecar that sheds or limits
 * client traffic never makes the kubelet restart a healthy app. The answer carries the app's status code.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { APP_PROBERS_ENV, parseAppProbers, type AppProbe } from './probers';

/** The part of the admin server this needs (kept structural so the admin server can move freely). */
export interface RouteRegistrar {
  route(method: string, path: string, handler: () => Promise<{ status: number; body: unknown; contentType?: string }>): void;
}

const MAX_BODY = 10 * 1024; // the kubelet keeps at most 10 KB of a probe's body for its event message

/**
 * The probes in the environment, read at start-up: a malformed variable throws ProbersError before anything
 * starts (a sidecar that cannot answer the app's probes must not come up and get the app restarted).
 */
export function appHealthRoutes(env: NodeJS.ProcessEnv = process.env): { count: number; register(admin: RouteRegistrar): void } {
  const probes = parseAppProbers(env[APP_PROBERS_ENV]);
  return {
    count: probes.length,
    register(admin) {
      for (const probe of probes) admin.route('GET', probe.path, () => callApp(probe));
    },
  };
}

export function callApp(probe: AppProbe): Promise<{ status: number; body: string; contentType: string }> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (status: number, body: string): void => {
      if (settled) return;
      settled = true;
      resolve({ status, body: body.slice(0, MAX_BODY), contentType: 'text/plain; charset=utf-8' });
    };
    const send = probe.https ? httpsRequest : httpRequest;
    const req = send({
      host: probe.host, port: probe.port, path: probe.requestPath, method: 'GET', agent: false,
      // as the kubelet does: it does not verify the app's certificate either
      rejectUnauthorized: false,
      headers: { 'user-agent': 'kube-probe (bridge-sidecar)', accept: '*/*', ...probe.headers, connection: 'close' },
      timeout: probe.timeoutMs,
    }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => { if (size < MAX_BODY) { chunks.push(c); size += c.length; } });
      res.on('end', () => done(res.statusCode ?? 502, Buffer.concat(chunks).toString('utf8')));
      res.on('error', (e) => done(503, `app probe failed: ${e.message}`));
    });
    req.on('timeout', () => { req.destroy(new Error(`no answer within ${probe.timeoutMs} ms`)); });
    req.on('error', (e) => done(503, `app probe failed: ${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`.trim()));
    req.end();
  });
}
