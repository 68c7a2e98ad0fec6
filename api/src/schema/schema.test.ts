import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../lib/paths.js';
import { printedSchema } from './print.js';

describe('api/schema.graphql', () => {
  it('is up to date with the code (run `pnpm generate` after changing the schema)', () => {
    const committed = readFileSync(resolve(repoRoot, 'api/schema.graphql'), 'utf8');
    expect(committed).toBe(printedSchema());
  });
});
