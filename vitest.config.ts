import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

// One config for the whole workspace: `pnpm test` runs unit, API integration, SDK and browser tests.
export default defineConfig({
  resolve: {
    // Vite would pick graphql's ESM build for our sources while dependencies (Pothos, Apollo) load its
    // CommonJS build through Node: two realms, and "Cannot use GraphQLObjectType from another module".
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    include: ['api/**/*.test.ts', 'sdk/test/**/*.test.ts', 'web/test/**/*.test.ts', 'scripts/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**', '**/build/**'],
    // PGlite takes ~4 s to boot: share one instance per worker across files (see api/test/db.ts).
    isolate: false,
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // What a page shows after a reload or a round trip can take seconds on a busy CI machine: poll as long as
    // the browser tests' own step timeout (10 s), not Vitest's default 1 s.
    expect: { poll: { timeout: 10_000 } },
    setupFiles: ['api/test/setup.ts'],
  },
});
