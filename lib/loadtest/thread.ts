/**
 * Worker-thread entry: says it is ready (modules loaded), then runs the engine it is given and posts its
 * ticks to the parent. The handshake lets all threads start at one shared instant.
 */
import { parentPort } from 'node:worker_threads';
import { startEngine, type EngineSpec } from './engine';
import { warmUpHttpClient } from './warmup';

if (parentPort) {
  const port = parentPort;
  port.once('message', (spec: EngineSpec) => {
    const engine = startEngine(spec, (tick) => port.postMessage({ type: 'tick', tick }));
    port.on('message', (m: { type?: string }) => {
      if (m.type === 'stop') engine.stop();
    });
    engine.done.then(
      () => port.postMessage({ type: 'done' }),
      (err: unknown) => port.postMessage({ type: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) }),
    );
  });
  warmUpHttpClient().then(
    () => port.postMessage({ type: 'ready' }),
    () => port.postMessage({ type: 'ready' }),
  );
}
