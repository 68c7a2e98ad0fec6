// Exercises the offline migration tooling on a scratch schema in a temp dir (never prisma/ itself).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyMigrations, MigrationError, migrationState } from '../api/src/lib/migrations.js';
import { createMigration, openTarget, prismaHistory, status, statusIsClean, type Paths, type Target } from './db.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

const HEADER = `generator client {
  provider = "prisma-client"
  output   = "./generated"
}

datasource db {
  provider = "postgresql"
}
`;

const schemaV1 = `${HEADER}
enum Status {
  DRAFT
  PUBLISHED
}

model Note {
  id        Int      @id @default(autoincrement())
  title     String
  status    Status   @default(DRAFT)
  createdAt DateTime @default(now())
}
`;

// V1 plus a nullable column.
const schemaV2 = schemaV1.replace('  title     String\n', '  title     String\n  body      String?\n');

let dir: string;
let paths: Paths;
let target: Target;

const writeSchema = (content: string) => writeFile(paths.schema, content);
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'scripts/db.ts', ...args],
      { cwd: repoRoot, env: { ...process.env, DATABASE_URL: '', ...env }, timeout: 90_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'hub-db-test-'));
  paths = { schema: path.join(dir, 'schema.prisma'), migrations: path.join(dir, 'migrations') };
  await writeSchema(schemaV1);
  target = await openTarget({ pgliteDir: 'memory://' });
});

afterAll(async () => {
  await target?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('scripts/db.ts on PGlite', () => {
  let init: string;
  let addBody: string;

  it('creates an initial migration from the schema', async () => {
    const created = await createMigration(paths, 'init');
    expect(created).not.toBeNull();
    init = created!.name;
    expect(init).toMatch(/^\d{14}_init$/);
    const sql = await readFile(path.join(paths.migrations, init, 'migration.sql'), 'utf8');
    expect(sql).toContain('CREATE TABLE "Note"');
    expect(sql).toContain(`CREATE TYPE "Status" AS ENUM ('DRAFT', 'PUBLISHED')`);
    expect(await readFile(path.join(paths.migrations, 'migration_lock.toml'), 'utf8')).toContain('provider = "postgresql"');
  }, 60_000);

  it('applies it once, recording it as Prisma does', async () => {
    expect(await applyMigrations(target.executor, paths.migrations)).toEqual({ applied: [init] });
    expect(await applyMigrations(target.executor, paths.migrations)).toEqual({ applied: [] });

    const rows = await target.executor.query<{ id: string; checksum: string; finished_at: Date | null; applied_steps_count: number; logs: string | null }>(
      'SELECT * FROM _prisma_migrations WHERE migration_name = $1',
      [init],
    );
    expect(rows).toHaveLength(1);
    const sql = await readFile(path.join(paths.migrations, init, 'migration.sql'), 'utf8');
    expect(rows[0]!.checksum).toBe(sha256(sql));
    expect(rows[0]!.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(rows[0]!.finished_at).toBeInstanceOf(Date);
    expect(rows[0]!.applied_steps_count).toBe(1);

    await target.executor.query(`INSERT INTO "Note" (title) VALUES ('hello')`);
    const [note] = await target.executor.query<{ status: string }>('SELECT status FROM "Note"');
    expect(note!.status).toBe('DRAFT');
  });

  it('reports no changes when the schema matches the migrations', async () => {
    expect(await createMigration(paths, 'nothing')).toBeNull();
  });

  it('creates a second migration with ALTER TABLE after a column is added', async () => {
    await writeSchema(schemaV2);
    const created = await createMigration(paths, 'add body');
    expect(created).not.toBeNull();
    addBody = created!.name;
    expect(addBody).toMatch(/^\d{14}_add_body$/);
    expect(addBody > init).toBe(true);
    expect(created!.sql).toMatch(/ALTER TABLE "Note" ADD COLUMN\s+"body" TEXT/);

    const before = await status(paths, target);
    expect(before.pending).toEqual([addBody]);
    expect(statusIsClean(before)).toBe(false);

    expect(await applyMigrations(target.executor, paths.migrations)).toEqual({ applied: [addBody] });
  }, 60_000);

  it('reports a clean status, and Prisma agrees with the recorded history', async () => {
    const report = await status(paths, target);
    expect(report).toMatchObject({ applied: [init, addBody], pending: [], failed: [], edited: [], databaseDrift: null, schemaChanges: null });
    expect(statusIsClean(report)).toBe(true);

    const prisma = await prismaHistory(paths, target);
    expect(prisma).toEqual({ editedMigrationNames: [], failedMigrationNames: [], hasMigrationsTable: true, history: null });
  }, 60_000);

  it('reports drift in the database and schema changes missing from the migrations', async () => {
    await target.executor.exec('ALTER TABLE "Note" ADD COLUMN "sneaky" INTEGER');
    await writeSchema(schemaV2.replace('  body      String?\n', '  body      String?\n  pinned    Boolean @default(false)\n'));
    try {
      const report = await status(paths, target);
      expect(report.pending).toEqual([]);
      expect(report.databaseDrift).toContain('sneaky');
      expect(report.schemaChanges).toContain('pinned');
      expect(statusIsClean(report)).toBe(false);
    } finally {
      await target.executor.exec('ALTER TABLE "Note" DROP COLUMN "sneaky"');
      await writeSchema(schemaV2);
    }
  }, 60_000);

  it('refuses to run when an applied migration was edited', async () => {
    const file = path.join(paths.migrations, init, 'migration.sql');
    const original = await readFile(file, 'utf8');
    await writeFile(file, `${original}\n-- edited\n`);
    try {
      await expect(applyMigrations(target.executor, paths.migrations)).rejects.toThrow(/modified after they were applied.*_init/);
      expect((await migrationState(target.executor, paths.migrations)).edited).toEqual([init]);
    } finally {
      await writeFile(file, original);
    }
  });

  it('rolls back a failing migration completely and records nothing', async () => {
    const bad = path.join(paths.migrations, '99990101000000_broken');
    await mkdir(bad);
    await writeFile(path.join(bad, 'migration.sql'), 'CREATE TABLE "Half" (id INT);\nSELECT * FROM "does_not_exist";\n');
    try {
      const error = await applyMigrations(target.executor, paths.migrations).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationError);
      expect(String(error)).toMatch(/99990101000000_broken.*does_not_exist/);
      const [half] = await target.executor.query<{ t: string | null }>(`SELECT to_regclass('"Half"')::text AS t`);
      expect(half!.t).toBeNull();
      const rows = await target.executor.query('SELECT 1 FROM _prisma_migrations WHERE migration_name = $1', ['99990101000000_broken']);
      expect(rows).toHaveLength(0);
    } finally {
      await rm(bad, { recursive: true });
    }
    expect((await migrationState(target.executor, paths.migrations)).pending).toEqual([]);
  });
});

describe('scripts/db.ts command line', () => {
  it('prints "No schema changes", and status exits 1 while migrations are pending', async () => {
    const pgliteDir = path.join(dir, 'cli-pglite');
    const common = ['--schema', paths.schema, '--migrations', paths.migrations];
    const [migrate, pending] = await Promise.all([
      runCli(['migrate', '--name', 'noop', '--create-only', ...common]),
      runCli(['status', ...common, '--pglite-dir', pgliteDir]),
    ]);
    expect(migrate.stderr).toBe('');
    expect(migrate.stdout).toContain('No schema changes');
    expect(migrate.code).toBe(0);
    expect(pending.stdout).toMatch(/Pending \(2\):/);
    expect(pending.code).toBe(1);

    const deployed = await runCli(['deploy', ...common, '--pglite-dir', pgliteDir]);
    expect(deployed.stdout).toContain('Applied 2 migration(s)');
    expect(deployed.code).toBe(0);
    expect(existsSync(path.join(pgliteDir, 'PG_VERSION'))).toBe(true);
  }, 120_000);
});

describe.runIf(process.env.TEST_DATABASE_URL)('scripts/db.ts on PostgreSQL (TEST_DATABASE_URL)', () => {
  const name = `hub_db_script_test_${process.pid}`;
  let admin: Target;
  let url: string;

  beforeAll(async () => {
    admin = await openTarget({ databaseUrl: process.env.TEST_DATABASE_URL });
    await admin.executor.exec(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.executor.exec(`CREATE DATABASE "${name}"`);
    const u = new URL(process.env.TEST_DATABASE_URL!);
    u.pathname = `/${name}`;
    url = u.toString();
  });

  afterAll(async () => {
    await admin?.executor.exec(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin?.close();
  });

  it('applies each migration exactly once when two runners start together, and status is clean', async () => {
    const [a, b] = await Promise.all([openTarget({ databaseUrl: url }), openTarget({ databaseUrl: url })]);
    try {
      const results = await Promise.all([applyMigrations(a.executor, paths.migrations), applyMigrations(b.executor, paths.migrations)]);
      expect(results.flatMap((r) => r.applied).sort()).toEqual((await migrationState(a.executor, paths.migrations)).applied);
      expect(results.flatMap((r) => r.applied)).toHaveLength(2);

      const report = await status(paths, a);
      expect(report).toMatchObject({ pending: [], databaseDrift: null, schemaChanges: null });
      expect(await prismaHistory(paths, a)).toMatchObject({ history: null, editedMigrationNames: [], failedMigrationNames: [] });
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 60_000);
});
