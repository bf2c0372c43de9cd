/**
 * CI step before `npm test` (.ci/run): makes the image test's stand-in base image (debootstrap takes minutes
 * on a cold cache) and builds the Dockerfile once, so test/k8s/image-podman.test.ts finds the layers cached
 * and stays within a test file's time limit. The test builds the Dockerfile again itself; with nothing
 * changed that is a cache check of every step.
 *
 *   node dist/test/k8s/podman-prepare.js
 */
import { repoRoot } from '../helpers/repo';
import { buildImage, requirePodman } from './podman';

const started = Date.now();
requirePodman();
const notes = buildImage(repoRoot(), (s) => console.log(`podman-prepare: ${s}`));
console.log(`podman-prepare: ${notes.join('; ')}; ready in ${((Date.now() - started) / 1000).toFixed(0)} s`);
