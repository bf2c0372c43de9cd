/**
 * A reference for bench/scrape-cost.ts: node:http serving prom-client's default metrics and nothing else, with
 * prom-client's own settings (its event-loop delay sampler at 10 ms).
 *
 *   node dist/bench/lib/prom-defaults-server.js <port>
 */
import http from 'node:http';
import { collectDefaultMetrics, Registry } from 'prom-client';

const port = Number(process.argv[2]);
const registry = new Registry();
collectDefaultMetrics({ register: registry });
http.createServer((_req, res) => {
  registry.metrics().then((text) => {
    res.writeHead(200, { 'content-type': registry.contentType });
    res.end(text);
  }, () => {
    res.statusCode = 500;
    res.end();
  });
}).listen(port, '127.0.0.1', () => process.stdout.write(`listening on ${port}\n`));
