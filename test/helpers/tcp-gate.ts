/**
 * A TCP forwarder on a loopback port that a test can shut and open again: one process's link to a real server
 * (Redis) goes down while everyone else's stays up. Shut refuses new connections and resets the open ones.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpGate {
  readonly port: number;
  shut(): Promise<void>;
  open(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpGate(targetPort: number, host = '127.0.0.1'): Promise<TcpGate> {
  const sockets = new Set<Socket>();
  const serve = (): Server => createServer((client) => {
    const upstream = connect(targetPort, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream).pipe(client);
  });
  let server: Server | null = serve();
  await new Promise<void>((resolve, reject) => { server!.once('error', reject); server!.listen(0, host, resolve); });
  const port = (server.address() as { port: number }).port;
  const shut = async () => {
    const s = server;
    server = null;
    for (const sock of sockets) sock.resetAndDestroy();
    if (s !== null) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  return {
    port,
    shut,
    async open() {
      if (server !== null) return;
      const s = serve();
      await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(port, host, resolve); });
      server = s;
    },
    close: shut,
  };
}
