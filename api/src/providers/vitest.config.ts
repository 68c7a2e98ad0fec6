import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Stand-alone config for the provider layer: no database setup file, so these tests run on their own
// (`pnpm exec vitest run --config api/src/providers/vitest.config.ts`). The root config runs them too.
export default defineConfig({
  root: fileURLToPath(new URL('../../..', import.meta.url)),
  test: {
    include: ['api/src/providers/**/*.test.ts'],
    testTimeout: 30_000,
  },
});
