/** What a worker tells the primary when it takes an overload step (lib/perf/overload.ts), for /readyz. */
export interface OverloadReport {
  state: 'normal' | 'shrink_cache' | 'refuse_connections';
  memoryRatio: number;
}
