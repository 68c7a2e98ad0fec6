// Writes the printed SDL to api/schema.graphql: the codegen input and the review diff of every API change.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { printSchema, lexicographicSortSchema } from 'graphql';
import { repoRoot } from '../lib/paths.js';
import { schema } from './index.js';

export const printedSchema = () => printSchema(lexicographicSortSchema(schema)) + '\n';

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(resolve(repoRoot, 'api/schema.graphql'), printedSchema());
  console.log('api/schema.graphql written');
}
