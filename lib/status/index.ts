/**
 * The operator's live view on the admin port: GET / (the page) and GET /stats (its JSON). Read-only, unguarded
 * like /metrics, and showing no secrets (the policy's values pass through lib/util/redact).
 */
import type { AdminServer } from '../server/admin';
import { SampleHistory, type HistoryOptions } from './history';
import type { MetricsJson } from './sample';
import { buildStats, type StatusSources } from './stats';
import { STATUS_PAGE } from './page';

export type { StatusSources } from './stats';

export interface StatusPage {
  close(): void;
}

export function registerStatusPage(admin: AdminServer, readMetrics: () => Promise<MetricsJson>, sources: StatusSources, opts: HistoryOptions = {}): StatusPage {
  const history = new SampleHistory(readMetrics, opts);
  history.start();
  admin.route('GET', '/', () => ({ status: 200, body: STATUS_PAGE, contentType: 'text/html; charset=utf-8' }));
  admin.route('GET', '/stats', async () => ({ status: 200, body: buildStats(await history.fresh(), sources) }));
  return { close: () => history.close() };
}
