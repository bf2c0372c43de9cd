#!/usr/bin/env node
/**
 * Runs the example draft service on its own:
 *   node dist/examples/draft-service/main.js --port 9101 --service-time 5ms --max-concurrency 8
 * Prints one JSON line with "listening" when ready; SIGTERM/SIGINT close it.
 */
import { parseArgs } from 'node:util';
import { startDraftService } from './server';

const HELP = `usage: draft-service [options]
  --port N              listen port (default 9101; 0 = any free port)
  --host H              listen address (default 127.0.0.1)
  --service-time D      work time per call, e.g. 5ms, 0.2s (default 0)
  --max-concurrency N   calls worked on at once; the rest wait in FIFO order (default: no cap)
  --seed-drafts N       pre-seeded drafts dft_000001... (default 1000)
  --save-duration D     duration of a background save (default 3s)
  --api-key KEY         require X-Api-Key on writes
  --keep-alive-timeout D  idle keep-alive timeout of client connections (default 5s)
  --log                 one line per request on stdout
  --help`;

/** "5ms", "2s", "1m" or a plain number of milliseconds. */
export function parseDurationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new Error(`not a duration: ${text} (use e.g. 5ms, 2s, 1m)`);
  const n = Number(m[1]);
  return m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n;
}

function parseCount(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number, got ${text}`);
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' }, host: { type: 'string' }, 'service-time': { type: 'string' },
      'max-concurrency': { type: 'string' }, 'seed-drafts': { type: 'string' }, 'save-duration': { type: 'string' },
      'api-key': { type: 'string' }, 'keep-alive-timeout': { type: 'string' }, log: { type: 'boolean' }, help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const svc = await startDraftService({
    port: parseCount(values.port, '--port') ?? 9101,
    host: values.host ?? '127.0.0.1',
    serviceTimeMs: values['service-time'] ? parseDurationMs(values['service-time']) : 0,
    maxConcurrency: parseCount(values['max-concurrency'], '--max-concurrency'),
    seedDrafts: parseCount(values['seed-drafts'], '--seed-drafts'),
    saveDurationMs: values['save-duration'] ? parseDurationMs(values['save-duration']) : undefined,
    apiKey: values['api-key'],
    keepAliveTimeoutMs: values['keep-alive-timeout'] ? parseDurationMs(values['keep-alive-timeout']) : undefined,
    log: values.log ?? false,
  });
  process.stdout.write(JSON.stringify({ msg: 'draft service listening', url: svc.url, port: svc.port, pid: process.pid }) + '\n');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await svc.close();
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => { process.exitCode = code; },
    (err: unknown) => {
      process.stderr.write(`draft-service: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
