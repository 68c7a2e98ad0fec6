/**
 * Budget admission overhead on PostgreSQL: what reserving before a provider attempt and settling after it
 * cost per run, at 50 runs in flight against the same budgets (the organization's daily and monthly ones
 * and the project's: three budgets per reservation), and proof that nothing was overspent.
 */
import { randomUUID } from 'node:crypto';
import { openDatabase, type Database } from '../api/src/lib/db.js';
import { createLogger } from '../api/src/lib/logger.js';
import { createLocalBus } from '../api/src/lib/pubsub.js';
import { BudgetGuard } from '../api/src/modules/budgets/budget-guard.js';
import { RunBlockedError, type RunContext } from '../api/src/orchestrator/run-executor.js';
import type { AttemptInfo, AttemptOutcome } from '../api/src/providers/index.js';
import type { Benchmark, Table } from './lib/report.js';
import { roundSummary, summarize } from './lib/stats.js';

const CONCURRENCY = 50;
/** Time between reservation and settlement, standing in for the provider call of a real run. */
const PROVIDER_MS = 100;
const RESERVE = 1_000n;
const ACTUAL = 400n;

const attempt: AttemptInfo = {
  number: 1, chainIndex: 0, attemptForEntry: 1, provider: 'OPENAI', model: 'gpt-4.1',
  inputTokensEstimate: 100, maxOutputTokens: 100, maxCostMicros: RESERVE,
};
const outcome: AttemptOutcome = {
  status: 'succeeded', usage: { inputTokens: 100, cachedInputTokens: 0, outputTokens: 25 }, usageReported: true,
  costMicros: ACTUAL, emittedText: true, text: 'ok', durationMs: 1,
};


/** An organization with a project, an agent, the three budgets and `runs` run rows (created up front, not timed). */
async function anOrganization(db: Database, runs: number, dailyLimit: bigint) {
  const prisma = db.prisma;
  const user = await prisma.user.create({ data: { email: `bench-${randomUUID()}@example.test`, name: 'Bench', passwordHash: 'x' } });
  const org = await prisma.organization.create({ data: { slug: `bench-${randomUUID().slice(0, 8)}`, name: 'Bench', timeZone: 'Europe/Paris' } });
  const project = await prisma.project.create({ data: { organizationId: org.id, slug: 'p', name: 'P' } });
  const agent = await prisma.agent.create({ data: { organizationId: org.id, projectId: project.id, name: 'A', provider: 'OPENAI', model: 'gpt-4.1' } });
  const windowStart = new Date(Date.now() - 3600_000);
  await prisma.budget.createMany({
    data: [
      { organizationId: org.id, period: 'DAILY', limitMicros: dailyLimit, windowStart },
      { organizationId: org.id, period: 'MONTHLY', limitMicros: dailyLimit * 30n, windowStart },
      { organizationId: org.id, projectId: project.id, period: 'DAILY', limitMicros: dailyLimit * 2n, windowStart },
    ],
  });
  const rows = await Promise.all(
    Array.from({ length: runs }, () =>
      prisma.agentRun.create({ data: { organizationId: org.id, projectId: project.id, agentId: agent.id, createdById: user.id, input: 'x' }, select: { id: true } }),
    ),
  );
  const contexts: RunContext[] = rows.map((r) => ({ runId: r.id, organizationId: org.id, projectId: project.id, agentId: agent.id }));
  return { orgId: org.id, runs: contexts };
}

/**
 * CONCURRENCY closed loops spread over the processes: reserve, hold for the provider's time, settle, next run.
 * Returns what each admitted run paid in reserve and in settle, and what each refused reservation took.
 */
async function drive(guards: BudgetGuard[], runs: RunContext[]) {
  const reserveMs: number[] = [];
  const settleMs: number[] = [];
  const deniedMs: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, loop) => {
      const guard = guards[loop % guards.length]!;
      for (;;) {
        const i = next++;
        if (i >= runs.length) return;
        const rc = runs[i]!;
        const t0 = performance.now();
        let hold: unknown;
        try {
          hold = await guard.reserve(rc, attempt);
        } catch (err) {
          if (!(err instanceof RunBlockedError)) throw err;
          deniedMs.push(performance.now() - t0);
          continue;
        }
        reserveMs.push(performance.now() - t0);
        // Provider calls take 50-150 ms, so runs do not move in lockstep.
        await new Promise((r) => setTimeout(r, PROVIDER_MS / 2 + Math.random() * PROVIDER_MS));
        const t1 = performance.now();
        await guard.settle(hold, rc, attempt, outcome);
        settleMs.push(performance.now() - t1);
      }
    }),
  );
  return { reserveMs, settleMs, deniedMs, elapsedMs: performance.now() - started };
}

/** Samples every budget of the organization while the runs go: the worst moment seen. */
function watch(db: Database, orgId: string) {
  let watching = true;
  let samples = 0;
  let overLimit = false;
  let maxCommittedPercent = 0;
  const done = (async () => {
    while (watching) {
      const rows = await db.query<{ limit: string; spent: string; reserved: string }>(
        'SELECT "limitMicros"::text AS limit, "spentMicros"::text AS spent, "reservedMicros"::text AS reserved FROM "Budget" WHERE "organizationId" = $1::uuid',
        [orgId],
      );
      samples++;
      for (const r of rows) {
        const [limit, spent, reserved] = [BigInt(r.limit), BigInt(r.spent), BigInt(r.reserved)];
        if (spent > limit || spent + reserved > limit) overLimit = true;
        maxCommittedPercent = Math.max(maxCommittedPercent, Number(((spent + reserved) * 10_000n) / limit) / 100);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return async () => {
    watching = false;
    await done;
    return { samples, overLimit, maxCommittedPercent };
  };
}

/** After the guards closed: every budget's spend equals the ledger, nothing is held or leased. */
async function reconcile(db: Database, orgId: string) {
  const [budgets] = await db.query<{ n: number; bad: number; daily_spent: string; daily_limit: string }>(
    `SELECT count(*)::int AS n,
            count(*) FILTER (WHERE "reservedMicros" <> 0 OR "spentMicros" > "limitMicros"
                             OR "spentMicros" <> (SELECT coalesce(sum("costMicros"), 0) FROM "UsageRecord" WHERE "organizationId" = $1::uuid))::int AS bad,
            max("spentMicros"::text) FILTER (WHERE "projectId" IS NULL AND period = 'DAILY') AS daily_spent,
            max("limitMicros"::text) FILTER (WHERE "projectId" IS NULL AND period = 'DAILY') AS daily_limit
     FROM "Budget" WHERE "organizationId" = $1::uuid`,
    [orgId],
  );
  const [left] = await db.query<{ leases: number; open: number; ledger: string }>(
    `SELECT (SELECT count(*)::int FROM "BudgetLease" l JOIN "Budget" b ON b.id = l."budgetId" WHERE b."organizationId" = $1::uuid) AS leases,
            (SELECT count(*)::int FROM "BudgetReservation" WHERE "organizationId" = $1::uuid AND status = 'OPEN') AS open,
            (SELECT coalesce(sum("costMicros"), 0)::text FROM "UsageRecord" WHERE "organizationId" = $1::uuid) AS ledger`,
    [orgId],
  );
  return { ...budgets!, ...left! };
}

export const budget: Benchmark = {
  name: 'budget',
  description: 'reservation + settlement overhead per run at 50 concurrent runs (PostgreSQL), with an overspend check',
  async run(ctx) {
    const pgServer = await ctx.postgres();
    const dbName = `bench_budget_${Date.now()}`;
    const url = await pgServer.createDatabase(dbName);
    const db = await openDatabase({ url, poolSize: 60 });
    const runsPerLoop = ctx.quick ? 10 : 40;
    const total = CONCURRENCY * runsPerLoop;
    // The tightest budget admits ~70 % of the runs, so the path near the limit and the refusals are measured too.
    const limit = (BigInt(total) * ACTUAL * 7n) / 10n;
    const open: BudgetGuard[] = [];
    try {
      const scenarios = [
        { label: 'one process', processes: 1 },
        { label: 'two processes', processes: 2 },
      ];
      const results = [];
      for (const s of scenarios) {
        // Each process sharing one bus stands for worker processes sharing PostgreSQL's LISTEN/NOTIFY.
        const bus = createLocalBus();
        const guards = Array.from({ length: s.processes }, () => new BudgetGuard(db, bus, createLogger('silent')));
        open.push(...guards);
        const { orgId, runs } = await anOrganization(db, total, limit);
        // Warm-up, not measured: a process that has served runs before (its connection, prepared statements).
        const warm = await anOrganization(db, CONCURRENCY * 2, 1_000_000_000n);
        await drive(guards, warm.runs);

        const before = guards.reduce((n, g) => n + g.statements, 0);
        const stopWatching = watch(db, orgId);
        const timings = await drive(guards, runs);
        const watched = await stopWatching();
        const statements = guards.reduce((n, g) => n + g.statements, 0) - before;
        for (const g of guards) await g.close();
        const after = await reconcile(db, orgId);
        const perRun = timings.reserveMs.map((r, i) => r + timings.settleMs[i]!);
        results.push({ ...s, timings, watched, statements, after, perRun: roundSummary(summarize(perRun), 3) });
      }

      const main = results[0]!;
      const row = (label: string, v: number[]) => {
        const x = roundSummary(summarize(v), 3);
        return [label, x.p50, x.p90, x.p99, x.max, x.mean];
      };
      const tables: Table[] = results.map((r) => ({
        title: `Per admitted run (ms), ${r.label}${r.processes > 1 ? ` (${CONCURRENCY / r.processes} loops each, same budgets)` : ''}`,
        columns: ['step', 'p50', 'p90', 'p99', 'max', 'mean'],
        rows: [row('reserve + settle', r.timings.reserveMs.map((x, i) => x + r.timings.settleMs[i]!)), row('reserve', r.timings.reserveMs), row('settle', r.timings.settleMs), row('refused reserve', r.timings.deniedMs)],
      }));
      const overspend = results.some((r) => r.watched.overLimit || r.after.bad > 0 || r.after.leases > 0 || r.after.open > 0);
      return {
        name: 'budget',
        title: `Budget reservation + settlement, ${CONCURRENCY} concurrent runs on PostgreSQL ${pgServer.info.version}`,
        config: { concurrency: CONCURRENCY, runs: total, providerMs: PROVIDER_MS, budgetsPerReservation: 3, reserveMicros: String(RESERVE), actualMicros: String(ACTUAL), dailyLimitMicros: String(limit) },
        figures: Object.fromEntries(
          results.map((r) => [
            r.processes === 1 ? 'oneProcess' : 'twoProcesses',
            {
              perRunMs: r.perRun,
              reserveMs: roundSummary(summarize(r.timings.reserveMs), 3),
              settleMs: roundSummary(summarize(r.timings.settleMs), 3),
              deniedReserveMs: roundSummary(summarize(r.timings.deniedMs), 3),
              admitted: r.timings.reserveMs.length,
              denied: r.timings.deniedMs.length,
              budgetStatements: r.statements,
              budgetStatementsPerAdmittedRun: Number((r.statements / r.timings.reserveMs.length).toFixed(3)),
              throughputRunsPerSecond: Math.round((total / r.timings.elapsedMs) * 1000),
              dailyLimitMicros: r.after.daily_limit,
              dailySpentMicros: r.after.daily_spent,
              ledgerMicros: r.after.ledger,
              samples: r.watched.samples,
              maxCommittedPercentSeen: r.watched.maxCommittedPercent,
              overLimitSeen: r.watched.overLimit,
              budgetsNotReconciled: r.after.bad,
              leasesLeft: r.after.leases,
              openReservations: r.after.open,
            },
          ]),
        ),
        tables,
        targets: [
          { name: 'p50 reserve + settle', target: '<= 2 ms', actual: `${main.perRun.p50} ms`, met: main.perRun.p50 <= 2 },
          { name: 'p99 reserve + settle', target: '<= 10 ms', actual: `${main.perRun.p99} ms`, met: main.perRun.p99 <= 10 },
          {
            name: 'overspend',
            target: 'none',
            actual: overspend
              ? 'OVERSPENT or not reconciled'
              : results.map((r) => `${r.label}: spent ${r.after.daily_spent} of ${r.after.daily_limit}, ledger ${r.after.ledger}, ${r.watched.samples} samples`).join('; '),
            met: !overspend,
          },
        ],
        notes: [
          'reserve takes the attempt\'s worst case from the allowance its process leased (counted in the budgets\' reservedMicros, so spent + reserved <= limit holds in the database throughout); when the allowance is short it waits for the next statement. settle returns when its group commit (ledger row, spend, lease, one statement for every settlement waiting in the process) has committed.',
          'The target figures are the one-process scenario; the two-process one shares the same budgets between two guards (each its own lease) and is reported for comparison.',
          `Each of the ${CONCURRENCY} loops holds its reservation for 50-150 ms (the provider call) before settling, so ${CONCURRENCY} runs are in flight at once; the figures are the time spent in reserve and settle only. Run rows are created up front; a warm-up of ${CONCURRENCY * 2} runs on another organization is not measured.`,
          'Overspend: a sampler reads every budget of the organization every 5 ms (spent <= limit and spent + reserved <= limit at every sample); at the end, with the guards closed, every budget\'s spend equals the ledger and nothing is held or leased.',
        ],
      };
    } catch (err) {
      console.error('budget benchmark failed:', err);
      throw err;
    } finally {
      for (const g of open) await g.close().catch(() => {});
      await db.close();
      await pgServer.dropDatabase(dbName).catch(() => {});
    }
  },
};
