import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { PrismaClient } from '../_generated/prisma/client.js';
import { applyMigrations, pgExecutor, pgliteExecutor } from './migrations.js';

export type { PrismaClient };
export type DbKind = 'pglite' | 'postgresql';

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
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
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

export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  if (opts.url) {
    const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize ?? 20 });
    if (opts.migrate !== false) await applyMigrations(pgExecutor(pool));
    const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
    return {
      prisma,
      kind: 'postgresql',
      pool,
      url: opts.url,
      async query<T>(text: string, params?: unknown[]) {
        return (await pool.query(text, params)).rows as T[];
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
  const pglite = await PGlite.create(location);
  if (opts.migrate !== false) await applyMigrations(pgliteExecutor(pglite));
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) });
  return {
    prisma,
    kind: 'pglite',
    pglite,
    async query<T>(text: string, params?: unknown[]) {
      return (await pglite.query<T>(text, params)).rows;
    },
    async close() {
      await prisma.$disconnect();
      await pglite.close();
    },
  };
}
