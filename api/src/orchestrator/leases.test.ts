import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase } from '../../test/db.js';
import type { Database, SqlQuery } from '../lib/db.js';
import { createLogger } from '../lib/logger.js';
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

/** A keeper for worker `w1`, counting its statements and the budget holds it keeps alive. */
function keeper(leaseMs: number) {
  const counts = { statements: 0, extended: [] as string[] };
  const query: SqlQuery = async <T,>(text: string, params?: unknown[]) => {
    counts.statements++;
    return db.query<T>(text, params);
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
});
