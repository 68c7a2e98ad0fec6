import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase, usingPostgres } from '../../../test/db.js';
import type { Database } from '../../lib/db.js';
import { createLogger } from '../../lib/logger.js';
import { createLocalBus, createPgBus, type EventBus } from '../../lib/pubsub.js';
import { RunBlockedError, type RunContext } from '../../orchestrator/run-executor.js';
import type { AttemptInfo, AttemptOutcome } from '../../providers/index.js';
import { announceBudgetChange, BudgetGuard, LEASE_CHANNEL, type BudgetGuardOptions } from './budget-guard.js';
import { windowEnd, windowStart } from './windows.js';

// The guard on its own, against the real database: several guards in one test are several processes.
const AMOUNT = 1_000n;
const logger = createLogger('silent');
let db: Database;
let sharedBus: EventBus;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  db = await getTestDatabase();
  sharedBus = createLocalBus();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

/** A guard as one process has it; on PostgreSQL each gets its own LISTEN connection, as separate processes do. */
async function aProcess(opts: BudgetGuardOptions = {}) {
  const bus = usingPostgres() ? await createPgBus(db.url!, db.pool!, logger) : sharedBus;
  const guard = new BudgetGuard(db, bus, logger, opts);
  closers.push(async () => {
    await guard.close();
    if (bus !== sharedBus) await bus.close();
  });
  return { guard, bus };
}

/** setBudget's announcement, on a process's bus; returns once that process has seen it. */
async function announceChange(bus: EventBus, organizationId: string) {
  let seen!: () => void;
  const arrived = new Promise<void>((r) => (seen = r));
  const unsubscribe = await bus.subscribe(LEASE_CHANNEL, (m) => (m as { changed?: string } | null)?.changed === organizationId && seen());
  await announceBudgetChange(bus, organizationId);
  await arrived;
  await unsubscribe();
}

/** An organization with its own DAILY budget (and optionally a project one) and `runs` runs to admit. */
async function anOrganization(limit: bigint, runs: number, projectLimit?: bigint) {
  const org = await db.prisma.organization.create({ data: { slug: `g-${randomUUID().slice(0, 8)}`, name: 'G', timeZone: 'Europe/Paris' } });
  const project = await db.prisma.project.create({ data: { organizationId: org.id, slug: 'p', name: 'P' } });
  const agent = await db.prisma.agent.create({ data: { organizationId: org.id, projectId: project.id, name: 'A', provider: 'OPENAI', model: 'gpt-4.1' } });
  const windowStart = new Date(Date.now() - 3600_000);
  const daily = await db.prisma.budget.create({ data: { organizationId: org.id, period: 'DAILY', limitMicros: limit, windowStart } });
  if (projectLimit !== undefined) await db.prisma.budget.create({ data: { organizationId: org.id, projectId: project.id, period: 'DAILY', limitMicros: projectLimit, windowStart } });
  const contexts: RunContext[] = [];
  for (let i = 0; i < runs; i++) {
    const run = await db.prisma.agentRun.create({ data: { organizationId: org.id, projectId: project.id, agentId: agent.id, input: 'x' } });
    contexts.push({ runId: run.id, organizationId: org.id, projectId: project.id, agentId: agent.id });
  }
  return { org, project, daily, runs: contexts };
}

const attempt = (number = 1, maxCostMicros: bigint = AMOUNT): AttemptInfo => ({
  number,
  chainIndex: 0,
  attemptForEntry: number,
  provider: 'OPENAI',
  model: 'gpt-4.1',
  inputTokensEstimate: 100,
  maxOutputTokens: 100,
  maxCostMicros,
});

const outcome = (costMicros: bigint): AttemptOutcome => ({
  status: 'succeeded',
  usage: { inputTokens: 100, cachedInputTokens: 0, outputTokens: 25 },
  usageReported: true,
  costMicros,
  emittedText: true,
  text: 'ok',
  durationMs: 1,
});

/** Reserves, and says whether the attempt was admitted (RunBlockedError details when not). */
async function tryReserve(guard: BudgetGuard, run: RunContext, amount = AMOUNT) {
  try {
    return { hold: await guard.reserve(run, attempt(1, amount)) };
  } catch (err) {
    if (err instanceof RunBlockedError) return { blocked: err.details as Record<string, string> };
    throw err;
  }
}

async function budgetRow(id: string) {
  return db.prisma.budget.findUniqueOrThrow({ where: { id } });
}

/** The money invariant, and reserved = open holds + leases, to the micro-dollar. */
async function expectConsistent(budgetId: string) {
  // One statement, so one snapshot: a lease given back between separate reads would look like a mismatch.
  const [row] = await db.query<{ within: boolean; reserved: string; held: string }>(
    `SELECT b."spentMicros" + b."reservedMicros" <= b."limitMicros" AS within, b."reservedMicros"::text AS reserved,
            ((SELECT coalesce(sum(l."amountMicros"), 0) FROM "BudgetLease" l WHERE l."budgetId" = b.id)
             + (SELECT coalesce(sum(r."amountMicros"), 0) FROM "BudgetReservation" r WHERE r."budgetId" = b.id AND r.status = 'OPEN'))::text AS held
       FROM "Budget" b WHERE b.id = $1::uuid`,
    [budgetId],
  );
  expect(row!.within).toBe(true);
  expect(BigInt(row!.reserved)).toBe(BigInt(row!.held));
  return budgetRow(budgetId);
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('admission from a leased allowance', () => {
  it('admits 40 concurrent attempts without a round trip each, and settles them in a few group commits', async () => {
    const { guard } = await aProcess();
    const { daily, runs, project } = await anOrganization(1_000_000n, 40, 2_000_000n);
    const holds = await Promise.all(runs.map((r) => guard.reserve(r, attempt())));
    // After looking up the budgets that apply: allowance for all 40 in one or two statements.
    expect(guard.statements).toBeLessThanOrEqual(2);

    const before = guard.statements;
    await Promise.all(runs.map((r, i) => guard.settle(holds[i], r, attempt(), outcome(400n))));
    expect(guard.statements - before).toBeLessThanOrEqual(3);

    const projectBudget = await db.prisma.budget.findFirstOrThrow({ where: { projectId: project.id } });
    for (const id of [daily.id, projectBudget.id]) expect((await expectConsistent(id)).spentMicros).toBe(40n * 400n);
    // One ledger row per attempt, written with the spend.
    const ledger = await db.prisma.usageRecord.aggregate({ where: { runId: { in: runs.map((r) => r.runId) } }, _sum: { costMicros: true }, _count: true });
    expect(ledger._count).toBe(40);
    expect(ledger._sum.costMicros).toBe(40n * 400n);
  });

  it.runIf(usingPostgres())('never sends a statement on its own connection while another is still running there', async () => {
    // A pool of our own whose connections count the statements in flight on each (pg queues a second
    // one on a busy connection, which it deprecates: pg 9 throws instead).
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    let most = 0;
    pool.on('connect', (client) => {
      let active = 0;
      const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
      (client as unknown as { query: typeof query }).query = async (...args) => {
        most = Math.max(most, ++active);
        try {
          return await query(...args);
        } finally {
          active--;
        }
      };
    });
    const guard = new BudgetGuard({ ...db, pool }, sharedBus, logger);
    try {
      // Eight organizations looked up at once, then admitted and settled while the others still look up.
      const orgs = await Promise.all(Array.from({ length: 8 }, () => anOrganization(1_000_000n, 3)));
      const runs = orgs.flatMap((o) => o.runs);
      const holds = await Promise.all(runs.map((r) => guard.reserve(r, attempt())));
      await Promise.all(runs.map((r, i) => guard.settle(holds[i], r, attempt(), outcome(400n))));
      for (const o of orgs) expect((await expectConsistent(o.daily.id)).spentMicros).toBe(3n * 400n);
      expect(most).toBe(1);
    } finally {
      await guard.close();
      await pool.end();
    }
  });

  it('holds and settles each attempt of a run on its own (a retry, then a fallback)', async () => {
    const { guard } = await aProcess();
    const { daily, runs } = await anOrganization(1_000_000n, 1);
    const run = runs[0]!;
    const spare = async () => (await budgetRow(daily.id)).reservedMicros;
    const first = await guard.reserve(run, attempt(1));
    const second = await guard.reserve(run, attempt(2, 3n * AMOUNT));
    // Both worst cases are held at once: the lease covers them and whatever spare it keeps.
    expect(await spare()).toBeGreaterThanOrEqual(4n * AMOUNT);
    // The first failed before the provider answered: no ledger row, nothing spent, its hold freed.
    await guard.settle(first, run, attempt(1), { ...outcome(0n), status: 'failed', usageReported: false, emittedText: false, usage: { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0 } });
    await guard.settle(second, run, attempt(2, 3n * AMOUNT), outcome(700n));
    const rows = await db.prisma.usageRecord.findMany({ where: { runId: run.runId }, select: { attempt: true, costMicros: true } });
    expect(rows).toEqual([{ attempt: 2, costMicros: 700n }]);
    expect(await expectConsistent(daily.id)).toMatchObject({ spentMicros: 700n });
  });

  it('admits to the micro-dollar in one process: what settles below its hold is admissible again at once', async () => {
    const { guard } = await aProcess();
    const { org, daily, runs } = await anOrganization(10n * AMOUNT, 14);
    const first = await Promise.all(runs.slice(0, 12).map((r) => tryReserve(guard, r)));
    expect(first.filter((r) => r.hold)).toHaveLength(10);
    const refused = first.find((r) => r.blocked)!.blocked!;
    expect(refused).toMatchObject({ budgetId: daily.id, period: 'DAILY', limitMicros: '10000', spentMicros: '0', reservedMicros: '10000', requestedMicros: '1000' });
    expect(await db.prisma.auditLog.count({ where: { organizationId: org.id, action: 'budget.exceeded' } })).toBe(2);

    // An attempt that cost nothing gives its whole hold back: one more fits.
    const admitted = first.filter((r) => r.hold).map((r, i) => ({ hold: r.hold!, run: runs[i]! }));
    await guard.settle(admitted[0]!.hold, admitted[0]!.run, attempt(), outcome(0n));
    expect((await tryReserve(guard, runs[12]!)).hold).toBeDefined();
    // One that cost 600 keeps 600 of it: 9 held + 600 spent leave 400, less than an attempt.
    await guard.settle(admitted[1]!.hold, admitted[1]!.run, attempt(), outcome(600n));
    expect((await tryReserve(guard, runs[13]!)).blocked).toMatchObject({ spentMicros: '600', reservedMicros: '9000' });
    await expectConsistent(daily.id);
  });

  it("another process's spare allowance does not block a run near the limit: it is asked back first", async () => {
    const a = await aProcess({ idleReturnMs: 60_000 });
    const b = await aProcess({ idleReturnMs: 60_000 });
    const { daily, runs } = await anOrganization(10n * AMOUNT, 12);
    // Process A admits and settles one attempt (100 spent) and keeps spare allowance for more.
    const hold = await a.guard.reserve(runs[0]!, attempt());
    await a.guard.settle(hold, runs[0]!, attempt(), outcome(100n));
    const leaseOfA = await db.prisma.budgetLease.findUniqueOrThrow({ where: { budgetId_holder: { budgetId: daily.id, holder: a.guard.holder } } });
    expect(leaseOfA.amountMicros).toBeGreaterThan(AMOUNT);

    // Process B gets everything that is not spent: 9 attempts of 1,000 next to 100 spent, not one fewer.
    const results = [];
    for (const run of runs.slice(1)) {
      const r = await tryReserve(b.guard, run);
      results.push(r);
      if (r.blocked) break;
    }
    expect(results.filter((r) => r.hold)).toHaveLength(9);
    expect(results.at(-1)!.blocked).toMatchObject({ limitMicros: '10000', spentMicros: '100', reservedMicros: '9000' });
    // A gave its spare back and keeps none while the budget is this close to its limit.
    const after = await db.prisma.budgetLease.findUnique({ where: { budgetId_holder: { budgetId: daily.id, holder: a.guard.holder } } });
    expect(after === null || after.exactSince !== null).toBe(true);
    await expectConsistent(daily.id);
  });
});

describe('under load', () => {
  it('two processes, 240 attempts of random cost and duration near the limit: never over it, and every micro-dollar accounted', async () => {
    const a = await aProcess({ idleReturnMs: 60_000 });
    const b = await aProcess({ idleReturnMs: 60_000 });
    const { daily, project, runs } = await anOrganization(120n * AMOUNT, 240, 150n * AMOUNT);
    const projectBudget = await db.prisma.budget.findFirstOrThrow({ where: { projectId: project.id } });
    let sampling = true;
    let samples = 0;
    const sampler = (async () => {
      while (sampling) {
        for (const id of [daily.id, projectBudget.id]) {
          const row = await budgetRow(id);
          expect(row.spentMicros + row.reservedMicros).toBeLessThanOrEqual(row.limitMicros);
        }
        samples++;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    let admitted = 0;
    let spent = 0n;
    await Promise.all(
      runs.map(async (run, i) => {
        const g = (i % 2 ? a : b).guard;
        await new Promise((r) => setTimeout(r, Math.random() * 200));
        const amount = AMOUNT / 2n + BigInt(Math.floor(Math.random() * 1000));
        const r = await tryReserve(g, run, amount);
        if (!r.hold) return;
        admitted++;
        await new Promise((res) => setTimeout(res, Math.random() * 30));
        const cost = (amount * BigInt(Math.floor(Math.random() * 101))) / 100n;
        spent += cost;
        await g.settle(r.hold, run, attempt(1, amount), outcome(cost));
      }),
    );
    sampling = false;
    await sampler;
    expect(samples).toBeGreaterThan(1);
    // Everything admitted fitted, nothing was refused while it still fitted by a whole attempt.
    expect(admitted).toBeGreaterThan(100);
    for (const id of [daily.id, projectBudget.id]) expect(await expectConsistent(id)).toMatchObject({ spentMicros: spent });
    const ledger = await db.prisma.usageRecord.aggregate({ where: { runId: { in: runs.map((r) => r.runId) } }, _sum: { costMicros: true } });
    expect(ledger._sum.costMicros ?? 0n).toBe(spent);
    const refusedWithRoom = (await db.prisma.auditLog.findMany({ where: { organizationId: daily.organizationId, action: 'budget.exceeded' } })).filter((r) => {
      const d = r.metadata as Record<string, string>;
      return BigInt(d.spentMicros!) + BigInt(d.reservedMicros!) + BigInt(d.requestedMicros!) <= BigInt(d.limitMicros!);
    });
    expect(refusedWithRoom.map((r) => r.metadata)).toEqual([]);
  });
});

describe('periods and alerts', () => {
  it("a period that ended rolls over in the organization's time zone in the statement that next touches the budget", async () => {
    const { guard } = await aProcess({ idleReturnMs: 60_000 });
    const { org, daily, runs } = await anOrganization(10n * AMOUNT, 2);
    const first = await guard.reserve(runs[0]!, attempt());
    await guard.settle(first, runs[0]!, attempt(), outcome(400n));
    // Yesterday (Paris time) was fully spent, and alerted at 100 %; this process still leases spare allowance.
    const today = windowStart('DAILY', 'Europe/Paris', new Date());
    const yesterday = new Date(today.getTime() - 24 * 3600_000);
    await db.prisma.budget.update({ where: { id: daily.id }, data: { windowStart: yesterday, spentMicros: 10n * AMOUNT - (await budgetRow(daily.id)).reservedMicros, alertedPercent: 100 } });

    // Today starts with nothing spent: 5,500 is 55 %, announced again.
    const hold = await guard.reserve(runs[1]!, attempt(1, 6n * AMOUNT));
    await guard.settle(hold, runs[1]!, attempt(1, 6n * AMOUNT), outcome(5_500n));
    const b = await expectConsistent(daily.id);
    expect(b).toMatchObject({ windowStart: today, spentMicros: 5_500n, alertedPercent: 50 });
    const alerts = await db.prisma.auditLog.findMany({ where: { organizationId: org.id, action: 'budget.threshold_crossed' } });
    expect(alerts.map((a) => a.metadata)).toEqual([expect.objectContaining({ percent: 50, spentMicros: '5500', resetsAt: windowEnd('DAILY', 'Europe/Paris', new Date()).toISOString() })]);
  });

  it('a settlement that crosses two thresholds at once announces both, in order', async () => {
    const { guard, bus } = await aProcess();
    const { org, runs } = await anOrganization(1_000n, 2);
    const alerts: number[] = [];
    const unsubscribe = await bus.subscribe(`budgets:${org.id}`, (m) => m !== null && alerts.push((m as { percent: number }).percent));
    const first = await guard.reserve(runs[0]!, attempt(1, 600n));
    await guard.settle(first, runs[0]!, attempt(1, 600n), outcome(600n)); // 60 %: crosses 50
    const second = await guard.reserve(runs[1]!, attempt(1, 400n));
    await guard.settle(second, runs[1]!, attempt(1, 400n), outcome(400n)); // 100 %: crosses 80 and 100 in one statement
    const rows = await db.prisma.auditLog.findMany({ where: { organizationId: org.id, action: 'budget.threshold_crossed' }, orderBy: { createdAt: 'asc' } });
    expect(rows.map((r) => (r.metadata as { percent: number }).percent).sort((x, y) => x - y)).toEqual([50, 80, 100]);
    await until(async () => alerts.length === 3, 'alerts delivered');
    expect(alerts).toEqual([50, 80, 100]);
    await unsubscribe();
  });

  it('two processes settling across 50 %, 80 % and 100 % announce each threshold once', async () => {
    const a = await aProcess();
    const b = await aProcess();
    const { org, daily, runs } = await anOrganization(40n * 250n, 40);
    const bus = usingPostgres() ? a.bus : sharedBus;
    const alerts: number[] = [];
    const unsubscribe = await bus.subscribe(`budgets:${org.id}`, (m) => alerts.push((m as { percent: number }).percent));
    await Promise.all(
      runs.map(async (run, i) => {
        const g = (i % 2 ? a : b).guard;
        const hold = await g.reserve(run, attempt(1, 250n));
        await new Promise((r) => setTimeout(r, Math.random() * 20));
        await g.settle(hold, run, attempt(1, 250n), outcome(250n));
      }),
    );
    const rows = await db.prisma.auditLog.findMany({ where: { organizationId: org.id, action: 'budget.threshold_crossed' } });
    expect(rows.map((r) => (r.metadata as { percent: number }).percent).sort((x, y) => x - y)).toEqual([50, 80, 100]);
    await until(async () => alerts.length === 3, 'alerts delivered');
    await unsubscribe();
    expect(await expectConsistent(daily.id)).toMatchObject({ spentMicros: 40n * 250n, alertedPercent: 100 });
  });
});

describe('leases', () => {
  it('spare allowance goes back when the process is idle; what runs in flight hold stays; the rest at close', async () => {
    const { guard } = await aProcess({ idleReturnMs: 100, tickMs: 20 });
    const { daily, runs } = await anOrganization(1_000_000n, 3);
    const held = await guard.reserve(runs[0]!, attempt());
    const done = await guard.reserve(runs[1]!, attempt());
    await guard.settle(done, runs[1]!, attempt(), outcome(400n));
    expect((await budgetRow(daily.id)).reservedMicros).toBeGreaterThan(AMOUNT);

    // Idle: the lease shrinks to exactly the hold of the attempt still in flight.
    await until(async () => (await budgetRow(daily.id)).reservedMicros === AMOUNT, 'spare allowance returned');
    await guard.settle(held, runs[0]!, attempt(), outcome(400n));
    await until(async () => (await db.prisma.budgetLease.count({ where: { budgetId: daily.id } })) === 0, 'lease returned');
    expect(await expectConsistent(daily.id)).toMatchObject({ spentMicros: 800n, reservedMicros: 0n });

    // A busy process gives back all of its spare allowance when it shuts down.
    const other = await aProcess({ idleReturnMs: 60_000 });
    const h = await other.guard.reserve(runs[2]!, attempt());
    await other.guard.settle(h, runs[2]!, attempt(), outcome(400n));
    expect((await budgetRow(daily.id)).reservedMicros).toBeGreaterThan(0n);
    await other.guard.close();
    expect(await expectConsistent(daily.id)).toMatchObject({ spentMicros: 1_200n, reservedMicros: 0n });
  });

  it("the sweeper frees a dead process's lease; a settlement that still arrives records the spend", async () => {
    // This process stops renewing (no housekeeping): its lease expires as a crashed process's would.
    const dead = await aProcess({ holdTtlMs: 150, tickMs: 3_600_000 });
    const sweeper = await aProcess();
    const { daily, runs } = await anOrganization(1_000_000n, 1);
    const hold = await dead.guard.reserve(runs[0]!, attempt());
    expect((await budgetRow(daily.id)).reservedMicros).toBeGreaterThanOrEqual(AMOUNT);
    expect(await sweeper.guard.releaseHolds({ expiredBefore: new Date() })).toBe(0);

    await new Promise((r) => setTimeout(r, 200));
    expect(await sweeper.guard.releaseHolds({ expiredBefore: new Date() })).toBe(1);
    expect(await expectConsistent(daily.id)).toMatchObject({ reservedMicros: 0n });
    expect(await db.prisma.budgetLease.count({ where: { budgetId: daily.id } })).toBe(0);

    // It was not dead after all (paused past its TTL): its settlement counts, and it leases anew.
    await dead.guard.settle(hold, runs[0]!, attempt(), outcome(400n));
    expect(await expectConsistent(daily.id)).toMatchObject({ spentMicros: 400n });
    expect((await db.prisma.usageRecord.aggregate({ where: { runId: runs[0]!.runId }, _sum: { costMicros: true } }))._sum.costMicros).toBe(400n);
  });

  it('a lowered limit or a new budget applies to the next attempt, and spare allowance over the limit goes back', async () => {
    const { guard, bus } = await aProcess({ idleReturnMs: 60_000 });
    const { org, project, daily, runs } = await anOrganization(1_000_000n, 4);
    const first = await guard.reserve(runs[0]!, attempt());
    await guard.settle(first, runs[0]!, attempt(), outcome(400n));
    expect((await budgetRow(daily.id)).reservedMicros).toBeGreaterThan(AMOUNT);

    // The limit drops below spent + one attempt (as setBudget does, then announces it).
    await db.prisma.budget.update({ where: { id: daily.id }, data: { limitMicros: 1_200n } });
    await announceChange(bus, org.id);
    expect((await tryReserve(guard, runs[1]!)).blocked).toMatchObject({ limitMicros: '1200', spentMicros: '400', reservedMicros: '0' });
    expect(await expectConsistent(daily.id)).toMatchObject({ reservedMicros: 0n });

    // Raised again, then a project budget of 500 appears: it refuses the next attempt.
    await db.prisma.budget.update({ where: { id: daily.id }, data: { limitMicros: 1_000_000n } });
    await db.prisma.budget.create({ data: { organizationId: org.id, projectId: project.id, period: 'MONTHLY', limitMicros: 500n, windowStart: new Date(Date.now() - 86_400_000) } });
    await announceChange(bus, org.id);
    expect((await tryReserve(guard, runs[2]!)).blocked).toMatchObject({ period: 'MONTHLY', limitMicros: '500', projectId: project.id });
    expect((await tryReserve(guard, runs[3]!, 500n)).hold).toBeDefined();
  });
});

describe('an organization deleted while its run was settling', () => {
  it("does not take down the other organizations' settlements that share its statement", async () => {
    const { guard } = await aProcess();
    const gone = await anOrganization(1_000_000n, 1);
    const kept = await anOrganization(1_000_000n, 1);
    const goneHold = await guard.reserve(gone.runs[0]!, attempt());
    const keptHold = await guard.reserve(kept.runs[0]!, attempt());
    // deleteOrganization while its run streams: the run, its budgets and its lease go with it.
    await db.prisma.organization.delete({ where: { id: gone.org.id } });

    // Both attempts end at once: one group commit carries both settlements.
    const [goneSettled, keptSettled] = await Promise.allSettled([
      guard.settle(goneHold, gone.runs[0]!, attempt(), outcome(400n)),
      guard.settle(keptHold, kept.runs[0]!, attempt(), outcome(400n)),
    ]);
    expect(keptSettled.status).toBe('fulfilled');
    expect(goneSettled.status).toBe('fulfilled');
    // The other organization's attempt is on its ledger and in its spend.
    expect(await db.prisma.usageRecord.count({ where: { runId: kept.runs[0]!.runId } })).toBe(1);
    expect((await expectConsistent(kept.daily.id)).spentMicros).toBe(400n);
    expect(await db.prisma.usageRecord.count({ where: { organizationId: gone.org.id } })).toBe(0);
  });
});
