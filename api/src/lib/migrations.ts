// Applies prisma/migrations/*/migration.sql without Prisma's native schema engine (which cannot be
// downloaded on air-gapped machines), keeping `_prisma_migrations` exactly as `prisma migrate deploy`
// would, so Prisma's own tooling (`migrate status`, `migrate deploy`) agrees with what ran here.
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import type { ClientBase, Pool } from 'pg';
import { repoRoot } from './paths.js';

export const DEFAULT_MIGRATIONS_DIR = path.join(repoRoot, 'prisma/migrations');

/** The key Prisma's schema engine passes to pg_advisory_lock, so this runner and the Prisma CLI exclude each other. */
export const PRISMA_MIGRATE_LOCK_KEY = 72707369;

// Same DDL as the schema engine's PostgreSQL connector.
const MIGRATIONS_TABLE_DDL = `CREATE TABLE IF NOT EXISTS _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);`;

/** What the runner needs from a database connection. */
export interface SqlExecutor {
  /** One statement with $1-style parameters; returns its rows as objects. */
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  /** A script of any number of statements (simple query protocol, no parameters). */
  exec(script: string): Promise<void>;
  /**
   * Runs `fn` on a single connection. Needed when the executor is backed by a pool, because the
   * advisory lock and BEGIN/COMMIT are per connection. Omit it for single-connection executors.
   */
  withConnection?<T>(fn: (conn: SqlExecutor) => Promise<T>): Promise<T>;
}

export function pgliteExecutor(db: Pick<PGlite, 'query' | 'exec'>): SqlExecutor {
  return {
    async query<R>(sql: string, params: unknown[] = []) {
      return (await db.query<R>(sql, params)).rows;
    },
    async exec(script: string) {
      await db.exec(script);
    },
  };
}

/** Accepts a `pg` Pool, or a Client / PoolClient that is already connected. */
export function pgExecutor(poolOrClient: Pool | ClientBase): SqlExecutor {
  const onClient = (client: ClientBase): SqlExecutor => ({
    async query<R>(sql: string, params: unknown[] = []) {
      return (await client.query(sql, params)).rows as R[];
    },
    async exec(script: string) {
      // Without parameters node-postgres uses the simple query protocol, which accepts many statements.
      await client.query(script);
    },
  });
  if (!isPool(poolOrClient)) return onClient(poolOrClient);
  const pool = poolOrClient;
  return {
    async query<R>(sql: string, params: unknown[] = []) {
      return (await pool.query(sql, params)).rows as R[];
    },
    async exec(script: string) {
      await pool.query(script);
    },
    async withConnection(fn) {
      const client = await pool.connect();
      try {
        return await fn(onClient(client));
      } finally {
        client.release();
      }
    },
  };
}

function isPool(x: Pool | ClientBase): x is Pool {
  return 'totalCount' in x && 'idleCount' in x;
}

export interface LocalMigration {
  /** Directory name, e.g. `20250101120000_init`. */
  name: string;
  script: string;
  checksum: string;
}

export function migrationChecksum(script: string | Uint8Array): string {
  return createHash('sha256').update(script).digest('hex');
}

// Old Prisma versions wrote checksums whose bytes were hex-formatted without zero padding; the
// engine still accepts those, so a database migrated by them must not be reported as edited.
function legacyChecksum(script: string): string {
  return [...createHash('sha256').update(script).digest()].map((b) => b.toString(16)).join('');
}

function checksumMatches(recorded: string, m: LocalMigration): boolean {
  return recorded === m.checksum || recorded === legacyChecksum(m.script);
}

/** Migration folders in lexical order, as Prisma orders them. */
export async function readMigrations(dir = DEFAULT_MIGRATIONS_DIR): Promise<LocalMigration[]> {
  if (!existsSync(dir)) return [];
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const file = path.join(dir, name, 'migration.sql');
      if (!existsSync(file)) throw new Error(`Migration folder ${name} has no migration.sql (${file})`);
      const bytes = await readFile(file);
      return { name, script: bytes.toString('utf8'), checksum: migrationChecksum(bytes) };
    }),
  );
}

interface MigrationRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

export interface MigrationState {
  /** Local migrations recorded as applied, in order. */
  applied: string[];
  /** Local migrations not applied yet, in order. */
  pending: string[];
  /** Migrations that started and never finished (Prisma's P3009 state). */
  failed: string[];
  /** Applied migrations whose file no longer matches the recorded checksum. */
  edited: string[];
  /** Applied migrations that have no folder here (applied by a newer checkout). */
  unknown: string[];
}

async function hasMigrationsTable(exec: SqlExecutor): Promise<boolean> {
  const [row] = await exec.query<{ t: string | null }>(`SELECT to_regclass('_prisma_migrations')::text AS t`);
  return row?.t != null;
}

function compare(local: LocalMigration[], rows: MigrationRow[]): MigrationState {
  const live = rows.filter((r) => r.rolled_back_at === null);
  const finished = new Map(live.filter((r) => r.finished_at !== null).map((r) => [r.migration_name, r.checksum]));
  const state: MigrationState = {
    applied: [],
    pending: [],
    failed: live.filter((r) => r.finished_at === null).map((r) => r.migration_name),
    edited: [],
    unknown: [...finished.keys()].filter((name) => !local.some((m) => m.name === name)),
  };
  for (const m of local) {
    const recorded = finished.get(m.name);
    if (recorded === undefined) {
      if (!state.failed.includes(m.name)) state.pending.push(m.name);
      continue;
    }
    state.applied.push(m.name);
    if (!checksumMatches(recorded, m)) state.edited.push(m.name);
  }
  return state;
}

async function readState(exec: SqlExecutor, local: LocalMigration[]): Promise<MigrationState> {
  const rows = (await hasMigrationsTable(exec))
    ? await exec.query<MigrationRow>(
        'SELECT migration_name, checksum, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY started_at',
      )
    : [];
  return compare(local, rows);
}

/** Read-only comparison of the migrations folder with the database's `_prisma_migrations`. */
export async function migrationState(exec: SqlExecutor, dir = DEFAULT_MIGRATIONS_DIR): Promise<MigrationState> {
  return readState(exec, await readMigrations(dir));
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/**
 * Applies every pending migration in order, each in its own transaction together with its
 * `_prisma_migrations` row. Refuses to run when an applied migration was edited or a previous
 * run failed (as `prisma migrate deploy` does), so the database never silently diverges.
 */
export async function applyMigrations(exec: SqlExecutor, dir = DEFAULT_MIGRATIONS_DIR): Promise<{ applied: string[] }> {
  const local = await readMigrations(dir);
  const run = exec.withConnection ? exec.withConnection.bind(exec) : <T>(fn: (c: SqlExecutor) => Promise<T>) => fn(exec);
  return run(async (conn) => {
    await conn.query(`SELECT pg_advisory_lock(${PRISMA_MIGRATE_LOCK_KEY})`);
    try {
      await conn.exec(MIGRATIONS_TABLE_DDL);
      // Read only after taking the lock: another process may have just applied some.
      const state = await readState(conn, local);
      if (state.failed.length) {
        throw new MigrationError(
          `Migrations failed earlier and are recorded as unfinished in _prisma_migrations: ${state.failed.join(', ')}. ` +
            'Fix the database by hand, then delete or mark those rows rolled back (rolled_back_at) before retrying.',
        );
      }
      if (state.edited.length) {
        throw new MigrationError(
          `Migrations were modified after they were applied (checksum mismatch): ${state.edited.join(', ')}. ` +
            'Restore the original migration.sql files and put changes in a new migration.',
        );
      }
      const applied: string[] = [];
      for (const name of state.pending) {
        const m = local.find((x) => x.name === name)!;
        await applyOne(conn, m);
        applied.push(name);
      }
      return { applied };
    } finally {
      await conn.query(`SELECT pg_advisory_unlock(${PRISMA_MIGRATE_LOCK_KEY})`);
    }
  });
}

async function applyOne(conn: SqlExecutor, m: LocalMigration): Promise<void> {
  const id = randomUUID();
  await conn.exec('BEGIN');
  try {
    await conn.query(
      `INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, applied_steps_count)
       VALUES ($1, $2, $3, clock_timestamp(), 0)`,
      [id, m.checksum, m.name],
    );
    await conn.exec(m.script);
    await conn.query(
      'UPDATE _prisma_migrations SET finished_at = clock_timestamp(), applied_steps_count = 1 WHERE id = $1',
      [id],
    );
    await conn.exec('COMMIT');
  } catch (e) {
    await conn.exec('ROLLBACK').catch(() => {});
    throw new MigrationError(`Migration ${m.name} failed and was rolled back: ${(e as Error).message}`, { cause: e });
  }
}
