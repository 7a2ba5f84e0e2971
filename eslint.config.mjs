// Flat config: typescript-eslint's recommended rules over src/ and test/, type-checked
// separately by `tsc` (npm run compile).
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// The engine's rooms (src/core/<room>/, each with a README.md) and which rooms each may
// import. `vscode` never enters src/core; sql.js is imported by src/core/sqlite/sqlEngine.ts
// alone; nothing under src/core imports the CLI or the extension's features.
const ROOMS = {
  common: [],
  sqlite: ['common'],
  discovery: ['common'],
  store: ['common', 'sqlite'],
  memory: ['common', 'sqlite', 'store'],
  archive: ['common', 'sqlite', 'store'],
  remote: ['common', 'store'],
  ops: ['common', 'sqlite', 'store', 'memory', 'archive', 'remote', 'discovery'],
};
const NO_VSCODE = { name: 'vscode', message: 'src/core is shared by the CLI and the tests: no vscode here (features/ wraps it).' };
const NO_SQLJS = { name: 'sql.js', message: 'sql.js is used through src/core/sqlite/sqlEngine.ts only.' };
const ENGINE_FILE = 'src/core/sqlite/sqlEngine.ts';

function roomRules(room, mayImport, { allowSqlJs = false } = {}) {
  const others = Object.keys(ROOMS).filter((r) => r !== room && !mayImport.includes(r));
  return {
    'no-restricted-imports': [
      'error',
      {
        paths: allowSqlJs ? [NO_VSCODE] : [NO_VSCODE, NO_SQLJS],
        patterns: [
          ...(others.length ? [{ group: others.map((r) => `../${r}/*`), message: `src/core/${room} may import only from ${['itself', ...mayImport].join(', ')} (see src/core/${room}/README.md).` }] : []),
          { group: ['../../features/*', '../../cli/*', '../../extension', '**/features/*'], message: 'src/core never imports the CLI or the extension.' },
        ],
      },
    ],
  };
}

export default tseslint.config(
  { ignores: ['dist/', 'out/', 'node_modules/', '.cache/', 'bench/.cache/', 'test-results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    // Outside the engine module, nobody imports sql.js.
    files: ['src/**/*.ts', 'test/**/*.ts'],
    ignores: [ENGINE_FILE],
    rules: { 'no-restricted-imports': ['error', { paths: [NO_SQLJS] }] },
  },
  ...Object.entries(ROOMS).map(([room, mayImport]) => ({
    files: [`src/core/${room}/**/*.ts`],
    ignores: [ENGINE_FILE],
    rules: roomRules(room, mayImport),
  })),
  { files: [ENGINE_FILE], rules: roomRules('sqlite', ROOMS.sqlite, { allowSqlJs: true }) },
  {
    files: ['**/*.mjs', '**/*.cjs', '**/*.js'],
    languageOptions: { globals: { ...globals.node, ...globals.mocha } },
    rules: { '@typescript-eslint/no-require-imports': 'off', 'no-unused-vars': ['error', { argsIgnorePattern: '^_' }] },
  },
  {
    // Functions Playwright evaluates in the page.
    files: ['test/vscode/**/*.mjs'],
    languageOptions: { globals: { ...globals.node, ...globals.mocha, ...globals.browser } },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node, ...globals.commonjs } },
  },
);
