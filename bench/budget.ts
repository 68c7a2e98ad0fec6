/**
 * Budget admission overhead on PostgreSQL: what reserving before a provider attempt and settling after it
 * cost per run, at 50 runs in flight against the same budgets (the organization's daily and monthly ones
 * and the project's: three locked rows per reservation), and proof that nothing was overspent.
 */
import { randomUUID } from 'node:crypto';
import { openDatabase } from '../api/src/lib/db.js';
import { createLogger } from '../api/src/lib/logger.js';
import { createLocalBus } from '../api/src/lib/pubsub.js';
import { BudgetGuard } from '../api/src/modules/budgets/budget-guard.js';
import { RunBlockedError } from '../api/src/orchestrator/run-executor.js';
import type { AttemptInfo, AttemptOutcome } from '../api/src/providers/index.js';
import type { Benchmark } from './lib/report.js';
import { roundSummary, summarize } from './lib/stats.js';

const CONCURRENCY = 50;
/** Time between reservation and settlement, standing in for the provider call of a real run. */
const PROVIDER_MS = 100;
const RESERVE = 1_000n;
const ACTUAL = 400n;

export const budget: Benchmark = {
  name: 'budget',
  description: 'reservation + settlement overhead per run at 50 concurrent runs (PostgreSQL), with an overspend check',
  async run(ctx) {
    const pgServer = await ctx.postgres();
    const dbName = `bench_budget_${Date.now()}`;
    const url = await pgServer.createDatabase(dbName);
    const db = await openDatabase({ url, poolSize: 60 });
    const bus = createLocalBus();
    const guard = new BudgetGuard(db.prisma, bus, createLogger('silent'));
    const runsPerWorker = ctx.quick ? 10 : 40;
    const total = CONCURRENCY * runsPerWorker;
    try {
      const user = await db.prisma.user.create({ data: { email: `bench-${randomUUID()}@example.test`, name: 'Bench', passwordHash: 'x' } });
      const org = await db.prisma.organization.create({ data: { slug: `bench-${randomUUID().slice(0, 8)}`, name: 'Bench', timeZone: 'Europe/Paris' } });
      const project = await db.prisma.project.create({ data: { organizationId: org.id, slug: 'p', name: 'P' } });
      const agent = await db.prisma.agent.create({ data: { organizationId: org.id, projectId: project.id, name: 'A', provider: 'OPENAI', model: 'gpt-4.1' } });
      // The tightest budget admits ~70 % of the runs, so the denial path is measured too.
      const limit = (BigInt(total) * ACTUAL * 7n) / 10n;
      const windowStart = new Date(Date.now() - 3600_000);
      await db.prisma.budget.createMany({
        data: [
          { organizationId: org.id, period: 'DAILY', limitMicros: limit, windowStart },
          { organizationId: org.id, period: 'MONTHLY', limitMicros: limit * 30n, windowStart },
          { organizationId: org.id, projectId: project.id, period: 'DAILY', limitMicros: limit * 2n, windowStart },
        ],
      });
      const runs = await Promise.all(
        Array.from({ length: total }, () =>
          db.prisma.agentRun.create({ data: { organizationId: org.id, projectId: project.id, agentId: agent.id, createdById: user.id, input: 'x' }, select: { id: true } }),
        ),
      );
      const attempt: AttemptInfo = {
        number: 1, chainIndex: 0, attemptForEntry: 1, provider: 'OPENAI', model: 'gpt-4.1',
        inputTokensEstimate: 100, maxOutputTokens: 100, maxCostMicros: RESERVE,
      };
      const outcome: AttemptOutcome = {
        status: 'succeeded', usage: { inputTokens: 100, cachedInputTokens: 0, outputTokens: 25 }, usageReported: true,
        costMicros: ACTUAL, emittedText: true, text: 'ok', durationMs: 1,
      };
      const reserveMs: number[] = [];
      const settleMs: number[] = [];
      const deniedMs: number[] = [];
      let maxSeenSpent = 0n;
      let next = 0;
      // Samples the daily budget while the runs go, to catch any moment of overspend.
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          const b = await db.prisma.budget.findFirst({ where: { organizationId: org.id, projectId: null, period: 'DAILY' } });
          if (b && b.spentMicros > maxSeenSpent) maxSeenSpent = b.spentMicros;
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      const started = performance.now();
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          for (;;) {
            const i = next++;
            if (i >= total) return;
            const rc = { runId: runs[i]!.id, organizationId: org.id, projectId: project.id, agentId: agent.id };
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
      const elapsed = performance.now() - started;
      watching = false;
      await watcher;

      const daily = await db.prisma.budget.findFirstOrThrow({ where: { organizationId: org.id, projectId: null, period: 'DAILY' } });
      const ledger = (await db.prisma.usageRecord.aggregate({ where: { organizationId: org.id }, _sum: { costMicros: true } }))._sum.costMicros ?? 0n;
      const open = await db.prisma.budgetReservation.count({ where: { organizationId: org.id, status: 'OPEN' } });
      const perRun = reserveMs.map((r, i) => r + settleMs[i]!);
      const both = roundSummary(summarize(perRun), 3);
      const overspend = daily.spentMicros > daily.limitMicros || maxSeenSpent > daily.limitMicros;
      return {
        name: 'budget',
        title: `Budget reservation + settlement, ${CONCURRENCY} concurrent runs on PostgreSQL ${pgServer.info.version}`,
        config: { concurrency: CONCURRENCY, runs: total, providerMs: PROVIDER_MS, budgetsPerReservation: 3, reserveMicros: String(RESERVE), actualMicros: String(ACTUAL), dailyLimitMicros: String(limit) },
        figures: {
          perRunMs: both,
          reserveMs: roundSummary(summarize(reserveMs), 3),
          settleMs: roundSummary(summarize(settleMs), 3),
          deniedReserveMs: roundSummary(summarize(deniedMs), 3),
          admitted: reserveMs.length,
          denied: deniedMs.length,
          throughputRunsPerSecond: Math.round((total / elapsed) * 1000),
          dailyLimitMicros: String(daily.limitMicros),
          dailySpentMicros: String(daily.spentMicros),
          maxSpentSeenMicros: String(maxSeenSpent),
          ledgerMicros: String(ledger),
          openReservations: open,
          overspend,
        },
        tables: [
          {
            title: 'Per admitted run (ms)',
            columns: ['step', 'p50', 'p90', 'p99', 'max', 'mean'],
            rows: [
              ['reserve + settle', both.p50, both.p90, both.p99, both.max, both.mean],
              ...(['reserveMs', 'settleMs'] as const).map((k) => {
                const s = roundSummary(summarize(k === 'reserveMs' ? reserveMs : settleMs), 3);
                return [k === 'reserveMs' ? 'reserve' : 'settle', s.p50, s.p90, s.p99, s.max, s.mean];
              }),
            ],
          },
        ],
        targets: [
          { name: 'p50 reserve + settle', target: '<= 2 ms', actual: `${both.p50} ms`, met: both.p50 <= 2 },
          { name: 'p99 reserve + settle', target: '<= 10 ms', actual: `${both.p99} ms`, met: both.p99 <= 10 },
          { name: 'overspend', target: 'none', actual: overspend ? 'OVERSPENT' : `none (spent ${daily.spentMicros} of ${daily.limitMicros}; ledger ${ledger})`, met: !overspend && daily.spentMicros === ledger && open === 0 },
        ],
        notes: [
          'Each admitted run does one reservation transaction (3 budget rows locked in id order) and one settlement transaction that also appends the ledger row.',
          'The run rows are created up front and are not part of the timing.',
          `Each of the ${CONCURRENCY} loops holds its reservation for ${PROVIDER_MS} ms (the provider call) before settling, so ${CONCURRENCY} runs are in flight at once, as in the target; the figures are the time spent in reserve and settle only.`,
        ],
      };
    } catch (err) {
      console.error('budget benchmark failed:', err);
      throw err;
    } finally {
      await db.close();
      await pgServer.dropDatabase(dbName).catch(() => {});
    }
  },
};
