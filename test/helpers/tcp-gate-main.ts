/**
 * The TCP gate's own process (see tcp-gate.ts): forwards 127.0.0.1:<any port> to 127.0.0.1:<target>. Reads
 * "shut" / "open" lines on stdin and answers each on stdout once done; prints "port N" first. A separate process,
 * so that whatever its sockets do while a test tears everything down, the test's own process can always exit.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

const target = Number(process.argv[2]);
const sockets = new Set<Socket>();
let server: Server | null = null;
let port = 0;

function serve(): Server {
  return createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream).pipe(client);
  });
}

function listen(): Promise<void> {
  const s = serve();
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => { server = s; port = (s.address() as { port: number }).port; resolve(); });
  });
}

async function shut(): Promise<void> {
  const s = server;
  server = null;
  for (const sock of [...sockets]) sock.destroy();
  if (s !== null) await new Promise<void>((resolve) => s.close(() => resolve()));
}

async function main(): Promise<void> {
  await listen();
  process.stdout.write(`port ${port}\n`);
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'shut') await shut();
    else if (line === 'open' && server === null) await listen();
    process.stdout.write(`${line}\n`);
  }
  process.exit(0); // stdin closed: the test is gone
}

void main();
