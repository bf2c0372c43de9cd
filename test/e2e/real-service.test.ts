/**
 * The real CapCutAPI draft service and its real MCP bridge behind bridge-sidecar with examples/policy.yaml, as a
 * user runs them (only addresses and paths changed), with a real redis-server. What must hold:
 *   - after every write the service does without internet media, the next query_script (force_update:false)
 *     through the sidecar answers what the service answers (failed writes and force_update:true included);
 *   - one user's ordinary session (the editor opening, writes, reads) gets no 429;
 *   - {"draft_id": 4242} is not served the entry stored for "4242";
 *   - an MCP tools/call add_text through the real bridge (behind its own sidecar) invalidates the draft.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedis, type RedisInstance } from '../helpers/redis';
import { startSidecar, type SidecarProcess } from '../helpers/sidecar';
import { waitFor } from '../helpers/ports';
import { call, examplePolicy, startCapcutBridge, startCapcutService, startMediaServer, type CapcutProcess, type JsonReply } from '../helpers/real-service';

let redis: RedisInstance;
let service: CapcutProcess;
let media: { url: string; close(): Promise<void> };
let sidecar: SidecarProcess;
let dir: string;
const cleanups: Array<() => Promise<unknown>> = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'real-service-e2e-'));
  // one at a time, so a failure leaves nothing it started unstopped
  redis = await startRedis();
  media = await startMediaServer();
  service = await startCapcutService();
  sidecar = await startSidecar(examplePolicy({ upstreamUrl: service.url, redisUrl: redis.url, dir: join(dir, 'a') }), { dir: mkdtempSync(join(dir, 'a-')), timeoutMs: 90_000 });
});

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await sidecar?.stop();
  await Promise.all([service?.stop(), redis?.stop(), media?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

const script = (base: string, draftId: unknown, extra: Record<string, unknown> = { force_update: false }, headers: Record<string, string> = {}): Promise<JsonReply> =>
  call(base, '/query_script', { draft_id: draftId, ...extra }, headers);
const cacheStatus = (r: JsonReply): string => r.headers.get('cache-status') ?? '';

/** Reads through the sidecar until a read is a cache hit (each worker has its own L1; L2 is written behind). */
async function cachedCopy(base: string, draftId: unknown): Promise<JsonReply> {
  let last: JsonReply | null = null;
  await waitFor(`a cached copy of ${String(draftId)}`, async () => /hit/.test(cacheStatus(last = await script(base, draftId))), 15_000, 50);
  return last!;
}

test('after every write, query_script through the sidecar answers what the service answers', async () => {
  const created = await call(sidecar.url, '/create_draft', { width: 1080, height: 1920 });
  assert.equal(created.json.success, true, JSON.stringify(created.json));
  const id: string = created.json.output.draft_id;
  const effect: string = (await call(sidecar.url, '/get_video_scene_effect_types')).json.output[0].name;

  // [path, body, does the service change the draft?] in an order that works: the keyframe needs the image track
  const writes: Array<[string, Record<string, unknown>, boolean]> = [
    ['/add_text', { text: 'hello', start: 0, end: 2 }, true],
    ['/add_image', { image_url: `${media.url}/a.png`, start: 0, end: 2 }, true],
    ['/add_video', { video_url: `${media.url}/b.png`, start: 0, end: 2 }, true],
    ['/add_audio', { audio_url: `${media.url}/c.png`, start: 0, end: 2 }, true],
    ['/add_sticker', { sticker_id: '7107529669750066445', start: 0, end: 2 }, true],
    ['/add_video_keyframe', { track_name: 'video_main', property_type: 'alpha', time: 0.5, value: '0.5' }, false],
    ['/add_subtitle', { srt: '1\n00:00:00,000 --> 00:00:01,000\nhello\n' }, true],   // answers success:false
    ['/add_effect', { effect_type: effect }, true],                                     // answers success:false
    ['/create_draft', {}, false],                                                       // names an existing draft
    ['/save_draft', {}, false],
  ];
  for (const [path, body, changes] of writes) {
    const before = await script(service.url, id);
    assert.equal(before.json.success, true);
    await cachedCopy(sidecar.url, id);

    const w = await call(sidecar.url, path, { ...body, draft_id: id });
    assert.equal(w.status, 200, `${path}: ${JSON.stringify(w.json)}`);
    const direct = await script(service.url, id);
    const through = await script(sidecar.url, id);
    if (changes) assert.notEqual(direct.json.output, before.json.output, `${path} changed the draft (success: ${w.json.success})`);
    // save_draft goes on in the service's background (it re-reads media metadata), so the draft may change
    // between the two reads: the sidecar's answer must be the service's state just before or just after it
    const after = through.json.output === direct.json.output ? direct : await script(service.url, id);
    assert.equal(through.json.output, after.json.output, `${path} (answered success: ${w.json.success}): the sidecar served the draft as it was before the write (Cache-Status: ${cacheStatus(through)}; the old copy: ${through.json.output === before.json.output})`);
  }

  // force_update absent (the service's default) refreshes media metadata: a read that writes. On a draft of its
  // own: a background save (above) can refresh the media too
  const other: string = (await call(sidecar.url, '/create_draft', {})).json.output.draft_id;
  await call(sidecar.url, '/add_image', { draft_id: other, image_url: `${media.url}/d.png`, start: 0, end: 2 });
  const before = await script(service.url, other);
  await cachedCopy(sidecar.url, other);
  const fresh = await script(sidecar.url, other, {});
  assert.equal(fresh.json.success, true);
  const direct = await script(service.url, other);
  assert.notEqual(direct.json.output, before.json.output, 'force_update refreshed the media (the image was 0x0)');
  assert.equal((await script(sidecar.url, other)).json.output, direct.json.output, 'force_update:true invalidated the cached copy');
});

test('one user\'s ordinary session gets no 429: the editor opening, writes and reads, with and without X-User-Id', async () => {
  const lists = ['intro_animation', 'outro_animation', 'transition', 'mask', 'font', 'text_intro', 'text_outro', 'text_loop_anim', 'video_scene_effect', 'video_character_effect'];
  for (const headers of [{ 'x-user-id': 'editor-user' }, {} as Record<string, string>]) {
    const statuses: number[] = [];
    // the editor opens twice (a reload), as fast as it can: lists, create, writes, reads
    for (let round = 0; round < 2; round++) {
      const opened = await Promise.all(lists.map((l) => fetch(`${sidecar.url}/get_${l}_types`, { headers }).then(async (r) => { await r.arrayBuffer(); return r.status; })));
      statuses.push(...opened);
      const created = await call(sidecar.url, '/create_draft', {}, headers);
      statuses.push(created.status);
      const id = created.json.output?.draft_id;
      for (const [path, body] of [['/add_text', { text: 't', start: 0, end: 1 }], ['/add_sticker', { sticker_id: '7107529669750066445' }], ['/add_text', { text: 'u', start: 1, end: 2 }]] as const) {
        statuses.push((await call(sidecar.url, path, { ...body, draft_id: id }, headers)).status);
        statuses.push((await script(sidecar.url, id, {}, headers)).status);
        for (let i = 0; i < 5; i++) statuses.push((await script(sidecar.url, id, { force_update: false }, headers)).status);
      }
      statuses.push((await call(sidecar.url, '/save_draft', { draft_id: id }, headers)).status);
      for (let i = 0; i < 5; i++) statuses.push((await call(sidecar.url, '/query_draft_status', { task_id: id }, headers)).status);
    }
    assert.deepEqual(statuses.filter((s) => s !== 200), [], `headers ${JSON.stringify(headers)}: every request of the session was served`);
    assert.equal(statuses.length, 76);
  }
});

test('{"draft_id": 4242} is not served the entry stored for "4242"', async () => {
  const id = `42${Date.now() % 100000}`;
  assert.equal((await call(sidecar.url, '/create_draft', { draft_id: id })).json.output.draft_id, id);
  const stored = await cachedCopy(sidecar.url, id);
  assert.equal(stored.json.success, true);

  const direct = await script(service.url, Number(id));
  assert.equal(direct.json.success, false, 'the service does not know the number');
  const through = await script(sidecar.url, Number(id));
  assert.equal(through.json.success, false, `the number got the string's draft (Cache-Status: ${cacheStatus(through)})`);
  assert.deepEqual(through.json, direct.json);
  assert.equal((await script(sidecar.url, id)).json.output, stored.json.output, 'the string id still has its entry');
});

/** What a failed cross-pod test needs to be understood from CI's output: invalidation and redis figures, and the warnings. */
async function diagnose(s: SidecarProcess): Promise<string> {
  const metrics = await fetch(`${s.adminUrl}/metrics`).then((r) => r.text()).catch((e: Error) => `metrics: ${e.message}`);
  const figures = metrics.split('\n').filter((l) => /^bridge_sidecar_(invalidat|redis|cache_requests_total)/.test(l)).join('; ');
  const warnings = s.logs.filter((l) => (typeof l.level === 'number' ? l.level >= 40 : /warn|error/.test(String(l.level))) || /redis|invalidat|subscri/.test(String(l.msg)))
    .slice(-30).map((l) => JSON.stringify(l)).join('\n  ');
  return `${figures}\n  ${warnings}`;
}

test('an MCP tools/call add_text through the real bridge invalidates the draft', async () => {
  // the bridge runs beside the service and calls it directly; its clients reach it through a second sidecar with
  // the same policy (a second pod), and the two share Redis: the tools/call route raises draft_updated there
  const bridge = await startCapcutBridge(service.url);
  cleanups.push(() => bridge.stop());
  const front = await startSidecar(examplePolicy({ upstreamUrl: bridge.url, redisUrl: redis.url, dir: join(dir, 'b') }), { dir: mkdtempSync(join(dir, 'b-')), timeoutMs: 90_000 });
  cleanups.push(() => front.stop());

  const id: string = (await call(sidecar.url, '/create_draft', {})).json.output.draft_id;
  const cached = await cachedCopy(sidecar.url, id);

  const rpc = await call(front.url, '/mcp', { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'add_text', arguments: { draft_id: id, text: 'via mcp', start: 0, end: 1 } } });
  assert.equal(rpc.status, 200, JSON.stringify(rpc.json));
  assert.equal(JSON.parse(rpc.json.result.content[0].text).success, true, rpc.json.result.content[0].text);
  const direct = await script(service.url, id);
  assert.notEqual(direct.json.output, cached.json.output, 'the tool call changed the draft');
  // the event crosses pods through Redis (async): wait for it, bounded. The answer must be the service's state
  // (read just before or just after it), never the copy cached before the call
  let last: JsonReply | null = null;
  let now = direct;
  try {
    await waitFor('the cached draft to be invalidated in the other pod', async () => {
      last = await script(sidecar.url, id);
      if (last.json.output === now.json.output) return true;
      now = await script(service.url, id);
      return last.json.output === now.json.output;
    }, 15_000, 100);
  } catch (err) {
    const l = last as JsonReply | null;
    throw new Error(`${(err as Error).message}; last answer through the first pod: ${l?.status ?? '-'}, Cache-Status ${l ? cacheStatus(l) : '-'}, `
      + `body ${l ? JSON.stringify(l.json).slice(0, 200) : '-'}, `
      + `the copy cached before the call: ${l?.json.output === cached.json.output}; the service's now: ${l?.json.output === now.json.output}\n`
      + `first pod: ${await diagnose(sidecar)}\nsecond pod: ${await diagnose(front)}`);
  }
});
