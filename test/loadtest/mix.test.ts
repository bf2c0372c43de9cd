import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileTemplate, loadMixFile, MixError, parseMix, render, RequestFactory } from '../../lib/loadtest/mix';
import { runPhase } from '../../lib/loadtest/runner';

const DRAFT_MIX = `
headers: { x-api-key: demo }
requests:
  - name: query_script
    method: post
    path: /query_script
    body: { draft_id: "draft-{int:1-3}", force_update: false }
    weight: 3
  - name: add_video
    method: POST
    path: /mcp/add_video
    headers: { x-idempotency-key: "k-{seq}", x-user-id: "{choice:alice|bob}" }
    body: '{"draft_id":"draft-{seq}","video_url":"https://example.invalid/{uuid}.mp4","start":{random},"end":10}'
  - path: /get_font_types
`;

test('a YAML mix: defaults, common headers, JSON bodies with content-type', () => {
  const mix = parseMix(DRAFT_MIX, 'draft.yaml');
  assert.equal(mix.length, 3);
  assert.deepEqual(mix.map((e) => [e.name, e.method, e.weight]), [['query_script', 'POST', 3], ['add_video', 'POST', 1], ['GET /get_font_types', 'GET', 1]]);
  assert.deepEqual(mix[0].headers, [['x-api-key', 'demo'], ['content-type', 'application/json']]);
  assert.equal(mix[0].body, '{"draft_id":"draft-{int:1-3}","force_update":false}');
  assert.deepEqual(mix[1].headers.map(([k]) => k), ['x-api-key', 'x-idempotency-key', 'x-user-id'], 'a string body sets no content-type by itself');
  assert.equal(mix[2].body, null);
});

test('JSON mix files (a plain list) are read too', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mix-'));
  try {
    const file = join(dir, 'mix.json');
    writeFileSync(file, JSON.stringify([{ method: 'GET', path: '/health' }, { method: 'POST', path: '/mcp', body: { jsonrpc: '2.0', id: '{seq}', method: 'tools/list' }, weight: 2 }]));
    const mix = loadMixFile(file);
    assert.equal(mix.length, 2);
    assert.equal(mix[1].weight, 2);
    assert.equal(mix[1].body, '{"jsonrpc":"2.0","id":"{seq}","method":"tools/list"}');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('substitutions: {seq} shared within a request, {int}, {choice}, {uuid}, {random}; other braces kept', () => {
  const t = compileTemplate('{"a":"{seq}","b":"{seq}","n":{int:5-7},"c":"{choice:x|y}","u":"{uuid}","r":{random},"keep":{"z":1}}');
  const seen = { n: new Set<number>(), c: new Set<string>() };
  for (let i = 0; i < 300; i++) {
    const v = JSON.parse(render(t, 42 + i)) as { a: string; b: string; n: number; c: string; u: string; r: number; keep: unknown };
    assert.equal(v.a, String(42 + i));
    assert.equal(v.b, v.a);
    assert.ok(v.n >= 5 && v.n <= 7);
    seen.n.add(v.n);
    seen.c.add(v.c);
    assert.match(v.u, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(Number.isInteger(v.r) && v.r >= 0 && v.r < 2 ** 31);
    assert.deepEqual(v.keep, { z: 1 });
  }
  assert.deepEqual([...seen.n].sort(), [5, 6, 7]);
  assert.deepEqual([...seen.c].sort(), ['x', 'y']);
  assert.equal(compileTemplate('/plain/{unknown}'), '/plain/{unknown}', 'a template without placeholders stays a constant string');
});

test('{zipf:A-B}: A is the most frequent value, each next one about 1/rank as often; leading zeros pad', () => {
  const t = compileTemplate('dft_{zipf:000001-001000}');
  const counts = new Map<string, number>();
  const n = 200_000;
  for (let i = 0; i < n; i++) {
    const v = render(t, i);
    assert.match(v, /^dft_\d{6}$/);
    const k = Number(v.slice(4));
    assert.ok(k >= 1 && k <= 1000, v);
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  // Zipf s=1 over 1000 values: P(1) = 1/H(1000) ≈ 0.1336, P(2) ≈ 0.0668, P(10) ≈ 0.01336
  const share = (id: string) => (counts.get(id) ?? 0) / n;
  assert.ok(Math.abs(share('dft_000001') - 0.1336) < 0.01, `share of the first: ${share('dft_000001')}`);
  assert.ok(Math.abs(share('dft_000002') - 0.0668) < 0.006, `share of the second: ${share('dft_000002')}`);
  assert.ok(Math.abs(share('dft_000010') - 0.01336) < 0.003, `share of the tenth: ${share('dft_000010')}`);
  assert.ok(counts.size > 700, `most of the 1000 values appear: ${counts.size}`);
  assert.equal(render(compileTemplate('{int:07-07}'), 0), '07', '{int} pads the same way');
  assert.equal(render(compileTemplate('{zipf:5-5}'), 0), '5');
});

test('weights set the proportions', () => {
  const mix = parseMix('[{path: /a, weight: 3}, {path: /b, weight: 1}]');
  const f = new RequestFactory(mix);
  let a = 0;
  const n = 20_000;
  for (let i = 0; i < n; i++) if (f.make(i).path === '/a') a++;
  assert.ok(Math.abs(a / n - 0.75) < 0.03, `share of /a: ${a / n}`);
});

test('the target URL path prefixes the mix paths', () => {
  const f = new RequestFactory(parseMix('[{path: "/x/{seq}"}]'), '/api/');
  assert.equal(f.make(7).path, '/api/x/7');
});

test('mix errors name the file and the entry', () => {
  const cases: [string, RegExp][] = [
    ['[]', /non-empty list/],
    ['requests: [{path: /a}]\nextra: 1', /unknown key "extra"/],
    ['[{path: a}]', /requests\[0\]\.path must be a string starting with \//],
    ['[{path: /a, method: FETCH}]', /requests\[0\]\.method: "FETCH"/],
    ['[{path: /a}, {path: /b, weight: 0}]', /requests\[1\]\.weight must be a positive number/],
    ['[{path: /a, bogus: 1}]', /unknown key "bogus"/],
    ['[{path: "/a/{int:9-1}"}]', /lower bound is above/],
    ['[{path: "/a/{choice:}"}]', /needs at least one word/],
    ['[{path: "/a/{zipf:1-2000000}"}]', /at most 1000000 values/],
    ['[{path: /a, headers: [x]}]', /headers must be a mapping/],
    ['{ not: [valid', /not valid YAML/],
    ['[{path: /a, headers: {"bad name": x}}]', /"bad name" is not a valid header name/],
    ['[{path: /a, headers: {x-a: "1\\n2"}}]', /cannot hold line breaks/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseMix(text, 'm.yaml'), (e: unknown) => e instanceof MixError && re.test(e.message) && e.message.startsWith('m.yaml'), text);
  }
  assert.throws(() => loadMixFile('/nonexistent/mix.yaml'), /cannot read/);
});

test('the generator sends the mix as written: bodies, headers, and {seq} unique across threads', async (t) => {
  const seen: { method: string; url: string; headers: Record<string, unknown>; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const mix = parseMix(`
requests:
  - path: /mcp/add_video
    method: POST
    headers: { x-idempotency-key: "k-{seq}" }
    body: { draft_id: "d-{seq}" }
`);
  const { tally } = await runPhase({ origin, basePath: '/base', mix, mode: 'open', rate: 200, connections: 4, durationMs: 1000, timeoutMs: 10_000, threads: 2 });
  assert.equal(seen.length, tally.sent);
  assert.ok(seen.length >= 190, `sent ${seen.length}`);
  const keys = new Set<string>();
  for (const r of seen) {
    assert.equal(r.method, 'POST');
    assert.equal(r.url, '/base/mcp/add_video');
    assert.equal(r.headers['content-type'], 'application/json');
    const body = JSON.parse(r.body) as { draft_id: string };
    assert.equal(`k-${body.draft_id.slice(2)}`, r.headers['x-idempotency-key'], 'one {seq} value per request');
    keys.add(r.headers['x-idempotency-key'] as string);
  }
  assert.equal(keys.size, seen.length, '{seq} never repeats, across both threads');
});

test('bench/report/draft-mix.yaml drives the example draft service\'s real calls without errors', async (t) => {
  const { startDraftService } = await import('../../examples/draft-service');
  const { repoRoot } = await import('../helpers/repo');
  const svc = await startDraftService({ port: 0 });
  t.after(() => svc.close());
  const mix = loadMixFile(join(repoRoot(), 'bench', 'report', 'draft-mix.yaml'));
  const { tally } = await runPhase({ origin: svc.url, basePath: '', mix, mode: 'open', rate: 200, connections: 8, durationMs: 1500, timeoutMs: 10_000, threads: 1 });
  assert.equal(tally.errors, 0, JSON.stringify(tally.outcomes));
  assert.ok(tally.completed >= 290, `${tally.completed} answers`);
  const byPath = svc.stats().byPath as Record<string, number>;
  for (const p of ['/query_script', '/add_video', '/mcp']) assert.ok((byPath[p] ?? 0) > 0, `${p} reached the service: ${JSON.stringify(byPath)}`);
});
