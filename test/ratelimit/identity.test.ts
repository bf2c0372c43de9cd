/** Identity resolution over real HTTP requests on loopback (real sockets, real headers). */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RequestContext } from '../../lib/core/context';
import { resolveIdentity, identityKey, jwtSubject } from '../../lib/stages/identity';
import type { IdentityPolicy } from '../../lib/policy/types';

let server: Server;
let port = 0;
let current: IdentityPolicy | null = null;

before(async () => {
  server = createServer((req, res) => {
    const id = resolveIdentity(new RequestContext(req, res, 0), current);
    res.end(id);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
after(() => new Promise<void>((r) => server.close(() => r())));

async function idFor(policy: IdentityPolicy | null, headers: Record<string, string> = {}): Promise<string> {
  current = policy;
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/', headers, agent: false }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve(b));
    }).on('error', reject).end();
  });
}

const jwt = (payload: object): string =>
  'Bearer ' + [{ alg: 'none' }, payload].map((p) => Buffer.from(JSON.stringify(p)).toString('base64url')).join('.') + '.sig';

const full: IdentityPolicy = { header: 'x-user-id', jwt_sub: true, trust_forwarded_for: false };

test('the identity header wins, then the JWT sub, then the client address', async () => {
  assert.equal(await idFor(full, { 'x-user-id': 'alice', authorization: jwt({ sub: 'bob' }) }), 'h:alice');
  assert.equal(await idFor(full, { authorization: jwt({ sub: 'bob' }) }), 'jwt:bob');
  assert.equal(await idFor(full, {}), 'ip:127.0.0.1');
  assert.equal(await idFor(null, { 'x-user-id': 'alice' }), 'ip:127.0.0.1', 'no policy: the address only');
});

test('a JWT is only read when the policy asks, and a malformed one falls back to the address', async () => {
  assert.equal(await idFor({ ...full, jwt_sub: false }, { authorization: jwt({ sub: 'bob' }) }), 'ip:127.0.0.1');
  assert.equal(await idFor(full, { authorization: 'Bearer not-a-jwt' }), 'ip:127.0.0.1');
  assert.equal(await idFor(full, { authorization: 'Bearer a.!!!.c' }), 'ip:127.0.0.1');
  assert.equal(await idFor(full, { authorization: jwt({ name: 'no sub' }) }), 'ip:127.0.0.1');
  assert.equal(await idFor(full, { authorization: 'Basic dXNlcjpwYXNz' }), 'ip:127.0.0.1');
  assert.equal(jwtSubject(jwt({ sub: 42 })), '42');
});

test('X-Forwarded-For is used only when trusted, first hop only, and only if it is an address', async () => {
  const xff = { 'x-forwarded-for': '203.0.113.9, 10.0.0.1' };
  assert.equal(await idFor(full, xff), 'ip:127.0.0.1', 'untrusted: ignored');
  const trusted = { ...full, trust_forwarded_for: true };
  assert.equal(await idFor(trusted, xff), 'ip:203.0.113.9');
  assert.equal(await idFor(trusted, { 'x-forwarded-for': '[2001:DB8::1]:443' }), 'ip:2001:db8::1');
  assert.equal(await idFor(trusted, { 'x-forwarded-for': '198.51.100.7:5555' }), 'ip:198.51.100.7');
  assert.equal(await idFor(trusted, { 'x-forwarded-for': 'h:alice' }), 'ip:127.0.0.1', 'garbage falls back to the peer');
});

test('kinds cannot collide: a header value cannot pose as a JWT subject or an address', async () => {
  const a = await idFor(full, { 'x-user-id': 'ip:127.0.0.1' });
  assert.notEqual(a, 'ip:127.0.0.1');
  assert.ok(a.startsWith('h'));
  const b = await idFor(full, { 'x-user-id': 'bob' });
  const c = await idFor(full, { authorization: jwt({ sub: 'bob' }) });
  assert.notEqual(b, c);
});

test('long or unusual values are hashed to a bounded key that a raw value can never equal', async () => {
  const long = 'x'.repeat(10_000);
  const k = await idFor(full, { 'x-user-id': long });
  assert.ok(k.length <= 40, `bounded: ${k.length}`);
  assert.ok(k.startsWith('h#'));
  assert.notEqual(await idFor(full, { 'x-user-id': 'x'.repeat(9_999) }), k);
  assert.equal(identityKey('h', 'a b'), identityKey('h', 'a b'));
  assert.ok(identityKey('h', 'a b').startsWith('h#'));
  assert.ok(identityKey('jwt', 'ü').startsWith('jwt#'));
  // the hashed form has '#' after the kind, which no raw key has: raw and hashed never meet
  assert.equal(identityKey('h', 'h#abc'), identityKey('h', 'h#abc'));
  assert.ok(identityKey('h', 'h#abc').startsWith('h#'));
  assert.equal(await idFor(full, { 'x-user-id': 'Alice.Smith@example.com' }), 'h:Alice.Smith@example.com');
});
