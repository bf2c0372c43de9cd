/**
 * What one access line costs the request path (the calling thread) in each log format: JSON (batched writes,
 * the default off a terminal) and pretty (pino-pretty in pino's transport thread, the default on a terminal).
 * The pretty formatting itself runs on the transport thread; this measures what a request waits for.
 *
 * usage: node dist/bench/log-format.js json|pretty > /dev/null     (prints the figure on stderr)
 */
import { accessLoggerFor, createLogger, setLogFormat, type LogFormat } from '../lib/observe/logger';

const format = (process.argv[2] ?? 'json') as LogFormat;
setLogFormat(format);
const access = accessLoggerFor(createLogger('info', { role: 'worker', worker: 1 }));
const line = {
  method: 'POST', path: '/query_script', route: 'query_script', status: 200, duration_ms: 1.2, upstream_ms: null, queue_ms: null,
  cache: 'hit; ttl=298; detail=l1', limit: null, client: '127.0.0.1', trace_id: 'bc2637b01e4b54fc5c35f3fca62e0dc8',
};
const N = 100_000;
for (let i = 0; i < 20_000; i++) access.info(line, 'access'); // warm-up
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) access.info(line, 'access');
const us = Number(process.hrtime.bigint() - t0) / 1000 / N;
process.stderr.write(`${format}: ${us.toFixed(2)} µs per access line on the calling thread\n`);
