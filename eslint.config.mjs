// Typed linting (typescript-eslint) for what the compiler lets through in a proxy that is all callbacks and
// promises: a promise nobody awaits or catches, an async function where a callback's result is ignored (an
// event handler, a timer), and `any` flowing unchecked into typed code.
import tseslint from 'typescript-eslint';

const promises = {
  '@typescript-eslint/no-floating-promises': ['error', {
    // node:test's test()/describe() return promises the runner itself awaits
    allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }],
  }],
  '@typescript-eslint/no-misused-promises': 'error',
  '@typescript-eslint/no-require-imports': 'error',
};

const unsafe = {
  '@typescript-eslint/no-explicit-any': 'error',
  '@typescript-eslint/no-unsafe-assignment': 'error',
  '@typescript-eslint/no-unsafe-call': 'error',
  '@typescript-eslint/no-unsafe-member-access': 'error',
  '@typescript-eslint/no-unsafe-return': 'error',
  '@typescript-eslint/no-unsafe-argument': 'error',
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'scripts/**', '**/*.js', '**/*.mjs', '**/*.cjs'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: promises,
  },
  { files: ['lib/**/*.ts', 'cmd/**/*.ts', 'bench/**/*.ts', 'examples/**/*.ts'], rules: unsafe },
  // test/ reads JSON from real processes (/metrics, admin answers, logs) and checks it with assert: its
  // parsed bodies are `any` by design, so only the promise rules apply there.
  { files: ['test/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
);
