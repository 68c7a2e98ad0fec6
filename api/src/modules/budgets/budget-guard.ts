import type { Prisma } from '../../_generated/prisma/client.js';
import type { BudgetPeriod } from '../../_generated/prisma/enums.js';
import type { PrismaClient } from '../../lib/db.js';
import type { Logger } from '../../lib/logger.js';
import type { EventBus } from '../../lib/pubsub.js';
import type { AttemptInfo, AttemptOutcome } from '../../providers/index.js';
import { RunBlockedError, type AttemptBudget, type RunContext } from '../../orchestrator/run-executor.js';
import { audit } from '../audit/audit.service.js';
import { windowEnd, windowStart } from './windows.js';

type Tx = Prisma.TransactionClient;

interface LockedBudget {
  id: string;
  organizationId: string;
  projectId: string | null;
  period: BudgetPeriod;
  limitMicros: bigint;
  spentMicros: bigint;
  reservedMicros: bigint;
  windowStart: Date;
  alertedPercent: number;
  timeZone: string;
}

export interface BudgetDenial {
  budgetId: string;
  projectId: string | null;
  period: BudgetPeriod;
  limitMicros: string;
  spentMicros: string;
  reservedMicros: string;
  requestedMicros: string;
  resetsAt: string;
}

interface Hold {
  reservations: { id: string; budgetId: string; amount: bigint }[];
}

export const ALERT_THRESHOLDS = [50, 80, 100] as const;
export const budgetChannel = (organizationId: string) => `budgets:${organizationId}`;

/**
 * Locks every budget that applies to a run (the organization's, and its project's), always in id order so
 * concurrent callers cannot deadlock, and moves any whose period has ended into the current period.
 */
async function lockBudgets(tx: Tx, organizationId: string, projectId: string, now: Date): Promise<LockedBudget[]> {
  const rows = await tx.$queryRaw<LockedBudget[]>`
    SELECT b.id, b."organizationId", b."projectId", b.period, b."limitMicros", b."spentMicros", b."reservedMicros",
           b."windowStart", b."alertedPercent", o."timeZone"
    FROM "Budget" b JOIN "Organization" o ON o.id = b."organizationId"
    WHERE b."organizationId" = ${organizationId}::uuid AND (b."projectId" IS NULL OR b."projectId" = ${projectId}::uuid)
    ORDER BY b.id
    FOR UPDATE OF b`;
  for (const b of rows) await rollWindow(tx, b, now);
  return rows;
}

/** A new period starts with nothing spent; money still held by open reservations stays held. */
async function rollWindow(tx: Tx, b: LockedBudget, now: Date) {
  const current = windowStart(b.period, b.timeZone, now);
  if (b.windowStart.getTime() >= current.getTime()) return;
  const held = await tx.budgetReservation.aggregate({ where: { budgetId: b.id, status: 'OPEN' }, _sum: { amountMicros: true } });
  b.spentMicros = 0n;
  b.reservedMicros = held._sum.amountMicros ?? 0n;
  b.windowStart = current;
  b.alertedPercent = 0;
  await tx.budget.update({
    where: { id: b.id },
    data: { spentMicros: 0n, reservedMicros: b.reservedMicros, windowStart: current, alertedPercent: 0 },
  });
}

/**
 * Admission by reservation. Before each provider attempt the worst-case cost is held against every
 * applicable budget inside one transaction with the budget rows locked, so settled spend plus open
 * reservations can never pass a limit, whatever the concurrency or number of processes. After the attempt
 * the hold settles to the provider-reported cost and the rest is released; the ledger row is written in
 * the same transaction, so ledger totals and budgets' spend always agree.
 */
export class BudgetGuard implements AttemptBudget {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly bus: EventBus,
    private readonly logger: Logger,
    /** How long a hold outlives its worker's last heartbeat before the sweeper frees it. */
    private readonly holdTtlMs = 120_000,
  ) {}

  async reserve(run: RunContext, attempt: AttemptInfo): Promise<Hold> {
    const amount = attempt.maxCostMicros;
    if (amount === null) throw new RunBlockedError(`No price is known for ${attempt.provider} ${attempt.model}; refusing to spend blind`);
    const now = new Date();
    const result = await this.prisma.$transaction(async (tx) => {
      const budgets = await lockBudgets(tx, run.organizationId, run.projectId, now);
      const over = budgets.find((b) => b.spentMicros + b.reservedMicros + amount > b.limitMicros);
      if (over) return { denied: denial(over, amount, now) };
      const reservations: Hold['reservations'] = [];
      for (const b of budgets) {
        await tx.budget.update({ where: { id: b.id }, data: { reservedMicros: { increment: amount } } });
        const r = await tx.budgetReservation.create({
          data: {
            organizationId: run.organizationId,
            projectId: run.projectId,
            budgetId: b.id,
            runId: run.runId,
            attempt: attempt.number,
            amountMicros: amount,
            expiresAt: new Date(now.getTime() + this.holdTtlMs),
          },
        });
        reservations.push({ id: r.id, budgetId: b.id, amount });
      }
      return { reservations };
    });
    if ('denied' in result) {
      const d = result.denied!;
      await audit(this.prisma, {
        organizationId: run.organizationId,
        action: 'budget.exceeded',
        targetType: 'Run',
        targetId: run.runId,
        metadata: { ...d },
      });
      throw new RunBlockedError(
        `${d.period === 'DAILY' ? 'Daily' : 'Monthly'} budget${d.projectId ? ' of the project' : ''} would be exceeded: ` +
          `limit ${d.limitMicros}, spent ${d.spentMicros}, reserved ${d.reservedMicros}, this attempt needs up to ${d.requestedMicros} micro-dollars; resets at ${d.resetsAt}`,
        { ...d },
      );
    }
    return { reservations: result.reservations };
  }

  async settle(handle: unknown, run: RunContext, attempt: AttemptInfo, outcome: AttemptOutcome): Promise<void> {
    const hold = (handle as Hold | null) ?? { reservations: [] };
    const actual = outcome.costMicros ?? 0n;
    const reachedProvider = outcome.usageReported || outcome.emittedText || outcome.usage.inputTokens > 0;
    const now = new Date();
    const alerts = await this.prisma.$transaction(async (tx) => {
      if (reachedProvider) {
        await tx.usageRecord.create({
          data: {
            organizationId: run.organizationId,
            projectId: run.projectId,
            agentId: run.agentId,
            runId: run.runId,
            attempt: attempt.number,
            provider: attempt.provider,
            model: attempt.model,
            inputTokens: outcome.usage.inputTokens,
            cachedInputTokens: outcome.usage.cachedInputTokens,
            outputTokens: outcome.usage.outputTokens,
            costMicros: actual,
            createdAt: now,
          },
        });
      }
      if (hold.reservations.length === 0) return [];
      const budgets = await lockBudgets(tx, run.organizationId, run.projectId, now);
      const crossed: { budget: LockedBudget; percent: number }[] = [];
      for (const r of hold.reservations) {
        const b = budgets.find((x) => x.id === r.budgetId);
        if (!b) continue; // the budget was removed meanwhile
        // Only an OPEN hold still counts in `reserved`; the sweeper may already have released it.
        const closed = await tx.budgetReservation.updateMany({
          where: { id: r.id, status: 'OPEN' },
          data: { status: 'SETTLED', settledMicros: actual, closedAt: now },
        });
        const release = closed.count === 1 ? r.amount : 0n;
        b.spentMicros += actual;
        b.reservedMicros -= release;
        const percent = b.limitMicros > 0n ? Number((b.spentMicros * 100n) / b.limitMicros) : 100;
        const threshold = [...ALERT_THRESHOLDS].reverse().find((t) => percent >= t && b.alertedPercent < t);
        await tx.budget.update({
          where: { id: b.id },
          data: {
            spentMicros: { increment: actual },
            reservedMicros: { decrement: release },
            ...(threshold ? { alertedPercent: threshold } : {}),
          },
        });
        if (closed.count === 0) await tx.budgetReservation.update({ where: { id: r.id }, data: { settledMicros: actual } });
        if (threshold) crossed.push({ budget: b, percent: threshold });
      }
      return crossed;
    });
    for (const { budget, percent } of alerts) await this.announce(budget, percent, now);
  }

  /** Keeps a live run's holds from being swept while its worker is still heartbeating. */
  async extend(runId: string, now = new Date()) {
    await this.prisma.budgetReservation.updateMany({
      where: { runId, status: 'OPEN' },
      data: { expiresAt: new Date(now.getTime() + this.holdTtlMs) },
    });
  }

  /** Frees holds whose run is gone (worker died) or that expired; returns how many were released. */
  async releaseHolds(where: { runId?: string; expiredBefore?: Date }): Promise<number> {
    const open = await this.prisma.budgetReservation.findMany({
      where: {
        status: 'OPEN',
        ...(where.runId ? { runId: where.runId } : {}),
        ...(where.expiredBefore ? { expiresAt: { lt: where.expiredBefore } } : {}),
      },
      select: { id: true, organizationId: true, projectId: true },
      take: 500,
    });
    let released = 0;
    for (const r of open) {
      released += await this.prisma.$transaction(async (tx) => {
        await tx.$queryRaw`SELECT id FROM "Budget" WHERE "organizationId" = ${r.organizationId}::uuid ORDER BY id FOR UPDATE`;
        const hold = await tx.budgetReservation.findUnique({ where: { id: r.id } });
        if (!hold || hold.status !== 'OPEN') return 0;
        await tx.budgetReservation.update({ where: { id: r.id }, data: { status: 'RELEASED', closedAt: new Date() } });
        await tx.budget.updateMany({ where: { id: hold.budgetId }, data: { reservedMicros: { decrement: hold.amountMicros } } });
        return 1;
      });
    }
    return released;
  }

  private async announce(b: LockedBudget, percent: number, now: Date) {
    const details = {
      budgetId: b.id,
      projectId: b.projectId,
      period: b.period,
      percent,
      limitMicros: b.limitMicros.toString(),
      spentMicros: b.spentMicros.toString(),
      resetsAt: windowEnd(b.period, b.timeZone, now).toISOString(),
    };
    await audit(this.prisma, { organizationId: b.organizationId, action: 'budget.threshold_crossed', targetType: 'Budget', targetId: b.id, metadata: details });
    await this.bus.publish(budgetChannel(b.organizationId), details).catch((err) => this.logger.warn({ err }, 'budget alert not published'));
  }
}

function denial(b: LockedBudget, amount: bigint, now: Date): BudgetDenial {
  return {
    budgetId: b.id,
    projectId: b.projectId,
    period: b.period,
    limitMicros: b.limitMicros.toString(),
    spentMicros: b.spentMicros.toString(),
    reservedMicros: b.reservedMicros.toString(),
    requestedMicros: amount.toString(),
    resetsAt: windowEnd(b.period, b.timeZone, now).toISOString(),
  };
}
