/**
 * The app's own probes, as injection moves them out of the pod spec and into the sidecar's environment
 * (BRIDGE_SIDECAR_APP_PROBERS, as Istio's ISTIO_KUBE_APP_PROBERS): the kubelet then probes
 * /app-health/<container>/<kind> on the sidecar's admin port, and the sidecar calls the app's probe itself.
 *
 * Each entry keeps the httpGet action exactly as written (so removing the sidecar restores it byte for byte)
 * and the port number a named port resolved to (the sidecar cannot see the pod spec).
 */
import type { HttpGetAction, ProbeKind } from './types';
import { PROBE_KINDS } from './types';

export const APP_PROBERS_ENV = 'BRIDGE_SIDECAR_APP_PROBERS';

export interface ProberEntry {
  httpGet: HttpGetAction;
  /** httpGet.port resolved to a number. */
  port: number;
  timeoutSeconds: number;
}

/** Keyed by "<container>/<kind>". */
export type Probers = Record<string, ProberEntry>;

export const appHealthPath = (container: string, kind: ProbeKind): string => `/app-health/${container}/${kind}`;

/** One probe, ready to call. */
export interface AppProbe {
  readonly path: string;
  readonly host: string;
  readonly port: number;
  readonly requestPath: string;
  readonly https: boolean;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
}

export class ProbersError extends Error {}

/**
 * The probes the sidecar answers for, from the environment variable's JSON. Throws ProbersError with a clear
 * message on anything malformed (the sidecar then refuses to start rather than fail every probe).
 */
export function parseAppProbers(text: string | undefined): AppProbe[] {
  if (text === undefined || text.trim() === '') return [];
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ProbersError(`${APP_PROBERS_ENV} is not JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ProbersError(`${APP_PROBERS_ENV} must be a JSON object`);
  const out: AppProbe[] = [];
  for (const [key, entry] of Object.entries(raw as Record<string, unknown>)) {
    const [container, kind, extra] = key.split('/');
    if (!container || extra !== undefined || !(PROBE_KINDS as readonly string[]).includes(kind)) {
      throw new ProbersError(`${APP_PROBERS_ENV}: key ${JSON.stringify(key)} is not "<container>/<liveness|readiness|startup>"`);
    }
    const e = entry as Partial<ProberEntry> | null;
    const g = e?.httpGet;
    if (!e || typeof g !== 'object' || g === null || typeof e.port !== 'number' || !Number.isInteger(e.port) || e.port < 1 || e.port > 65535) {
      throw new ProbersError(`${APP_PROBERS_ENV}: ${key} needs httpGet and a numeric port`);
    }
    const headers: Record<string, string> = {};
    for (const h of g.httpHeaders ?? []) headers[h.name.toLowerCase()] = h.value;
    let requestPath = g.path ?? '/';
    if (!requestPath.startsWith('/')) requestPath = '/' + requestPath;
    out.push(Object.freeze({
      path: appHealthPath(container, kind as ProbeKind),
      host: g.host && g.host !== '' ? g.host : '127.0.0.1',
      port: e.port,
      requestPath,
      https: (g.scheme ?? 'HTTP').toUpperCase() === 'HTTPS',
      headers: Object.freeze(headers),
      timeoutMs: Math.max(1, typeof e.timeoutSeconds === 'number' ? e.timeoutSeconds : 1) * 1000,
    }));
  }
  return out;
}
