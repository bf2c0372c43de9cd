// Imports a module as if from this directory, so bare names resolve in scripts/k8s-tools/node_modules (the
// on-demand install of scripts/get-k8s-tools.js) rather than in the project's own node_modules.
export function load(specifier) {
  return import(specifier);
}
