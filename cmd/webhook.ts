/**
 * `bridge-sidecar webhook [--port 9443] [--tls-cert FILE] [--tls-key FILE] [--config FILE] [--image IMAGE]`
 *
 * The mutating admission webhook (HTTPS, AdmissionReview v1) that does what `inject` does, for pods created
 * in namespaces labelled bridge-sidecar-injection=enabled (the chart's injector section). Runs until SIGTERM.
 */
import { parseFlags, UsageError } from './args';
import { isInjectInputError, loadInjectConfig, parseInjectConfig, type InjectConfig } from '../lib/k8s';
import { startWebhook } from '../lib/k8s/webhook-server';
import { createLogger, announce } from '../lib/observe/logger';

const TLS_DIR = '/etc/bridge-sidecar-injector/tls';
const HELP = `usage: bridge-sidecar webhook [options]

The sidecar injection webhook: POST /inject (AdmissionReview v1, Pods) answers with a JSONPatch built by the
same code as \`bridge-sidecar inject\`; GET /healthz. Never denies a pod: one that cannot be injected is
admitted unchanged with a warning.

options:
  --port PORT        HTTPS port (default 9443)
  --host ADDR        listen address (default 0.0.0.0)
  --tls-cert FILE    serving certificate (default ${TLS_DIR}/tls.crt; re-read when it changes)
  --tls-key FILE     its key (default ${TLS_DIR}/tls.key)
  --config FILE      YAML map of injection settings, as for \`inject --config\`
  --image IMAGE      the sidecar image (overrides the config)
  --log-level LEVEL  info (default), warn, error, debug
`;

const FLAGS = {
  port: { type: 'string' },
  host: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  config: { type: 'string' },
  image: { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function run(argv: string[]): Promise<number> {
  let v;
  let cfg: InjectConfig;
  let port: number;
  try {
    v = parseFlags(argv, FLAGS).values;
    if (v.help) { process.stdout.write(HELP); return 0; }
    port = v.port === undefined ? 9443 : Number(v.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: ${v.port} is not a port`);
    cfg = v.config ? loadInjectConfig(v.config) : parseInjectConfig({});
    if (v.image !== undefined) cfg = parseInjectConfig({ image: v.image }, cfg);
  } catch (e) {
    if (!(e instanceof UsageError) && !isInjectInputError(e)) throw e;
    process.stderr.write(`bridge-sidecar webhook: ${e.message}\n${e instanceof UsageError ? 'see bridge-sidecar webhook --help\n' : ''}`);
    return e instanceof UsageError ? 2 : 1;
  }
  const log = createLogger(v['log-level'] ?? 'info', { role: 'webhook' });
  let server;
  try {
    server = await startWebhook({
      host: v.host ?? '0.0.0.0', port, certFile: v['tls-cert'] ?? `${TLS_DIR}/tls.crt`, keyFile: v['tls-key'] ?? `${TLS_DIR}/tls.key`, config: cfg, log,
    });
  } catch (e) {
    process.stderr.write(`bridge-sidecar webhook: ${(e as Error).message}\n`);
    return 1;
  }
  announce(log, { port: server.port, image: cfg.image, native: cfg.native }, 'listening');
  const s = server;
  await new Promise<void>((resolve) => {
    const stop = (): void => { void s.close().then(resolve); };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}
