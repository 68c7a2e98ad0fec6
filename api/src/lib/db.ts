import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import v8 from 'node:v8';
import type { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../_generated/prisma/client.js';
import { applyMigrations, pgExecutor, pgliteExecutor } from './migrations.js';

export type { PrismaClient };
export type DbKind = 'pglite' | 'postgresql';

export type SqlQuery = <T = Record<string, unknown>>(text: string, params?: unknown[]) => Promise<T[]>;

/** One open database: the Prisma client plus the raw driver for what Prisma cannot do (LISTEN/NOTIFY, queue). */
export interface Database {
  prisma: PrismaClient;
  kind: DbKind;
  /** Set for the embedded database. */
  pglite?: PGlite;
  /** Set for PostgreSQL: a pool shared by the queue and the event bus. */
  pool?: pg.Pool;
  url?: string;
  /**
   * One raw SQL statement straight on the driver, bypassing Prisma: for hot paths that need a single round
   * trip. Columns come back as the driver parses them, which differs between pg and PGlite for int8,
   * numeric and timestamp without time zone: cast those to text or return json from such statements.
   */
  query: SqlQuery;
  /** Runs `fn` in one transaction on one connection, with the same raw-statement call; rolls back if it throws. */
  transaction<T>(fn: (query: SqlQuery) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** PostgreSQL connection string; when absent the embedded PGlite database is used. */
  url?: string;
  /** Directory of the embedded database; `memory://` keeps it in memory (tests). */
  dataDir?: string;
  migrate?: boolean;
  poolSize?: number;
}

// Money and counters are BigInt in the database; JSON has no BigInt, so serialise them as strings.
(BigInt.prototype as unknown as { toJSON(): string }).toJSON = function (this: bigint) {
  return this.toString();
};

/**
 * Raw statements run as named prepared statements: each connection parses and plans a statement once,
 * then only binds and executes it (the hot paths run the same few statements thousands of times).
 */
const statementNames = new Map<string, string>();
function statementName(text: string) {
  let name = statementNames.get(text);
  if (!name) {
    name = `hub_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
    if (statementNames.size < 1_000) statementNames.set(text, name);
  }
  return name;
}

/**
 * The embedded database is PostgreSQL compiled to WebAssembly. V8 compiles it with its baseline compiler
 * (Liftoff) and then, in the background, recompiles its hot functions with the optimizing one: about 60 MB
 * more resident memory in this process (compiled code and the compiler's own memory), for queries that
 * are small here (measured in bench/README.md, "Embedded database memory"). So this process compiles
 * WebAssembly with Liftoff only. V8 reads the flag when a module is compiled, so it must be set before
 * PGlite compiles its module; WebAssembly compiled earlier keeps its tiering.
 */
function useBaselineWasmCompiler() {
  v8.setFlagsFromString('--liftoff-only');
}

/** Shared buffers of the embedded database (see openDatabase). */
export const EMBEDDED_SHARED_BUFFERS = '32MB';

/** How long work waits for a database that is out of reach (a restart, a failover) before it fails. */
export const UNREACHABLE_WINDOW_MS = 10_000;

/**
 * `attempt`, tried again while `retry(err)` says the database was out of reach: after 0.1 s, then twice as
 * long each time up to 1 s, for at most `windowMs`. The caller decides which failures are safe to try again.
 */
export async function whileUnreachable<T>(attempt: () => Promise<T>, retry: (err: unknown) => boolean, windowMs = UNREACHABLE_WINDOW_MS): Promise<T> {
  const until = Date.now() + windowMs;
  for (let pause = 100; ; pause = Math.min(pause * 2, 1_000)) {
    try {
      return await attempt();
    } catch (err) {
      if (!retry(err) || Date.now() + pause > until) throw err;
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  if (opts.url) {
    const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize ?? 20 });
    // An idle connection the server closed (restart, failover, pg_terminate_backend) is dropped by the
    // pool and the next query opens a new one; unhandled, its 'error' event would end the process.
    pool.on('error', () => {});
    if (opts.migrate !== false) await applyMigrations(pgExecutor(pool));
    const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
    return {
      prisma,
      kind: 'postgresql',
      pool,
      url: opts.url,
      async query<T>(text: string, params?: unknown[]) {
        return (await pool.query({ name: statementName(text), text, values: params })).rows as T[];
      },
      async transaction(fn) {
        const client = await pool.connect();
        // Checked out, a connection has no listener of the pool's: dropped by the server between two
        // statements, its 'error' event would end the process. Its next statement fails instead, and the
        // pool destroys it on release.
        let broken: Error | undefined;
        const onError = (err: Error) => void (broken = err);
        client.on('error', onError);
        try {
          await client.query('BEGIN');
          const result = await fn(async <T>(text: string, params?: unknown[]) => (await client.query({ name: statementName(text), text, values: params })).rows as T[]);
          await client.query('COMMIT');
          return result;
        } catch (err) {
          if (!broken) await client.query('ROLLBACK').catch(() => {});
          throw err;
        } finally {
          client.off('error', onError);
          client.release(broken);
        }
      },
      async close() {
        await prisma.$disconnect();
        await pool.end();
      },
    };
  }
  const dir = opts.dataDir ?? resolve(process.cwd(), '.data');
  let location = dir;
  if (!dir.startsWith('memory://')) {
    location = resolve(dir, 'pglite');
    mkdirSync(location, { recursive: true });
  }
  // Loaded only for the embedded database: its WebAssembly build is tens of megabytes a PostgreSQL process never needs.
  const [{ PGlite }, { PrismaPGlite }] = await Promise.all([import('@electric-sql/pglite'), import('pglite-prisma-adapter')]);
  useBaselineWasmCompiler();
  // PostgreSQL's default 128 MB of shared buffers would be most of this process's memory; the embedded
  // database serves one process and its files sit in the OS page cache anyway.
  const pglite = await PGlite.create(location, { postgresqlconf: [`shared_buffers = ${EMBEDDED_SHARED_BUFFERS}`] });
  if (opts.migrate !== false) await applyMigrations(pgliteExecutor(pglite));
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) });
  return {
    prisma,
    kind: 'pglite',
    pglite,
    async query<T>(text: string, params?: unknown[]) {
      return (await pglite.query<T>(text, params)).rows;
    },
    transaction(fn) {
      return pglite.transaction((tx) => fn(async <T>(text: string, params?: unknown[]) => (await tx.query<T>(text, params)).rows));
    },
    async close() {
      await prisma.$disconnect();
      await pglite.close();
    },
  };
}
