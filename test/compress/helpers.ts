/**
 * Shared pieces of the compression tests: a small real upstream for the cases the draft service cannot produce
 * (a 206, a 204 that names a Content-Type, a chunked body, a very large compressible stream), a raw HTTP client
 * that does NOT decode (to see the bytes on the wire), and curl.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';

export interface EdgeUpstream {
  port: number;
  server: Server;
  /** Identity bytes the /big stream has written so far (to check the sidecar stays bounded). */
  bigSent(): number;
  close(): Promise<void>;
}

/** One line of the /big stream: JSON-ish text that compresses about 5-10x, like real API output. */
function bigLine(i: number): string {
  return `{"seq":${i},"draft_id":"dft_${String(i % 1000).padStart(6, '0')}","track":"video","start":${i * 40},"end":${i * 40 + 33},"volume":0.${i % 10}}\n`;
}

export async function startEdgeUpstream(): Promise<EdgeUpstream> {
  let bigSent = 0;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    req.resume();
    const text = (n: number) => 'compressible text '.repeat(Math.ceil(n / 18)).slice(0, n);
    switch (url.pathname) {
      case '/204':
        res.writeHead(204, { 'content-type': 'application/json' });
        res.end();
        return;
      case '/205':
        res.writeHead(205, { 'content-type': 'application/json' });
        res.end();
        return;
      case '/304':
        res.writeHead(304, { 'content-type': 'application/json', etag: '"v1"' });
        res.end();
        return;
      case '/206': {
        const body = text(5000);
        res.writeHead(206, { 'content-type': 'text/plain', 'content-range': 'bytes 0-4999/10000', 'content-length': body.length, etag: '"r1"' });
        res.end(body);
        return;
      }
      case '/content-range': {
        // a 200 carrying Content-Range (what some servers send for a whole-file "range"): still a range
        const body = text(3000);
        res.writeHead(200, { 'content-type': 'text/plain', 'content-range': 'bytes 0-2999/3000', 'content-length': body.length });
        res.end(body);
        return;
      }
      case '/chunked': {
        // no Content-Length: the sidecar cannot know the size up front
        const n = Number(url.searchParams.get('bytes') ?? '100');
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.write(text(Math.floor(n / 2)));
        res.end(text(n - Math.floor(n / 2)));
        return;
      }
      case '/typed': {
        const ct = url.searchParams.get('ct') ?? 'application/json';
        const body = text(4000);
        res.writeHead(200, { 'content-type': ct, 'content-length': body.length });
        res.end(body);
        return;
      }
      case '/big': {
        // `bytes` of compressible text, chunked, written with backpressure (never held here either)
        const total = Number(url.searchParams.get('bytes') ?? String(1024 * 1024));
        res.writeHead(200, { 'content-type': 'application/x-ndjson+json' });
        let left = total;
        let i = 0;
        const pump = () => {
          while (left > 0) {
            let block = '';
            while (block.length < 64 * 1024) block += bigLine(i++);
            const chunk = Buffer.from(block.length > left ? block.slice(0, left) : block);
            left -= chunk.length;
            bigSent += chunk.length;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        res.on('close', () => res.removeListener('drain', pump));
        pump();
        return;
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('no such edge case');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    server,
    bigSent: () => bigSent,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

export interface RawReply {
  status: number;
  headers: IncomingMessage['headers'];
  /** The bytes as they came over the wire (still encoded). */
  body: Buffer;
}

/** An HTTP request with node:http, which never decodes: what the sidecar put on the wire. */
export function rawRequest(url: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export interface CurlReply {
  status: number;
  /** Lower-case names; the last value of a repeated header. */
  headers: Record<string, string>;
  /** The body as curl wrote it (decoded when --compressed). */
  body: Buffer;
}

/** Runs the real curl binary; `args` are extra flags (e.g. --compressed, -H ...). */
export function curl(url: string, args: string[] = []): Promise<CurlReply> {
  return new Promise((resolve, reject) => {
    // -D - writes the header block(s) to stdout before the body: split them off at the last block's blank line
    execFile('curl', ['-sS', '--max-time', '30', '-D', '-', ...args, url], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`curl failed: ${err.message} ${stderr.toString()}`));
        return;
      }
      let offset = 0;
      let block = '';
      // with 100-continue there can be several header blocks: each starts with a status line
      for (;;) {
        const end = stdout.indexOf('\r\n\r\n', offset);
        if (end === -1) break;
        block = stdout.subarray(offset, end).toString('latin1');
        offset = end + 4;
        if (!/^HTTP\/\S+ 1\d\d/.test(block)) break;
      }
      const lines = block.split('\r\n');
      const status = Number(/^HTTP\/\S+ (\d{3})/.exec(lines[0])?.[1] ?? 0);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
      }
      resolve({ status, headers, body: stdout.subarray(offset) });
    });
  });
}

/** The value of one series from Prometheus text, or null when absent. `match` is the full series name + labels. */
export function metricValue(text: string, match: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(match + ' ')) return Number(line.slice(match.length + 1));
  }
  return null;
}
