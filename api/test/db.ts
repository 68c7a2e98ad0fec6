import pg from 'pg';
import { openDatabase, type Database } from '../src/lib/db.js';

/**
 * One database per test worker, shared by every file that worker runs (PGlite takes ~4 s to boot).
 * Default: in-memory PGlite. With TEST_DATABASE_URL (an admin connection to PostgreSQL) each worker
 * gets its own freshly created database `hub_test_<worker>` on that server.
 */
let shared: Promise<Database> | undefined;

export const usingPostgres = () => Boolean(process.env.TEST_DATABASE_URL);

export function testDatabaseUrl(name: string): string {
  const url = new URL(process.env.TEST_DATABASE_URL!);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Creates (or re-creates) an empty PostgreSQL database on the TEST_DATABASE_URL server. */
export async function createPostgresDatabase(name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  return testDatabaseUrl(name);
}

export function getTestDatabase(): Promise<Database> {
  shared ??= (async () => {
    if (usingPostgres()) {
      const worker = process.env.VITEST_POOL_ID ?? process.env.VITEST_WORKER_ID ?? '0';
      const url = await createPostgresDatabase(`hub_test_${worker}`);
      return openDatabase({ url, poolSize: 30 });
    }
    return openDatabase({ dataDir: 'memory://' });
  })();
  return shared;
}

export const databaseOpened = () => shared !== undefined;

/** Empties every table (keeping the migration history) so each test file starts from nothing. */
export async function resetDatabase(db: Database): Promise<void> {
  const rows = await db.prisma.$queryRaw<{ tablename: string }[]>`
    SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'`;
  if (rows.length === 0) return;
  const list = rows.map((r) => `"public"."${r.tablename}"`).join(', ');
  await db.prisma.$executeRawUnsafe(`TRUNCATE ${list} RESTART IDENTITY CASCADE`);
}
