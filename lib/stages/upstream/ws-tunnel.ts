/**
 * Upgrade requests (WebSocket and the like) tunnelled to the upstream by http-proxy, which does this one job
 * well: it sends the request, relays the 101 and then pipes both sockets. Created on the first Upgrade.
 */
import { Agent, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import httpProxy from 'http-proxy';
import type { UpstreamPolicy } from '../../policy/types';

export class WsTunnel {
  private proxy: httpProxy | null = null;
  private track: ((s: Socket) => void) | null = null;

  onSocket(track: (s: Socket) => void): void {
    this.track = track;
  }

  upgrade(policy: UpstreamPolicy, req: IncomingMessage, socket: Socket, head: Buffer, onError: (err: Error) => void): void {
    if (this.proxy === null) {
      // a tunnel holds its connection for its whole life: no pooling, one socket per tunnel
      const agent = new Agent({ keepAlive: false });
      const create = agent.createConnection.bind(agent) as (...a: unknown[]) => Socket;
      (agent as unknown as { createConnection: (...a: unknown[]) => Socket }).createConnection = (...a: unknown[]) => {
        const s = create(...a);
        this.track?.(s);
        return s;
      };
      this.proxy = httpProxy.createProxyServer({ agent, ws: true, xfwd: false, changeOrigin: false });
      this.proxy.on('error', () => { /* delivered to the per-call callback */ });
    }
    const target = { protocol: policy.protocol, host: policy.host, port: policy.port };
    this.proxy.ws(req, socket, head, { target } as unknown as httpProxy.ServerOptions, (err: Error) => onError(err));
  }

  close(): void {
    this.proxy?.close();
  }
}
