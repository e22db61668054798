// Lint rules: typescript-eslint's recommended set; `any` is an error so core interfaces stay typed; and the layer
// rules of DESIGN.md: each folder of src/ may import only the layers below it (util is the base everyone may use).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** What each layer may import besides itself (transitively closed: a layer may use whatever its layers stand on). */
const LAYERS = {
  util: [],
  core: ['util'],
  nn: ['core', 'util'],
  models: ['nn', 'core', 'util'],
  optim: ['core', 'util'],
  tokenizers: ['util'],
  data: ['tokenizers', 'util'],
  train: ['models', 'optim', 'data', 'tokenizers', 'nn', 'core', 'util'],
  serve: ['models', 'tokenizers', 'nn', 'core', 'util'],
  align: ['train', 'serve', 'models', 'optim', 'data', 'tokenizers', 'nn', 'core', 'util'],
  retrieval: ['models', 'tokenizers', 'nn', 'core', 'util'],
  eval: ['models', 'serve', 'retrieval', 'tokenizers', 'nn', 'core', 'util'],
  registry: ['util'],
  report: ['train', 'eval', 'serve', 'models', 'optim', 'data', 'tokenizers', 'nn', 'core', 'util'],
};
const ALL = [...Object.keys(LAYERS), 'cli', 'web'];

const layerRules = Object.entries(LAYERS).map(([layer, allowed]) => {
  const forbidden = ALL.filter((l) => l !== layer && !allowed.includes(l));
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{
          regex: `^(\\.\\./)+(${forbidden.join('|')})/`,
          message: `${layer} may import only ${allowed.length ? allowed.join(', ') : 'itself'} (the layers of DESIGN.md point one way).`,
        }],
      }],
    },
  };
});

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'dev/**', 'test/reference/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  ...layerRules,
  {
    // The dashboard's pages: plain browser scripts (no build step), with the browser's globals and Chart.js.
    files: ['src/web/static/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: Object.fromEntries(['window', 'document', 'location', 'localStorage', 'fetch', 'console', 'setInterval', 'clearInterval', 'setTimeout', 'TextDecoder', 'Chart'].map((g) => [g, 'readonly'])),
    },
  },
  {
    files: ['scripts/**/*.mjs', 'eslint.config.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
