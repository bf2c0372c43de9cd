/**
 * A reference, not a product: the leanest reverse proxy Node can run, to measure where the runtime's floor is.
 * Both legs parse with node's own llhttp binding (the HTTPParser node:http uses inside) straight off `net`
 * sockets: no IncomingMessage or ServerResponse streams, no undici, no header objects. Requests and answers are
 * buffered; upstream connections are kept alive in a pool of up to 64, like the other references' (not those the
 * upstream closes). It skips what a real proxy must do (timeouts, limits, Expect, Upgrade, HEAD, errors beyond a
 * 502), so it is an upper bound: bench/core.ts runs it beside the bare node:http + undici proxy and nginx, and the gap
 * between the two Node rows is what node:http and undici cost.
 *
 *   node dist/bench/lib/llhttp-proxy.js <upstream-url> <port>
 */
import net from 'node:net';
import { createRequire } from 'node:module';

interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  finish(): number | Error | undefined;
  [callback: number]: (...args: never[]) => void;
}
interface HttpCommon {
  HTTPParser: { new(): Parser; REQUEST: number; RESPONSE: number; kOnHeadersComplete: number; kOnBody: number; kOnMessageComplete: number };
  methods: string[];
}
// node's internal module behind node:http (public since Node 0.x, undocumented): the only way to reach llhttp's binding
const { HTTPParser, methods } = createRequire(__filename)('_http_common') as HttpCommon;

const [upstream, port] = process.argv.slice(2);
if (!upstream || !port) {
  process.stderr.write('usage: llhttp-proxy <upstream-url> <port>\n');
  process.exit(2);
}
const target = new URL(upstream);
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length']);
const MAX_CONNECTIONS = 64;

/** The headers of `raw` (name, value, name, value…) a proxy passes on, as header lines. */
function passedOn(raw: string[]): string {
  let lines = '';
  for (let i = 0; i < raw.length; i += 2) if (!HOP_BY_HOP.has(raw[i].toLowerCase())) lines += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return lines;
}

interface Client {
  socket: net.Socket;
  queue: Buffer[];
  busy: boolean;
}
interface UpstreamConnection {
  socket: net.Socket;
  parser: Parser;
  client: Client | null;
  body: Buffer[];
}

const idle: UpstreamConnection[] = [];
const waiting: Array<[Client, Buffer]> = [];
let open = 0;

function connect(): UpstreamConnection {
  const socket = net.connect(Number(target.port), target.hostname);
  socket.setNoDelay(true);
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.RESPONSE, {}, 0, 0);
  const conn: UpstreamConnection = { socket, parser, client: null, body: [] };
  let head = '';
  let keepAlive = true;
  parser[HTTPParser.kOnHeadersComplete] = ((_maj: number, _min: number, raw: string[], _m: number, _u: string, status: number, text: string, _up: boolean, shouldKeepAlive: boolean) => {
    head = `HTTP/1.1 ${status} ${text}\r\n${passedOn(raw)}`;
    keepAlive = shouldKeepAlive;
  }) as never;
  parser[HTTPParser.kOnBody] = ((chunk: Buffer) => conn.body.push(chunk)) as never;
  parser[HTTPParser.kOnMessageComplete] = (() => {
    const client = conn.client!;
    const body = conn.body.length === 1 ? conn.body[0] : Buffer.concat(conn.body);
    conn.body = [];
    conn.client = null;
    // head and body in one system call (writev), as node:http and nginx send a small answer
    client.socket.cork();
    client.socket.write(`${head}content-length: ${body.length}\r\n\r\n`);
    client.socket.write(body);
    client.socket.uncork();
    // an upstream that closes every connection (the real draft service does) is not pooled
    if (keepAlive) release(conn);
    else conn.socket.destroy();
    client.busy = false;
    next(client);
  }) as never;
  socket.on('data', (d: Buffer) => parser.execute(d));
  // an answer without a length ends with the connection
  socket.on('end', () => parser.finish());
  socket.on('error', () => undefined);
  socket.on('close', () => {
    open--;
    const i = idle.indexOf(conn);
    if (i >= 0) idle.splice(i, 1);
    if (conn.client) conn.client.socket.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    const queued = waiting.shift();
    if (queued) send(connect(), queued[0], queued[1]);
  });
  open++;
  return conn;
}

function release(conn: UpstreamConnection): void {
  const queued = waiting.shift();
  if (queued) send(conn, queued[0], queued[1]);
  else idle.push(conn);
}

function send(conn: UpstreamConnection, client: Client, request: Buffer): void {
  conn.client = client;
  conn.socket.write(request);
}

/** One request per client connection at a time; pipelined ones wait in its queue. */
function next(client: Client): void {
  const request = client.queue.shift();
  if (!request) return;
  client.busy = true;
  const conn = idle.pop() ?? (open < MAX_CONNECTIONS ? connect() : undefined);
  if (conn) send(conn, client, request);
  else waiting.push([client, request]);
}

net.createServer((socket) => {
  socket.setNoDelay(true);
  const client: Client = { socket, queue: [], busy: false };
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.REQUEST, {}, 0, 0);
  let head = '';
  let body: Buffer[] = [];
  parser[HTTPParser.kOnHeadersComplete] = ((_maj: number, _min: number, raw: string[], method: number, url: string) => {
    head = `${methods[method]} ${url} HTTP/1.1\r\n${passedOn(raw)}x-forwarded-for: ${socket.remoteAddress}\r\n`;
  }) as never;
  parser[HTTPParser.kOnBody] = ((chunk: Buffer) => body.push(chunk)) as never;
  parser[HTTPParser.kOnMessageComplete] = (() => {
    const payload = Buffer.concat(body);
    body = [];
    client.queue.push(Buffer.concat([Buffer.from(`${head}content-length: ${payload.length}\r\n\r\n`), payload]));
    if (!client.busy) next(client);
  }) as never;
  socket.on('data', (d: Buffer) => {
    if (parser.execute(d) instanceof Error) socket.destroy();
  });
  socket.on('error', () => undefined);
}).listen(Number(port), '127.0.0.1', () => process.stdout.write(`listening on ${port}\n`));
