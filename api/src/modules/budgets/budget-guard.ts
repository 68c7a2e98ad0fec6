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
    const result = (await this.reserveInOneStatement(run, attempt.number, amount, now)) ?? (await this.reserveRollingWindows(run, attempt.number, amount, now));
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

  /**
   * The common case in one statement (one round trip, row locks held for well under a millisecond): lock
   * the applicable budgets in id order, check that the hold fits every one, add it and record it. Returns
   * null when a budget's period has ended, which needs the slower path that rolls it over first.
   */
  private async reserveInOneStatement(run: RunContext, attempt: number, amount: bigint, now: Date) {
    const expires = utcWall(new Date(now.getTime() + this.holdTtlMs));
    const [row] = await this.prisma.$queryRaw<{ stale: bigint; fits: boolean; holds: { id: string; budgetId: string }[] | null; budgets: LockedBudgetJson[] | null }[]>`
      WITH locked AS (
        SELECT b.id, b."organizationId", b."projectId", b.period, b."limitMicros", b."spentMicros", b."reservedMicros",
               b."windowStart", b."alertedPercent", o."timeZone",
               ((date_trunc(CASE WHEN b.period = 'DAILY' THEN 'day' ELSE 'month' END, ${now.toISOString()}::timestamptz AT TIME ZONE o."timeZone")
                 AT TIME ZONE o."timeZone") AT TIME ZONE 'UTC') AS "currentStart"
        FROM "Budget" b JOIN "Organization" o ON o.id = b."organizationId"
        WHERE b."organizationId" = ${run.organizationId}::uuid AND (b."projectId" IS NULL OR b."projectId" = ${run.projectId}::uuid)
        ORDER BY b.id
        FOR UPDATE OF b
      ),
      verdict AS (
        SELECT count(*) FILTER (WHERE "windowStart" < "currentStart") AS stale,
               coalesce(bool_and("spentMicros" + "reservedMicros" + ${amount} <= "limitMicros"), true) AS fits
        FROM locked
      ),
      held AS (
        UPDATE "Budget" b SET "reservedMicros" = b."reservedMicros" + ${amount}, "updatedAt" = ${utcWall(now)}::timestamp(3)
        FROM locked l, verdict v
        WHERE b.id = l.id AND v.stale = 0 AND v.fits
        RETURNING b.id
      ),
      recorded AS (
        INSERT INTO "BudgetReservation" (id, "organizationId", "projectId", "budgetId", "runId", attempt, "amountMicros", status, "expiresAt", "createdAt")
        SELECT gen_random_uuid(), ${run.organizationId}::uuid, ${run.projectId}::uuid, held.id, ${run.runId}::uuid, ${attempt}, ${amount},
               'OPEN'::"ReservationStatus", ${expires}::timestamp(3), ${utcWall(now)}::timestamp(3)
        FROM held
        RETURNING id, "budgetId"
      )
      SELECT v.stale, v.fits,
             (SELECT json_agg(json_build_object('id', r.id, 'budgetId', r."budgetId")) FROM recorded r) AS holds,
             (SELECT json_agg(json_build_object(
                'id', l.id, 'organizationId', l."organizationId", 'projectId', l."projectId", 'period', l.period,
                'limitMicros', l."limitMicros"::text, 'spentMicros', l."spentMicros"::text, 'reservedMicros', l."reservedMicros"::text,
                'windowStart', l."windowStart", 'alertedPercent', l."alertedPercent", 'timeZone', l."timeZone")) FROM locked l) AS budgets
      FROM verdict v`;
    if (!row || Number(row.stale) > 0) return null;
    if (!row.fits) {
      const over = (row.budgets ?? []).map(fromJson).find((b) => b.spentMicros + b.reservedMicros + amount > b.limitMicros)!;
      return { denied: denial(over, amount, now) };
    }
    return { reservations: (row.holds ?? []).map((h) => ({ ...h, amount })) };
  }

  /** The rare path: a budget's period ended, so roll it over (under lock) before checking and holding. */
  private reserveRollingWindows(run: RunContext, attempt: number, amount: bigint, now: Date) {
    return this.prisma.$transaction(async (tx) => {
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
            attempt,
            amountMicros: amount,
            expiresAt: new Date(now.getTime() + this.holdTtlMs),
          },
        });
        reservations.push({ id: r.id, budgetId: b.id, amount });
      }
      return { reservations };
    });
  }

  async settle(handle: unknown, run: RunContext, attempt: AttemptInfo, outcome: AttemptOutcome): Promise<void> {
    const hold = (handle as Hold | null) ?? { reservations: [] };
    const actual = outcome.costMicros ?? 0n;
    const reachedProvider = outcome.usageReported || outcome.emittedText || outcome.usage.inputTokens > 0;
    const now = new Date();
    const ledger = reachedProvider
      ? {
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
        }
      : null;
    let after: LockedBudget[] | null;
    if (hold.reservations.length === 0) {
      if (ledger) await this.prisma.usageRecord.create({ data: ledger });
      after = [];
    } else {
      after = await this.settleInOneStatement(hold, ledger, actual, now);
      after ??= await this.settleRollingWindows(hold, ledger, run, actual, now);
    }
    for (const b of after) {
      const percent = b.limitMicros > 0n ? Number((b.spentMicros * 100n) / b.limitMicros) : 100;
      const threshold = [...ALERT_THRESHOLDS].reverse().find((t) => percent >= t && b.alertedPercent < t);
      if (!threshold) continue;
      // Exactly one settler announces each crossing, whichever gets here first.
      const claimed = await this.prisma.budget.updateMany({ where: { id: b.id, alertedPercent: { lt: threshold } }, data: { alertedPercent: threshold } });
      if (claimed.count === 1) await this.announce(b, threshold, now);
    }
  }

  /**
   * Settlement in one statement: lock the holds' budgets in id order, close the holds that are still
   * OPEN (the sweeper may have released one), move their amounts from reserved to the actual spend, and
   * append the ledger row — all or nothing. Returns null when a period ended since the reservation.
   */
  private async settleInOneStatement(hold: Hold, ledger: Prisma.UsageRecordUncheckedCreateInput | null, actual: bigint, now: Date) {
    const ids = hold.reservations.map((r) => r.id);
    const budgetIds = [...new Set(hold.reservations.map((r) => r.budgetId))];
    const at = utcWall(now);
    const [row] = await this.prisma.$queryRaw<{ stale: bigint; budgets: LockedBudgetJson[] | null }[]>`
      WITH locked AS (
        SELECT b.id, b."windowStart", o."timeZone",
               ((date_trunc(CASE WHEN b.period = 'DAILY' THEN 'day' ELSE 'month' END, ${now.toISOString()}::timestamptz AT TIME ZONE o."timeZone")
                 AT TIME ZONE o."timeZone") AT TIME ZONE 'UTC') AS "currentStart"
        FROM "Budget" b JOIN "Organization" o ON o.id = b."organizationId"
        WHERE b.id = ANY(${budgetIds}::uuid[])
        ORDER BY b.id
        FOR UPDATE OF b
      ),
      verdict AS (SELECT count(*) FILTER (WHERE "windowStart" < "currentStart") AS stale FROM locked),
      closed AS (
        UPDATE "BudgetReservation" r SET status = 'SETTLED'::"ReservationStatus", "settledMicros" = ${actual}, "closedAt" = ${at}::timestamp(3)
        FROM verdict v
        WHERE r.id = ANY(${ids}::uuid[]) AND r.status = 'OPEN' AND v.stale = 0
        RETURNING r."budgetId", r."amountMicros"
      ),
      swept AS (
        UPDATE "BudgetReservation" r SET "settledMicros" = ${actual}
        FROM verdict v
        WHERE r.id = ANY(${ids}::uuid[]) AND r.status = 'RELEASED' AND v.stale = 0
      ),
      moved AS (
        UPDATE "Budget" b
        SET "spentMicros" = b."spentMicros" + ${actual},
            "reservedMicros" = b."reservedMicros" - coalesce((SELECT sum(c."amountMicros") FROM closed c WHERE c."budgetId" = b.id), 0),
            "updatedAt" = ${at}::timestamp(3)
        FROM locked l, verdict v
        WHERE b.id = l.id AND v.stale = 0
        RETURNING b.id, b."organizationId", b."projectId", b.period, b."limitMicros", b."spentMicros", b."reservedMicros",
                  b."windowStart", b."alertedPercent", l."timeZone"
      ),
      ledger AS (
        INSERT INTO "UsageRecord" (id, "organizationId", "projectId", "agentId", "runId", attempt, provider, model,
                                   "inputTokens", "cachedInputTokens", "outputTokens", "costMicros", "createdAt")
        SELECT gen_random_uuid(), ${ledger?.organizationId ?? null}::uuid, ${ledger?.projectId ?? null}::uuid, ${ledger?.agentId ?? null}::uuid,
               ${ledger?.runId ?? null}::uuid, ${ledger?.attempt ?? 1}, ${ledger?.provider ?? 'OFFLINE'}::"Provider", ${ledger?.model ?? ''},
               ${ledger?.inputTokens ?? 0}, ${ledger?.cachedInputTokens ?? 0}, ${ledger?.outputTokens ?? 0}, ${actual}, ${at}::timestamp(3)
        FROM verdict v WHERE v.stale = 0 AND ${ledger !== null}
      )
      SELECT v.stale,
             (SELECT json_agg(json_build_object(
                'id', m.id, 'organizationId', m."organizationId", 'projectId', m."projectId", 'period', m.period,
                'limitMicros', m."limitMicros"::text, 'spentMicros', m."spentMicros"::text, 'reservedMicros', m."reservedMicros"::text,
                'windowStart', m."windowStart", 'alertedPercent', m."alertedPercent", 'timeZone', m."timeZone")) FROM moved m) AS budgets
      FROM verdict v`;
    if (!row || Number(row.stale) > 0) return null;
    return (row.budgets ?? []).map(fromJson);
  }

  /** The rare path: a period ended between reservation and settlement; roll it over first, under lock. */
  private settleRollingWindows(hold: Hold, ledger: Prisma.UsageRecordUncheckedCreateInput | null, run: RunContext, actual: bigint, now: Date) {
    return this.prisma.$transaction(async (tx) => {
      if (ledger) await tx.usageRecord.create({ data: ledger });
      const budgets = await lockBudgets(tx, run.organizationId, run.projectId, now);
      const touched: LockedBudget[] = [];
      for (const r of hold.reservations) {
        const b = budgets.find((x) => x.id === r.budgetId);
        if (!b) continue; // the budget was removed meanwhile
        const closed = await tx.budgetReservation.updateMany({
          where: { id: r.id, status: 'OPEN' },
          data: { status: 'SETTLED', settledMicros: actual, closedAt: now },
        });
        if (closed.count === 0) await tx.budgetReservation.updateMany({ where: { id: r.id }, data: { settledMicros: actual } });
        const release = closed.count === 1 ? r.amount : 0n;
        b.spentMicros += actual;
        b.reservedMicros -= release;
        await tx.budget.update({ where: { id: b.id }, data: { spentMicros: { increment: actual }, reservedMicros: { decrement: release } } });
        touched.push(b);
      }
      return touched;
    });
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

type LockedBudgetJson = Omit<LockedBudget, 'limitMicros' | 'spentMicros' | 'reservedMicros' | 'windowStart'> & {
  limitMicros: string;
  spentMicros: string;
  reservedMicros: string;
  windowStart: string;
};

/** Money travels through JSON as text (a JSON number would lose precision past 2^53). */
const fromJson = (b: LockedBudgetJson): LockedBudget => ({
  ...b,
  limitMicros: BigInt(b.limitMicros),
  spentMicros: BigInt(b.spentMicros),
  reservedMicros: BigInt(b.reservedMicros),
  windowStart: new Date(`${b.windowStart}Z`),
});

/** Prisma stores DateTime as UTC wall-clock `timestamp(3)`; raw SQL must write the same, whatever the session zone. */
const utcWall = (d: Date) => d.toISOString().slice(0, 23);

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
