import { describe, expect, it } from 'vitest';
import { getTestDatabase, usingPostgres } from '../../test/db.js';

describe.runIf(usingPostgres())('a PostgreSQL transaction', () => {
  it('fails, and ends nothing else, when the server drops its connection between two statements', async () => {
    const db = await getTestDatabase();
    const outcome = db.transaction(async (query) => {
      const [{ pid }] = (await query<{ pid: number }>('SELECT pg_backend_pid() AS pid')) as [{ pid: number }];
      // Another connection ends this one while the transaction does work of its own.
      await db.query('SELECT pg_terminate_backend($1)', [pid]);
      await new Promise((r) => setTimeout(r, 200));
      return query('SELECT 1');
    });
    await expect(outcome).rejects.toThrow();
    // The broken connection went back to the pool destroyed: the next transaction gets a working one.
    expect(await db.transaction((query) => query<{ n: number }>('SELECT 1 AS n'))).toEqual([{ n: 1 }]);
  });
});
