import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase, usingPostgres } from '../../test/db.js';
import type { Database, SqlQuery } from '../lib/db.js';
import { createLogger } from '../lib/logger.js';
import { createLocalBus } from '../lib/pubsub.js';
import { EventLog, RunEventWriter } from './events.js';
import { LeaseKeeper, type AttemptBudget } from './run-executor.js';

let db: Database;
let org: { id: string };
let project: { id: string };
let agent: { id: string };

beforeAll(async () => {
  db = await getTestDatabase();
  org = await db.prisma.organization.create({ data: { slug: `ls-${randomUUID().slice(0, 8)}`, name: 'Leases' } });
  project = await db.prisma.project.create({ data: { organizationId: org.id, slug: 'p', name: 'P' } });
  agent = await db.prisma.agent.create({ data: { organizationId: org.id, projectId: project.id, name: 'A', provider: 'OFFLINE', model: 'offline-echo' } });
});

async function aRunLeasedBy(owner: string, leaseExpiresAt = new Date(Date.now() + 1_000)) {
  const run = await db.prisma.agentRun.create({
    data: { organizationId: org.id, projectId: project.id, agentId: agent.id, input: 'x', status: 'RUNNING', leaseOwner: owner, leaseExpiresAt },
    select: { id: true },
  });
  return run.id;
}

const leaseOf = async (id: string) => (await db.prisma.agentRun.findUniqueOrThrow({ where: { id }, select: { leaseExpiresAt: true } })).leaseExpiresAt!.getTime();

/** The real statement runner, keeping the errors of the statements it sends. */
function recording(errors: unknown[], query: SqlQuery = db.query): SqlQuery {
  return async <T,>(text: string, params?: unknown[]) => {
    try {
      return await query<T>(text, params);
    } catch (err) {
      errors.push(err);
      throw err;
    }
  };
}

/** A keeper for worker `w1`, counting its statements and the budget holds it keeps alive. */
function keeper(leaseMs: number, errors: unknown[] = [], runner: SqlQuery = db.query) {
  const counts = { statements: 0, extended: [] as string[] };
  const record = recording(errors, runner);
  const query: SqlQuery = async <T,>(text: string, params?: unknown[]) => {
    counts.statements++;
    return record<T>(text, params);
  };
  const budget = { extend: async (runId: string) => void counts.extended.push(runId) } as unknown as AttemptBudget;
  const leases = new LeaseKeeper({ db: { query }, budget, logger: createLogger('silent'), workerId: 'w1' }, leaseMs);
  return { counts, leases };
}

describe('LeaseKeeper', () => {
  it('renews every run the worker holds in one statement, gives up a run another worker took over, and sends nothing once all are released', async () => {
    const [a, b, takenOver] = [await aRunLeasedBy('w1'), await aRunLeasedBy('w1'), await aRunLeasedBy('w2')];
    const before = { a: await leaseOf(a), b: await leaseOf(b), takenOver: await leaseOf(takenOver) };
    const { counts, leases } = keeper(60_000);
    const lost: string[] = [];
    const releases = [a, b, takenOver].map((id) => leases.hold(id, () => lost.push(id)));
    await leases.renew();
    expect(counts.statements).toBe(1);
    expect(await leaseOf(a)).toBeGreaterThan(before.a + 50_000);
    expect(await leaseOf(b)).toBeGreaterThan(before.b + 50_000);
    expect(await leaseOf(takenOver)).toBe(before.takenOver);
    expect(counts.extended.sort()).toEqual([a, b, takenOver].sort());
    // The run the other worker owns is given up here, once; the others are kept.
    expect(lost).toEqual([takenOver]);
    await leases.renew();
    expect(lost).toEqual([takenOver]);
    expect(counts.statements).toBe(2);

    for (const release of releases) release();
    await leases.renew();
    expect(counts.statements).toBe(2); // nothing held: nothing sent
  });

  it('renews on its own every third of the lease while a run is held', async () => {
    const run = await aRunLeasedBy('w1', new Date(Date.now() - 10_000));
    const { counts, leases } = keeper(300);
    const heldAt = Date.now();
    const release = leases.hold(run);
    await new Promise((resolve) => setTimeout(resolve, 450));
    release();
    expect(counts.statements).toBeGreaterThanOrEqual(2);
    expect(await leaseOf(run)).toBeGreaterThan(heldAt);
    const after = counts.statements;
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(counts.statements).toBe(after);
  });

  it.runIf(usingPostgres())('never waits for a busy run: renews the others at once and the busy one right after, so it cannot deadlock with the event statement', async () => {
    const far = new Date(Date.now() + 60_000);
    const [low, high] = [await aRunLeasedBy('w1', far), await aRunLeasedBy('w1', far)].sort();
    const { attempts } = await db.prisma.agentRun.findUniqueOrThrow({ where: { id: low! }, select: { attempts: true } });
    const errors: unknown[] = [];
    // Connections that read rows by index, as on a table of production size (a handful of rows would be
    // read in the order they were written, whatever the statements ask for).
    const url = new URL(db.url!);
    url.searchParams.set('options', '-c enable_seqscan=off');
    const byIndex = new pg.Pool({ connectionString: url.toString(), max: 4 });
    const query: SqlQuery = async <T,>(text: string, params?: unknown[]) => (await byIndex.query(text, params)).rows as T[];
    const { counts, leases } = keeper(60_000, errors, query);
    // Another transaction holds the higher run for a moment (as a claim or a final update would).
    const other = await db.pool!.connect();
    try {
      await other.query('BEGIN');
      await other.query(`SELECT 1 FROM "AgentRun" WHERE id = $1 FOR NO KEY UPDATE`, [high]);
      // One event statement for both runs, the higher one's batch first in it: it waits for that row.
      const log = new EventLog(recording(errors, query), createLocalBus());
      const writers = [high!, low!].map((id) => new RunEventWriter(log, id, 0, { owner: 'w1', attempt: attempts }));
      for (const w of writers) w.append('TOKEN', { text: 'x' });
      const stored = Promise.all(writers.map((w) => w.flush()));
      await waitForLockWaits(1);
      // The renewal meanwhile renews the run it can lock, and comes back for the busy one.
      const releases = [low!, high!].map((id) => leases.hold(id));
      const renewed = leases.renew();
      for (let i = 0; i < 200 && (await leaseOf(low!)) <= far.getTime(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(await leaseOf(low!)).toBeGreaterThan(far.getTime());
      expect(await leaseOf(high!)).toBe(far.getTime());
      await other.query('COMMIT');
      await Promise.all([stored, renewed]);
      releases.forEach((release) => release());
    } finally {
      other.release();
      await byIndex.end();
    }
    // A renewal that waited for the busy row while holding the other would have met the event statement
    // waiting the other way round, until PostgreSQL's deadlock check (1 s) failed one of them.
    expect(errors.map((e) => (e as { code?: string }).code ?? String(e))).toEqual([]);
    expect(counts.statements).toBeGreaterThanOrEqual(2);
    expect(await leaseOf(high!)).toBeGreaterThan(far.getTime());
    expect(await db.prisma.runEvent.count({ where: { runId: { in: [low!, high!] } } })).toBe(2);
  });
});

/** Waits until `n` statements on this database wait for a lock. */
async function waitForLockWaits(n: number) {
  for (let i = 0; i < 200; i++) {
    const [row] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
    if (row!.n >= n) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${n} statements never waited for a lock`);
}
