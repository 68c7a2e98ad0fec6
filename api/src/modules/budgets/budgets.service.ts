import { z } from 'zod';
import type { Budget, BudgetPeriod } from '../../_generated/prisma/client.js';
import type { Context } from '../../context.js';
import { NotFoundError } from '../../lib/errors.js';
import { parseInput } from '../../lib/validate.js';
import { audit } from '../audit/audit.service.js';
import { authorize, requireViewer } from '../authorize.js';
import { loadProject } from '../projects/projects.service.js';
import { announceBudgetChange } from './budget-guard.js';
import { windowEnd, windowStart } from './windows.js';

const SetBudget = z.object({
  period: z.enum(['DAILY', 'MONTHLY'], 'Choose a daily or a monthly budget'),
  limitMicros: z
    .bigint()
    .min(0n, 'The limit cannot be negative')
    .max(1_000_000_000_000_000n, 'The limit can be at most $1,000,000,000'),
});

/** A budget as it stands now: a period that has ended reads as the fresh current one. */
export interface BudgetView {
  budget: Budget;
  limitMicros: bigint;
  spentMicros: bigint;
  reservedMicros: bigint;
  remainingMicros: bigint;
  percentUsed: number;
  windowStart: Date;
  resetsAt: Date;
}

export function viewBudget(budget: Budget, timeZone: string, now = new Date()): BudgetView {
  const start = windowStart(budget.period, timeZone, now);
  // A period that has ended but not rolled yet (that happens under lock at the next settlement or lease)
  // reads as the roll will leave it: nothing spent; what is held stays held.
  const spent = budget.windowStart < start ? 0n : budget.spentMicros;
  const reserved = budget.reservedMicros;
  const remaining = budget.limitMicros - spent - reserved;
  return {
    budget,
    limitMicros: budget.limitMicros,
    spentMicros: spent,
    reservedMicros: reserved,
    remainingMicros: remaining > 0n ? remaining : 0n,
    percentUsed: budget.limitMicros > 0n ? Number(((spent + reserved) * 10_000n) / budget.limitMicros) / 100 : 100,
    windowStart: start,
    resetsAt: windowEnd(budget.period, timeZone, now),
  };
}

/** Creates or changes the budget for (organization, project?, period). */
export async function setBudget(ctx: Context, organizationId: string, projectId: string | null, raw: { period: BudgetPeriod; limit: bigint }) {
  await authorize(ctx, organizationId, 'budget.set', 'Organization');
  if (projectId) {
    const project = await loadProject(ctx, projectId);
    if (project.organizationId !== organizationId) throw new NotFoundError('Project');
  }
  const input = parseInput(SetBudget, { period: raw.period, limitMicros: raw.limit });
  const org = await ctx.prisma.organization.findUniqueOrThrow({ where: { id: organizationId } });
  const saved = await ctx.prisma.$transaction(async (tx) => {
    // Serialise changes to this organization's budgets: (org, NULL project, period) cannot rely on a unique index.
    await tx.$queryRaw`SELECT id FROM "Organization" WHERE id = ${organizationId}::uuid FOR UPDATE`;
    const existing = await tx.budget.findFirst({ where: { organizationId, projectId, period: input.period } });
    const budget = existing
      ? await tx.budget.update({ where: { id: existing.id }, data: { limitMicros: input.limitMicros } })
      : await tx.budget.create({
          data: { organizationId, projectId, period: input.period, limitMicros: input.limitMicros, windowStart: windowStart(input.period, org.timeZone, new Date()) },
        });
    await audit(tx, {
      organizationId,
      actorId: ctx.viewer!.userId,
      action: existing ? 'budget.updated' : 'budget.created',
      targetType: 'Budget',
      targetId: budget.id,
      metadata: { period: input.period, projectId, limitMicros: input.limitMicros.toString(), previousLimitMicros: existing?.limitMicros.toString() ?? null },
      ip: ctx.ip,
    });
    return budget;
  });
  // Every process's budget guard looks the organization's budgets up again before admitting more from spare allowance.
  await announceBudgetChange(ctx.bus, organizationId);
  return saved;
}

export async function removeBudget(ctx: Context, budgetId: string) {
  const viewer = requireViewer(ctx);
  const budget = await ctx.prisma.budget.findFirst({
    where: { id: budgetId, organization: { memberships: { some: { userId: viewer.userId } } } },
  });
  if (!budget) throw new NotFoundError('Budget');
  await authorize(ctx, budget.organizationId, 'budget.remove', 'Budget');
  await ctx.prisma.$transaction(async (tx) => {
    await tx.budget.delete({ where: { id: budget.id } });
    await audit(tx, {
      organizationId: budget.organizationId,
      actorId: viewer.userId,
      action: 'budget.removed',
      targetType: 'Budget',
      targetId: budget.id,
      metadata: { period: budget.period, projectId: budget.projectId, limitMicros: budget.limitMicros.toString() },
      ip: ctx.ip,
    });
  });
  await announceBudgetChange(ctx.bus, budget.organizationId);
  return budget;
}
