/**
 * Shared by the observability tests: a plain HTTP client, a Prometheus text parser, promtool, and a real
 * OTLP/HTTP receiver that decodes what the sidecar's exporter sends.
 */
import { request, createServer, type Server, type IncomingHttpHeaders } from 'node:http';
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/** One request on a fresh connection (agent: false), so cluster workers take turns. */
export function http(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMs?: number } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
      });
      res.on('error', reject);
    });
    req.setTimeout(opts.timeoutMs ?? 120_000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function postJson(url: string, value: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return http(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(value) });
}

// ---- Prometheus text format ------------------------------------------------------------------------------------

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

/** Parses the text exposition format into families (samples of a histogram go to their family). */
export function parseMetrics(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: 'untyped', help: '', samples: [] }));
    return f;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (m) {
      if (m[1] === 'HELP') family(m[2]).help = m[3];
      else family(m[2]).type = m[3];
      continue;
    }
    if (line.startsWith('#')) continue;
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
      let lm: RegExpExecArray | null;
      while ((lm = re.exec(m[3])) !== null) labels[lm[1]] = lm[2].replace(/\\"/g, '"').replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
    }
    const name = m[1];
    const base = families.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    family(base).samples.push({ name, labels, value: Number(m[4]) });
  }
  return families;
}

/** Sum of the samples named `name` whose labels include `where`. */
export function total(families: Map<string, Family>, name: string, where: Record<string, string> = {}): number {
  const base = name.replace(/_(bucket|sum|count)$/, '');
  const f = families.get(name) ?? families.get(base);
  if (!f) return 0;
  return f.samples
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

// ---- promtool ---------------------------------------------------------------------------------------------------

export const PROMTOOL = process.env.PROMTOOL ?? 'promtool';

/** Runs promtool; fails with a clear message when it is not installed (CI installs the Debian package). */
export function promtool(args: string[], stdin?: string): { code: number; output: string } {
  const r = spawnSync(PROMTOOL, args, { input: stdin, encoding: 'utf8', timeout: 60_000 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error(`promtool not found (${PROMTOOL}): install the Debian package "prometheus" (apt-get install -y prometheus) or set PROMTOOL`);
  }
  if (r.error) throw r.error;
  return { code: r.status ?? -1, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

// ---- OTLP/HTTP receiver ----------------------------------------------------------------------------------------

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  status: { code?: number; message?: string };
  service: string;
}

export interface OtlpReceiver {
  url: string;
  port: number;
  spans: ReceivedSpan[];
  /** Requests that were not JSON (the test would fail to decode them). */
  undecodable: number;
  waitForSpans(pred: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };

function attrValue(v: AnyValue): string | number | boolean {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return JSON.stringify(v);
}

function attrs(list: Array<{ key: string; value: AnyValue }> | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const a of list ?? []) out[a.key] = attrValue(a.value);
  return out;
}

/** A real OTLP/HTTP endpoint on 127.0.0.1: POST /v1/traces with OTLP JSON (ExportTraceServiceRequest). */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const waiters = new Set<() => void>();
  const rx: OtlpReceiver = {
    url: '', port: 0, spans, undecodable: 0,
    waitForSpans(pred, timeoutMs = 30_000) {
      if (pred(spans)) return Promise.resolve(spans);
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pred(spans)) {
            waiters.delete(check);
            clearTimeout(t);
            resolve(spans);
          }
        };
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`spans did not arrive in ${timeoutMs} ms; got ${spans.length}: ${JSON.stringify(spans.map((s) => s.name))}`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).includes('json')) {
        rx.undecodable++;
        res.writeHead(415).end();
        return;
      }
      const msg = JSON.parse(body.toString('utf8')) as {
        resourceSpans?: Array<{
          resource?: { attributes?: Array<{ key: string; value: AnyValue }> };
          scopeSpans?: Array<{ spans?: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: Array<{ key: string; value: AnyValue }>; status?: { code?: number; message?: string } }> }>;
        }>;
      };
      for (const rs of msg.resourceSpans ?? []) {
        const service = String(attrs(rs.resource?.attributes)['service.name'] ?? '');
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({
              traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', name: s.name, kind: s.kind,
              attributes: attrs(s.attributes), status: s.status ?? {}, service,
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      for (const w of [...waiters]) w();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const a = server.address();
  rx.port = typeof a === 'object' && a ? a.port : 0;
  rx.url = `http://127.0.0.1:${rx.port}`;
  return rx;
}
