/**
 * The smallest Node reverse proxy: node:http in front of an undici Pool, body buffered, no policy, no metrics,
 * no logs. A reference for what any Node proxy costs per request on this machine (bench/real-service.ts runs
 * it beside the sidecar and nginx).
 *
 *   node dist/bench/lib/bare-proxy.js <upstream-url> <port>
 */
import http from 'node:http';
import { Pool } from 'undici';

const [upstream, port] = process.argv.slice(2);
if (!upstream || !port) {
  process.stderr.write('usage: bare-proxy <upstream-url> <port>\n');
  process.exit(2);
}
const pool = new Pool(upstream, { connections: 64 });
http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const headers: Record<string, string> = {};
    const type = req.headers['content-type'];
    if (type !== undefined) headers['content-type'] = type;
    pool.request({ method: req.method as 'POST', path: req.url ?? '/', headers, body: chunks.length ? Buffer.concat(chunks) : null }).then((up) => {
      const out: Record<string, string> = {};
      const t = up.headers['content-type'];
      if (typeof t === 'string') out['content-type'] = t;
      res.writeHead(up.statusCode, out);
      up.body.pipe(res);
    }, () => {
      res.statusCode = 502;
      res.end();
    });
  });
}).listen(Number(port), '127.0.0.1', () => process.stdout.write(`listening on ${port}\n`));
