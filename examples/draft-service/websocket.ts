/**
 * A minimal WebSocket echo on `/ws` (RFC 6455), with no dependency: answers the upgrade with 101, then
 * sends every data frame back unmasked with the same opcode and FIN bit, answers ping with pong and close
 * with close. It exists so tests can check that the sidecar passes upgrades through; it is not a general
 * WebSocket server (no extensions, frames up to 16 MB).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_FRAME = 16 * 1024 * 1024;

export function acceptKey(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

/** Completes the handshake and echoes frames; returns false (and answers 400) if the request is not a valid upgrade. */
export function upgradeToEcho(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return false;
  }
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`);
  let pending: Buffer = head.length ? Buffer.from(head) : Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    for (;;) {
      const frame = readFrame(pending);
      if (frame === null) return;
      if (frame === 'too-big') {
        socket.end(encodeFrame(0x8, true, Buffer.from([0x03, 0xf1]))); // 1009 message too big
        return;
      }
      pending = pending.subarray(frame.size);
      if (frame.opcode === 0x8) {
        socket.end(encodeFrame(0x8, true, frame.payload));
        return;
      }
      if (frame.opcode === 0x9) socket.write(encodeFrame(0xa, true, frame.payload));
      else if (frame.opcode !== 0xa) socket.write(encodeFrame(frame.opcode, frame.fin, frame.payload));
    }
  };
  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
  if (pending.length) onData(Buffer.alloc(0));
  return true;
}

interface Frame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
  /** Bytes the frame took in the input. */
  size: number;
}

function readFrame(buf: Buffer): Frame | null | 'too-big' {
  if (buf.length < 2) return null;
  const fin = (buf[0]! & 0x80) !== 0;
  const opcode = buf[0]! & 0x0f;
  const masked = (buf[1]! & 0x80) !== 0;
  let len = buf[1]! & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    const big = buf.readBigUInt64BE(2);
    if (big > BigInt(MAX_FRAME)) return 'too-big';
    len = Number(big);
    off = 10;
  }
  if (len > MAX_FRAME) return 'too-big';
  const maskOff = off;
  if (masked) off += 4;
  if (buf.length < off + len) return null;
  const payload = Buffer.from(buf.subarray(off, off + len));
  if (masked) for (let i = 0; i < len; i++) payload[i]! ^= buf[maskOff + (i & 3)]!;
  return { fin, opcode, payload, size: off + len };
}

/** A server frame (never masked). */
export function encodeFrame(opcode: number, fin: boolean, payload: Buffer): Buffer {
  const len = payload.length;
  const headLen = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const head = Buffer.alloc(headLen);
  head[0] = (fin ? 0x80 : 0) | opcode;
  if (len < 126) head[1] = len;
  else if (len < 65536) {
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, payload]);
}
