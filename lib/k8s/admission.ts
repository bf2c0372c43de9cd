/**
 * The mutating admission webhook's answer to one AdmissionReview (admission.k8s.io/v1) for a Pod: the same
 * injection as `bridge-sidecar inject`, returned as a base64 JSONPatch. It never denies a pod: a pod that
 * cannot get the sidecar (another mesh's proxy, a bad annotation) is admitted unchanged with a warning that
 * kubectl shows, so the webhook can never block a rollout.
 */
import type { InjectConfig } from './config';
import { diffPatch } from './json-patch';
import { injectPod, InjectError } from './pod';
import type { ObjectMeta, PodSpec } from './types';

export class AdmissionReviewError extends Error {}

export interface ReviewOutcome {
  /** The AdmissionReview to send back. */
  readonly review: Record<string, unknown>;
  /** For the log: injected, skipped (why) or refused (why). */
  readonly outcome: 'injected' | 'unchanged' | 'skipped' | 'refused';
  readonly detail: string;
  readonly pod: string;
}

interface Request {
  uid: string;
  kind?: { kind?: string };
  operation?: string;
  namespace?: string;
  object?: { metadata?: ObjectMeta; spec?: PodSpec; [k: string]: unknown };
}

export function reviewPod(body: unknown, cfg: InjectConfig): ReviewOutcome {
  const review = body as { apiVersion?: string; kind?: string; request?: Request } | null;
  if (!review || typeof review !== 'object' || review.kind !== 'AdmissionReview') throw new AdmissionReviewError('not an AdmissionReview');
  if (review.apiVersion !== 'admission.k8s.io/v1') throw new AdmissionReviewError(`apiVersion ${JSON.stringify(review.apiVersion)}: only admission.k8s.io/v1 is served`);
  const req = review.request;
  if (!req || typeof req.uid !== 'string' || req.uid === '') throw new AdmissionReviewError('request.uid is missing');
  const meta = req.object?.metadata ?? {};
  const pod = `${req.namespace ?? meta.namespace ?? ''}/${meta.name ?? meta.generateName ?? '?'}`;
  const answer = (response: Record<string, unknown>): Record<string, unknown> => ({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: req.uid, allowed: true, ...response },
  });
  if (req.kind?.kind !== 'Pod' || req.operation !== 'CREATE' || !req.object?.spec) {
    return { review: answer({}), outcome: 'skipped', detail: `${req.operation ?? '?'} ${req.kind?.kind ?? '?'}: only pod creation is injected`, pod };
  }
  const original = req.object;
  let result;
  try {
    result = injectPod({ metadata: original.metadata, spec: original.spec as PodSpec }, cfg);
  } catch (e) {
    if (!(e instanceof InjectError)) throw e;
    const warning = `bridge-sidecar: not injected: ${e.message}`;
    return { review: answer({ warnings: [warning.slice(0, 1000)] }), outcome: 'refused', detail: e.message, pod };
  }
  if (result.kind === 'skipped') return { review: answer({}), outcome: 'skipped', detail: result.reason, pod };
  const patch = diffPatch(original, { ...original, metadata: result.pod.metadata, spec: result.pod.spec });
  if (patch.length === 0) return { review: answer({}), outcome: 'unchanged', detail: 'already injected', pod };
  return {
    review: answer({ patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') }),
    outcome: 'injected', detail: `${patch.length} patch operations`, pod,
  };
}
