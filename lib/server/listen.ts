/**
 * Binding the proxy and admin ports, with a failure a person can act on. A port that is taken (another
 * sidecar, a leftover process) used to print a raw EADDRINUSE stack and then hang: workers that could not
 * listen were restarted forever and /readyz stayed 503. Now the failure is a ListenError with one line (what,
 * which address, what to do), and the process exits non-zero at once, so Kubernetes restarts the container and
 * its log says why.
 */
import type { Server } from 'node:net';

/** A worker that cannot bind exits with this code: the primary then stops instead of restarting it. */
export const LISTEN_FAILED_EXIT = 78; // EX_CONFIG

export class ListenError extends Error {}

function reason(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE': return 'the address is already in use: stop the process that holds it (`ss -ltnp` shows it) or choose another port in the policy';
    case 'EACCES': return 'permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a port above 1023';
    case 'EADDRNOTAVAIL': return 'this machine has no such address: use 0.0.0.0, 127.0.0.1 or one of its own addresses';
    default: return err.message;
  }
}

export function listenError(err: unknown, setting: string, host: string, port: number): ListenError {
  const e = err as NodeJS.ErrnoException;
  const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new ListenError(`cannot listen on ${where} (${setting}): ${reason(e)}`);
}

/** server.listen() as a promise that rejects with a ListenError naming the policy setting. */
export function listenOn(server: Server, host: string, port: number, setting: string, backlog?: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(listenError(err, setting, host, port));
    server.once('error', onError);
    server.listen({ host, port, backlog }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
