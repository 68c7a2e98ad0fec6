import { afterAll, beforeAll } from 'vitest';
import { databaseOpened, getTestDatabase, resetDatabase } from './db.js';

process.env.NODE_ENV ??= 'test';

// Test data is isolated per file: a file that follows another on this worker starts with empty tables.
beforeAll(async () => {
  if (databaseOpened()) await resetDatabase(await getTestDatabase());
});

// pg queues a statement sent on a connection that is still running one, and warns once per process
// (pg 9 refuses it): the file during which that happened fails.
const watch = globalThis as { pgQueued?: string[] };
if (!watch.pgQueued) {
  const queued: string[] = (watch.pgQueued = []);
  process.on('warning', (w) => {
    if (w.name === 'DeprecationWarning' && /already executing a query/.test(w.message)) queued.push(w.stack ?? w.message);
  });
}
afterAll(() => {
  const seen = watch.pgQueued!.splice(0);
  if (seen.length > 0) throw new Error(`a statement was sent on a busy pg connection:\n${seen.join('\n')}`);
});
