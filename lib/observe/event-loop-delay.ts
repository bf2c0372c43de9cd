/**
 * nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds: how late the event loop ran a timer that asks
 * to run every SAMPLE_MS, between two scrapes. Same names, help and cluster aggregation as prom-client's
 * defaults, with one difference: prom-client records the time between the sampler's runs, which includes the
 * sampling interval itself (an idle loop reads ~10 ms at its default 10 ms interval, and would read 100 ms at
 * ours). These report only the delay beyond the interval: ~0 on an idle loop, and what a blocked loop added.
 *
 * Why 100 ms: a 10 ms sampler wakes every process 100 times a second, idle or not, which on a small VM cost
 * ~10 ms of CPU a second per process (bench/rate-cpu.ts). At 100 ms a 15 s scrape still has 150 samples.
 * (nodejs_eventloop_lag_seconds, prom-client's setImmediate probe at scrape time, has no sampler and stays.)
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

export const SAMPLE_MS = 100;

/**
 * prom-client's own sampler for the gauges replaced here: as slow as it can be (its gauges are unregistered, so
 * it would only cost wake-ups). collectDefaultMetrics has no option to leave the sampler out.
 */
export const PROM_CLIENT_SAMPLER_MS = 2 ** 31 - 1;

type Stat = 'min' | 'max' | 'mean' | 'stddev' | 'p50' | 'p90' | 'p99';
const GAUGES: ReadonlyArray<readonly [Stat, string, 'min' | 'max' | 'average']> = [
  ['min', 'The minimum recorded event loop delay.', 'min'],
  ['max', 'The maximum recorded event loop delay.', 'max'],
  ['mean', 'The mean of the recorded event loop delays.', 'average'],
  ['stddev', 'The standard deviation of the recorded event loop delays.', 'average'],
  ['p50', 'The 50th percentile of the recorded event loop delays.', 'average'],
  ['p90', 'The 90th percentile of the recorded event loop delays.', 'average'],
  ['p99', 'The 99th percentile of the recorded event loop delays.', 'average'],
];

/** Replace prom-client's event-loop delay gauges in `registry` (after collectDefaultMetrics) with these. */
export function registerEventLoopDelay(registry: Registry): void {
  const histogram = monitorEventLoopDelay({ resolution: SAMPLE_MS });
  histogram.enable();
  const interval = SAMPLE_MS * 1e6; // ns
  /** Seconds the loop was late beyond the sampling interval (a sampler that ran early is not "negative late"). */
  const late = (ns: number) => Math.max(0, ns - interval) / 1e9;
  const gauges = new Map<Stat, Gauge>();
  for (const [stat, help, aggregator] of GAUGES) {
    const name = `nodejs_eventloop_lag_${stat}_seconds`;
    registry.removeSingleMetric(name);
    // the first gauge's collect sets all of them from one reading, then starts the next window
    const collect = stat === 'min' ? () => {
      // no sample since the last scrape (scrapes closer than SAMPLE_MS): keep the last window's figures
      if (histogram.count === 0) return;
      gauges.get('min')!.set(late(histogram.min));
      gauges.get('max')!.set(late(histogram.max));
      gauges.get('mean')!.set(late(histogram.mean));
      gauges.get('stddev')!.set(histogram.stddev / 1e9);
      gauges.get('p50')!.set(late(histogram.percentile(50)));
      gauges.get('p90')!.set(late(histogram.percentile(90)));
      gauges.get('p99')!.set(late(histogram.percentile(99)));
      histogram.reset();
    } : undefined;
    gauges.set(stat, new Gauge({ name, help, registers: [registry], aggregator, collect }));
  }
}
