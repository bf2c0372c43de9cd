/**
 * The injection webhook's HTTPS server: POST /inject takes an AdmissionReview and answers one (admission.ts),
 * GET /healthz and /readyz answer 200. The certificate files (a cert-manager or chart-made Secret) are read
 * again when they change, so a renewed certificate is served without a restart.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFileSync, statSync } from 'node:fs';
import type { InjectConfig } from './config';
import { AdmissionReviewError, reviewPod } from './admission';
import type { Logger } from '../observe/logger';
import { BodyTooLarge, endAnswer, readBody } from '../util/read-body';

const MAX_BODY = 8 * 1024 * 1024; // the API server sends at most ~3 MB objects; leave room for the review around them
const CERT_CHECK_MS = 30_000;

export interface WebhookOptions {
  readonly host: string;
  readonly port: number;
  readonly certFile: string;
  readonly keyFile: string;
  readonly config: InjectConfig;
  readonly log: Logger;
}

export interface WebhookServer {
  readonly port: number;
  close(): Promise<void>;
}

function readTls(o: WebhookOptions): { cert: Buffer; key: Buffer; stamp: string } {
  const stamp = [o.certFile, o.keyFile].map((f) => { const s = statSync(f); return `${s.mtimeMs}:${s.size}`; }).join('|');
  return { cert: readFileSync(o.certFile), key: readFileSync(o.keyFile), stamp };
}

export async function startWebhook(o: WebhookOptions): Promise<WebhookServer> {
  let tls = readTls(o);
  const server: Server = createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, (req, res) => {
    void handle(o, req, res);
  });
  const timer = setInterval(() => {
    try {
      const s = [o.certFile, o.keyFile].map((f) => { const st = statSync(f); return `${st.mtimeMs}:${st.size}`; }).join('|');
      if (s === tls.stamp) return;
      tls = readTls(o);
      server.setSecureContext({ cert: tls.cert, key: tls.key });
      o.log.info({ cert: o.certFile }, 'serving certificate reloaded');
    } catch (e) {
      // mid-rotation (one file new, the other not yet) or unreadable: keep serving the old pair, try again later
      o.log.warn({ err: (e as Error).message }, 'serving certificate not reloaded');
    }
  }, CERT_CHECK_MS);
  timer.unref();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => { server.off('error', reject); resolve(); });
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : o.port,
    close: () => new Promise<void>((resolve) => { clearInterval(timer); server.close(() => resolve()); server.closeAllConnections(); }),
  };
}

/** With `lingerOn` (a request refused before its body was read): Connection: close, after the rest of the body (endAnswer). */
function send(res: ServerResponse, status: number, body: unknown, lingerOn: IncomingMessage | null = null): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...(lingerOn === null ? {} : { connection: 'close' }) });
  endAnswer(res, text, lingerOn);
}

async function handle(o: WebhookOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && (path === '/healthz' || path === '/readyz')) return send(res, 200, { status: 'ok' });
  if (path !== '/inject') return send(res, 404, { error: 'not found' });
  if (req.method !== 'POST') return send(res, 405, { error: 'POST an AdmissionReview' });
  let body: unknown;
  try {
    body = JSON.parse((await readBody(req, MAX_BODY)).toString('utf8'));
  } catch (e) {
    if (!(e instanceof BodyTooLarge)) return send(res, 400, { error: 'body is not JSON' });
    return send(res, 413, { error: 'body too large' }, req);
  }
  try {
    const r = reviewPod(body, o.config);
    o.log.info({ pod: r.pod, outcome: r.outcome, detail: r.detail }, 'admission review');
    send(res, 200, r.review);
  } catch (e) {
    if (!(e instanceof AdmissionReviewError)) {
      o.log.error({ err: e }, 'admission review failed');
      return send(res, 500, { error: (e as Error).message });
    }
    send(res, 400, { error: e.message });
  }
}

