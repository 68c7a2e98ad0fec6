import { beforeAll } from 'vitest';
import { databaseOpened, getTestDatabase, resetDatabase } from './db.js';

process.env.NODE_ENV ??= 'test';

// Test data is isolated per file: a file that follows another on this worker starts with empty tables.
beforeAll(async () => {
  if (databaseOpened()) await resetDatabase(await getTestDatabase());
});
