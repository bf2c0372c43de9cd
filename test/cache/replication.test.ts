/**
 * One cache per pod: what a worker stores in its L1 goes to its siblings (through the primary), and only when
 * it has siblings. The pod's only worker (the primary told it it is `sole`) sends nothing: with workers: 1,
 * every fill used to be encoded, sent to the primary, parsed and dropped there, a cost seen in the first
 * seconds after start-up, when most requests are fills.
 *
 * The worker's channel here records what it sends and hands everything on to the in-process primary, so the
 * stages, the upstream and the HTTP are the real ones.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SingleCoordinator } from '../../lib/server/ipc';
import type { WorkerChannel, Handler, Listener } from '../../lib/core/ipc';
import type { BroadcastTopic, BroadcastTopics, ReplyOf, RequestOf, RequestTopic } from '../../lib/core/topics';
import { policy, request, startSidecar, startUpstream } from './harness';

/** A worker's channel that records its broadcasts; requests and deliveries go to the in-process primary. */
class RecordingWorkerChannel implements WorkerChannel {
  readonly role = 'worker' as const;
  readonly id = 1;
  readonly sent: string[] = [];
  constructor(private readonly primary: SingleCoordinator, public sole: boolean) {}
  request<K extends RequestTopic>(topic: K, payload: RequestOf<K>): Promise<ReplyOf<K>> {
    return this.primary.request(topic, payload);
  }
  handle<K extends RequestTopic>(topic: K, fn: Handler<K>): void {
    this.primary.handle(topic, fn);
  }
  broadcast<K extends BroadcastTopic>(topic: K, payload: BroadcastTopics[K]): void {
    this.sent.push(topic);
    this.primary.broadcast(topic, payload);
  }
  on<K extends BroadcastTopic>(topic: K, fn: Listener<K>): () => void {
    return this.primary.on(topic, fn);
  }
}

const ROUTES = `
routes:
  - name: fonts
    match: { method: GET, path: "/get_font_types" }
    cache: { key: "static:fonts", ttl: 1m }
cache:
  l1: { size: 1MB }
`;

for (const sole of [true, false]) {
  test(`a worker ${sole ? 'alone in its pod sends its fills to no one' : 'with siblings sends each fill to them once'}`, async (t) => {
    const up = await startUpstream(() => ({ headers: { 'content-type': 'application/json' }, body: '{"fonts":["a"]}' }));
    t.after(() => up.close());
    let channel: RecordingWorkerChannel | null = null;
    const sc = await startSidecar(policy(up.url, ROUTES), {
      worker: (primary) => {
        channel = new RecordingWorkerChannel(primary, sole);
        return { coordinator: channel, workerIndex: 0 };
      },
    });
    t.after(() => sc.close());
    assert.equal((await request(sc.url, { path: '/get_font_types' })).headers['cache-status'], 'bridge-sidecar; fwd=miss; stored');
    assert.match(String((await request(sc.url, { path: '/get_font_types' })).headers['cache-status']), /hit; ttl=\d+; detail=l1/);
    const replicas = channel!.sent.filter((topic) => topic === 'cache:replicate').length;
    assert.equal(replicas, sole ? 0 : 1, `cache:replicate broadcasts: ${channel!.sent.join(', ')}`);
  });
}
