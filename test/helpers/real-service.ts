/**
 * The real draft service for tests: its processes (bench/lib/capcut.ts: fails loudly when ../shared/capcut-service
 * is missing), examples/policy.yaml with only the deployment's addresses changed, a local media server (the
 * service downloads the media a write names), and a JSON client.
 */
import { createServer, type Server } from 'node:http';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { parseDocument } from 'yaml';
import { repoRoot } from './repo';

export { capcutServiceDir, startCapcutService, startCapcutBridge, type CapcutProcess } from '../../bench/lib/capcut';

export interface ExamplePolicyOverrides {
  upstreamUrl: string;
  redisUrl: string;
  dir: string;
}

/**
 * examples/policy.yaml as a user deploys it, with what a deployment sets for itself changed: loopback listeners
 * on free ports, the upstream and Redis addresses, the disk-cache and admin-token paths, no trace exporter.
 * Routes, limits, queues and cache rules stay as written.
 */
export function examplePolicy(o: ExamplePolicyOverrides): string {
  const doc = parseDocument(readFileSync(join(repoRoot(), 'examples', 'policy.yaml'), 'utf8'));
  mkdirSync(o.dir, { recursive: true });
  const token = join(o.dir, 'admin-token');
  writeFileSync(token, 'e2e-token\n');
  doc.setIn(['server', 'listen'], '127.0.0.1:0');
  doc.setIn(['server', 'admin_listen'], '127.0.0.1:0');
  doc.setIn(['server', 'admin_token_file'], token);
  doc.setIn(['upstream', 'url'], o.upstreamUrl);
  doc.setIn(['redis', 'url'], o.redisUrl);
  doc.setIn(['cache', 'l3', 'path'], join(o.dir, 'l3'));
  doc.setIn(['tracing', 'enabled'], false);
  return doc.toString();
}

/** A 2x2 PNG, built here so the test needs no file. */
function tinyPng(): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.from([0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0]);
  const raw = Buffer.from([0, 255, 0, 0, 0, 255, 0, 0, 0, 0, 255, 255, 255, 255]);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/** Serves /image.png (and the same bytes under any name) on 127.0.0.1, for the writes that download media. */
export async function startMediaServer(): Promise<{ url: string; close(): Promise<void> }> {
  const png = tinyPng();
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length });
    res.end(png);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

export interface JsonReply {
  status: number;
  headers: Headers;
  json: any;
}

/** POST a JSON body (or GET when body is undefined); parses the answer as JSON when it is JSON. */
export async function call(base: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<JsonReply> {
  const res = await fetch(base + path, body === undefined
    ? { headers }
    : { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
  const text = await res.text();
  let json: unknown = text;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json };
}
