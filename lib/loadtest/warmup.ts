/**
 * undici compiles its HTTP parser (WebAssembly) on the first connection a thread makes, which stalls that
 * thread for tens of milliseconds. Done during the first step of a run, the stall would show up as latency
 * of the target. So each thread first talks to a throwaway server of its own, before the clock starts.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from 'undici';

let warmed = false;

export async function warmUpHttpClient(): Promise<void> {
  if (warmed) return;
  const server = createServer((req, res) => {
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = new Client(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    for (let i = 0; i < 20; i++) {
      const res = await client.request({ path: '/', method: 'GET' });
      await res.body.dump();
    }
    warmed = true;
  } finally {
    await client.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
