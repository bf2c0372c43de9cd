/**
 * nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds: how late the event loop ran a timer that asks
 * to run every SAMPLE_MS, between two scrapes. Same names, help and cluster aggregation as prom-client's
 * defaults, with one difference: prom-client records the time between the sampler's runs, which includes the
 * sampling interval itself (an idle loop reads ~10 ms at its default 10 ms interval, and would read 100 ms at
 * ours). These report only the delay beyond the interval: ~0 on an idle loop, and what a blocked loop added.
 *
 * Why 100 ms: a 10 ms sampler wakes every process 100 times a second, idle or not, which on a small VM cost
 * ~10 ms of CPU a second per process (bench/rate-cpu.ts). At 100 ms a 15 s scrape still has 150 samples.
 *
 * nodejs_eventloop_lag_seconds (how long a setImmediate queued at scrape time waited; the value a scrape reads is
 * the previous scrape's probe) is prom-client's, re-registered here unchanged in what it measures: prom-client
 * computes it in the same collect that reads its own delay histogram's seven statistics, and that histogram,
 * never sampled once its gauges are replaced, is empty, where each percentile walks all of its ~55,000 buckets:
 * 0.27 ms of a worker's event loop on every scrape (of ~0.65 ms for the whole registry), for figures nobody reads.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

export const SAMPLE_MS = 100;

/**
 * prom-client's own sampler for the gauges replaced here: as slow as it can be (its gauges are unregistered, so
 * it would only cost wake-ups). collectDefaultMetrics has no option to leave the sampler out.
 */
export const PROM_CLIENT_SAMPLER_MS = 2 ** 31 - 1;

type Histogram = ReturnType<typeof monitorEventLoopDelay>;
const INTERVAL_NS = SAMPLE_MS * 1e6;
/** Seconds the loop was late beyond the sampling interval (a sampler that ran early is not "negative late"). */
const late = (ns: number) => Math.max(0, ns - INTERVAL_NS) / 1e9;

/** Each gauge: its stat, help, aggregation over workers, and its figure from one window of the histogram. */
const GAUGES: ReadonlyArray<readonly [string, string, 'min' | 'max' | 'average', (h: Histogram) => number]> = [
  ['min', 'The minimum recorded event loop delay.', 'min', (h) => late(h.min)],
  ['max', 'The maximum recorded event loop delay.', 'max', (h) => late(h.max)],
  ['mean', 'The mean of the recorded event loop delays.', 'average', (h) => late(h.mean)],
  ['stddev', 'The standard deviation of the recorded event loop delays.', 'average', (h) => h.stddev / 1e9],
  ['p50', 'The 50th percentile of the recorded event loop delays.', 'average', (h) => late(h.percentile(50))],
  ['p90', 'The 90th percentile of the recorded event loop delays.', 'average', (h) => late(h.percentile(90))],
  ['p99', 'The 99th percentile of the recorded event loop delays.', 'average', (h) => late(h.percentile(99))],
];

const LAG = 'nodejs_eventloop_lag_seconds';

/** Replace prom-client's event-loop delay gauges in `registry` (after collectDefaultMetrics) with these. */
export function registerEventLoopDelay(registry: Registry): void {
  registry.removeSingleMetric(LAG);
  const lag: Gauge = new Gauge({
    name: LAG, help: 'Lag of event loop in seconds.', registers: [registry], aggregator: 'average',
    collect() {
      const start = process.hrtime.bigint();
      setImmediate(() => lag.set(Number(process.hrtime.bigint() - start) / 1e9));
    },
  });
  const histogram = monitorEventLoopDelay({ resolution: SAMPLE_MS });
  histogram.enable();
  const readers: Array<[Gauge, (h: Histogram) => number]> = [];
  // the first gauge's collect sets all of them from one window, then starts the next one
  const collect = (): void => {
    // no sample since the last scrape (scrapes closer than SAMPLE_MS): keep the last window's figures
    if (histogram.count === 0) return;
    for (const [gauge, read] of readers) gauge.set(read(histogram));
    histogram.reset();
  };
  for (const [stat, help, aggregator, read] of GAUGES) {
    const name = `nodejs_eventloop_lag_${stat}_seconds`;
    registry.removeSingleMetric(name);
    readers.push([new Gauge({ name, help, registers: [registry], aggregator, collect: readers.length === 0 ? collect : undefined }), read]);
  }
}
