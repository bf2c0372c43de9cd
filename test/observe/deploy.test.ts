/**
 * What ships in deploy/ for monitoring: the Prometheus rules pass `promtool check rules` and their unit tests
 * (`promtool test rules`: each alert fires on a bad pod and stays quiet on a healthy one), the Helm chart's
 * PrometheusRule carries the same alerts and passes promtool too, and every query of the Grafana dashboard is
 * valid PromQL over series the real sidecar exports.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { repoRoot } from '../helpers/repo';
import { runHelm, chartDir } from '../k8s/helm';
import { startDraftService } from '../../examples/draft-service';
import { startSidecar, basicPolicy } from '../helpers/sidecar';
import { http, parseMetrics, promtool } from './helpers';

const RULES = join(repoRoot(), 'deploy', 'prometheus-rules.yaml');
const DASHBOARD = join(repoRoot(), 'deploy', 'grafana-dashboard.json');

interface Rule { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string> }
interface RuleFile { groups: Array<{ name: string; rules: Rule[] }> }

function alerts(file: RuleFile): Map<string, Rule> {
  return new Map(file.groups.flatMap((g) => g.rules).filter((r) => r.alert).map((r) => [r.alert!, r]));
}

function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\b(bridge_sidecar_[a-z_]+|process_[a-z_]+|nodejs_[a-z0-9_]+)\b/g) ?? [])];
}

test('deploy/prometheus-rules.yaml: promtool check rules and the rule unit tests pass', () => {
  const check = promtool(['check', 'rules', RULES]);
  assert.equal(check.code, 0, check.output);
  assert.match(check.output, /SUCCESS: \d+ rules found/);
  assert.doesNotMatch(check.output, /WARNING/i);
  const unit = promtool(['test', 'rules', join(repoRoot(), 'test', 'observe', 'prometheus-rules.test.yaml')]);
  assert.equal(unit.code, 0, unit.output);
  const names = [...alerts(parse(readFileSync(RULES, 'utf8')) as RuleFile).keys()];
  for (const a of ['BridgeSidecarHighErrorRatio', 'BridgeSidecarHighP99Latency', 'BridgeSidecarShedding', 'BridgeSidecarPolicyReloadFailed', 'BridgeSidecarRedisDown']) {
    assert.ok(names.includes(a), `${a} is shipped`);
  }
});

test('the Helm chart PrometheusRule has the same alerts (for, severity, series) and passes promtool', { timeout: 120_000 }, (t) => {
  const r = runHelm(['template', 'rel', chartDir, '--set', 'metrics.prometheusRule.enabled=true', '--show-only', 'templates/prometheusrule.yaml']);
  assert.equal(r.status, 0, r.stderr);
  const doc = parseAllDocuments(r.stdout).map((d) => d.toJS() as { kind: string; spec: RuleFile }).find((d) => d?.kind === 'PrometheusRule');
  assert.ok(doc, 'a PrometheusRule is rendered');
  const dir = mkdtempSync(join(tmpdir(), 'bridge-observe-rules-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'chart-rules.yaml');
  writeFileSync(file, stringify(doc.spec));
  const check = promtool(['check', 'rules', file]);
  assert.equal(check.code, 0, check.output);

  const chart = alerts(doc.spec);
  const shipped = alerts(parse(readFileSync(RULES, 'utf8')) as RuleFile);
  assert.deepEqual([...chart.keys()].sort(), [...shipped.keys()].sort());
  for (const [name, rule] of shipped) {
    const c = chart.get(name)!;
    assert.equal(c.for, rule.for, `${name}: for`);
    assert.equal(c.labels?.severity, rule.labels?.severity, `${name}: severity`);
    assert.deepEqual(metricNames(c.expr).sort(), metricNames(rule.expr).sort(), `${name}: series`);
    if (name !== 'BridgeSidecarDown') assert.match(c.expr, /job="rel-bridge-sidecar"/, `${name}: scoped to the release`);
  }
});

test('the Grafana dashboard: valid JSON, every query valid PromQL over series the sidecar exports', { timeout: 120_000 }, async (t) => {
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    uid: string; title: string;
    templating: { list: Array<{ name: string }> };
    panels: Array<{ id: number; type: string; title: string; targets?: Array<{ expr: string; refId: string }> }>;
  };
  assert.equal(dash.uid, 'bridge-sidecar');
  assert.deepEqual(dash.templating.list.map((v) => v.name), ['datasource', 'job', 'instance']);
  const ids = dash.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((x) => ({ panel: p.title, expr: x.expr })));
  assert.ok(exprs.length >= 25, `dashboard has queries (${exprs.length})`);
  // no query may depend on particular bucket bounds: metrics.buckets is the policy's (and Prometheus 3 rewrites le)
  for (const { panel, expr } of exprs) assert.doesNotMatch(expr, /\ble\s*=~?\s*"/, `panel "${panel}" reads a particular bucket`);

  // PromQL syntax: as recording rules (Grafana's variables replaced by values), checked by promtool
  const concrete = (e: string) => e.replace(/\$__rate_interval/g, '1m').replace(/\$job/g, '.*').replace(/\$instance/g, '.*');
  const dir = mkdtempSync(join(tmpdir(), 'bridge-observe-dash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'dashboard-queries.yaml');
  writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: exprs.map((x, i) => ({ record: `dashboard:query${i}:check`, expr: concrete(x.expr) })) }] }));
  const check = promtool(['check', 'rules', file]);
  assert.equal(check.code, 0, check.output);

  // every series the dashboard reads is on a real sidecar's /metrics page (features on, two workers)
  const upstream = await startDraftService({ port: 0, host: '127.0.0.1' });
  t.after(() => upstream.close());
  const sc = await startSidecar(basicPolicy(upstream.port, 'queues: { max_in_flight: 8 }\ncache:\n  l1: { size: 1MB }\n', { workers: 2 }));
  t.after(() => sc.stop());
  const families = parseMetrics((await http(`${sc.adminUrl}/metrics`)).text);
  for (const { panel, expr } of exprs) {
    for (const name of metricNames(expr)) {
      const base = name.replace(/_(bucket|count|sum)$/, '');
      assert.ok(families.has(name) || families.has(base), `panel "${panel}" reads ${name}, which /metrics does not have`);
    }
  }
});
