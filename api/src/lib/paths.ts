import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

/** Absolute path of the repository root (api/src/lib → ../../..). */
export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
