import type { Context } from '../../context.js';
import { builder } from '../../schema/builder.js';
import { ErrorInterface } from '../../schema/errors.js';
import { fromGlobalId } from '../../lib/ids.js';
import { channelMessages } from '../../lib/pubsub.js';
import { authorize } from '../authorize.js';
import { can } from '../permissions.js';
import { OrganizationRef } from '../orgs/orgs.type.js';
import { RunRef } from '../runs/runs.type.js';
import { budgetChannel, type BudgetDenial } from './budget-guard.js';
import * as budgets from './budgets.service.js';
import { usageCsv, usageReport, type UsageGroupBy, type UsageReport, type UsageRow } from './usage.service.js';

const BudgetPeriodEnum = builder.enumType('BudgetPeriod', {
  values: { DAILY: { description: 'Calendar day in the organization time zone.' }, MONTHLY: { description: 'Calendar month in the organization time zone.' } } as const,
});

/**
 * Why a run was BLOCKED: the budget it would have exceeded. A plain object, not an Error instance:
 * graphql-js treats an Error returned by a resolver as a failure of the field.
 */
interface BudgetExceeded {
  name: 'BudgetExceededError';
  code: 'BUDGET_EXCEEDED';
  message: string;
  extensions: { code: 'BUDGET_EXCEEDED' };
  details: BudgetDenial;
}

const BudgetExceededRef = builder.objectRef<BudgetExceeded>('BudgetExceededError').implement({
  interfaces: [ErrorInterface],
  description: 'A run was not admitted: its worst-case cost did not fit in a budget.',
  isTypeOf: (v) => (v as { name?: string }).name === 'BudgetExceededError',
  fields: (t) => ({
    period: t.field({ type: BudgetPeriodEnum, resolve: (e) => e.details.period }),
    limit: t.field({ type: 'Money', resolve: (e) => BigInt(e.details.limitMicros) }),
    spent: t.field({ type: 'Money', resolve: (e) => BigInt(e.details.spentMicros) }),
    reserved: t.field({
      type: 'Money',
      description: "Held by attempts in flight and leased by other processes when the run was refused (the refusing process's own spare allowance is not counted).",
      resolve: (e) => BigInt(e.details.reservedMicros),
    }),
    requested: t.field({ type: 'Money', description: 'Worst-case cost of the attempt that was refused.', resolve: (e) => BigInt(e.details.requestedMicros) }),
    resetsAt: t.field({ type: 'DateTime', resolve: (e) => new Date(e.details.resetsAt) }),
    projectScoped: t.boolean({ description: 'True when the budget is a project budget.', resolve: (e) => e.details.projectId !== null }),
  }),
});

builder.objectField(RunRef, 'budgetError', (t) =>
  t.field({
    type: BudgetExceededRef,
    nullable: true,
    description: 'For a BLOCKED run: the budget that refused it.',
    resolve: (run) =>
      run.status === 'BLOCKED' && run.errorDetails && typeof run.errorDetails === 'object'
        ? {
            name: 'BudgetExceededError' as const,
            code: 'BUDGET_EXCEEDED' as const,
            extensions: { code: 'BUDGET_EXCEEDED' as const },
            message: run.error ?? 'Budget exceeded',
            details: run.errorDetails as unknown as BudgetDenial,
          }
        : null,
  }),
);

builder.prismaNode('Budget', {
  id: { field: 'id' },
  authScopes: (b) => ({ orgRole: { organizationId: b.organizationId, role: 'VIEWER' } }),
  description: 'A spending limit per calendar period. Money is in micro-dollars.',
  fields: (t) => ({
    period: t.expose('period', { type: BudgetPeriodEnum }),
    project: t.relation('project', { nullable: true }),
    limit: t.expose('limitMicros', { type: 'Money' }),
    spent: t.field({ type: 'Money', description: 'Settled spend this period.', resolve: async (b, _a, ctx) => (await view(ctx, b)).spentMicros }),
    reserved: t.field({
      type: 'Money',
      description:
        'Held and not yet spent: the worst-case cost of provider attempts in flight, plus allowance that worker processes have ' +
        'leased in advance to admit runs without a database round trip (given back after about 2 s without new runs, at ' +
        'shutdown, or when the budget nears its limit and another process needs it). Never available to other spending.',
      resolve: async (b, _a, ctx) => (await view(ctx, b)).reservedMicros,
    }),
    remaining: t.field({ type: 'Money', description: 'limit - spent - reserved, never below zero.', resolve: async (b, _a, ctx) => (await view(ctx, b)).remainingMicros }),
    percentUsed: t.float({
      description: '(spent + reserved) / limit, in percent; 100 for a zero limit, which freezes spending: only free (offline) runs go on.',
      resolve: async (b, _a, ctx) => (await view(ctx, b)).percentUsed,
    }),
    windowStart: t.field({ type: 'DateTime', resolve: async (b, _a, ctx) => (await view(ctx, b)).windowStart }),
    resetsAt: t.field({ type: 'DateTime', resolve: async (b, _a, ctx) => (await view(ctx, b)).resetsAt }),
    viewerCanEdit: t.boolean({ resolve: async (b, _a, ctx) => can(await ctx.roleIn(b.organizationId), 'budget.set') }),
  }),
});

// One view per budget per request, whichever of its fields are selected.
const views = new WeakMap<object, Map<string, Promise<budgets.BudgetView>>>();
function view(ctx: Pick<Context, 'prisma'>, b: Parameters<typeof budgets.viewBudget>[0]) {
  let perRequest = views.get(ctx);
  if (!perRequest) views.set(ctx, (perRequest = new Map()));
  let v = perRequest.get(b.id);
  if (!v) {
    v = ctx.prisma.organization
      .findUniqueOrThrow({ where: { id: b.organizationId }, select: { timeZone: true } })
      .then((o) => budgets.viewBudget(b, o.timeZone));
    perRequest.set(b.id, v);
  }
  return v;
}

builder.prismaObjectField('Organization', 'budgets', (t) =>
  t.relation('budgets', {
    description: 'Every budget of the organization: organization-wide ones first, then per project.',
    args: {
      organizationWide: t.arg.boolean({
        description: 'true: only the organization-wide budgets; false: only the per-project ones; omitted: all.',
      }),
    },
    query: (args) => ({
      ...(typeof args.organizationWide === 'boolean' ? { where: { projectId: args.organizationWide ? null : { not: null } } } : {}),
      orderBy: [{ projectId: { sort: 'asc', nulls: 'first' } }, { period: 'asc' }],
    }),
  }),
);

builder.prismaObjectField('Project', 'budgets', (t) =>
  t.relation('budgets', { description: "The project's own budgets.", query: { orderBy: { period: 'asc' } } }),
);

const UsageGroupByEnum = builder.enumType('UsageGroupBy', { values: ['DAY', 'MODEL', 'PROVIDER', 'PROJECT', 'AGENT'] as const });

const UsageRowRef = builder.objectRef<UsageRow>('UsageRow').implement({
  fields: (t) => ({
    key: t.exposeString('key', { description: 'Day (YYYY-MM-DD in the organization time zone), PROVIDER/model, provider, or the project/agent id.' }),
    label: t.exposeString('label'),
    cost: t.expose('costMicros', { type: 'Money' }),
    inputTokens: t.exposeInt('inputTokens'),
    cachedInputTokens: t.exposeInt('cachedInputTokens'),
    outputTokens: t.exposeInt('outputTokens'),
    attempts: t.exposeInt('attempts', { description: 'Provider attempts (retries and fallbacks count separately).' }),
    runs: t.exposeInt('runs'),
  }),
});

const UsageReportRef = builder.objectRef<UsageReport>('UsageReport').implement({
  description: 'Totals from the append-only usage ledger; they reconcile exactly with budgets.',
  fields: (t) => ({
    from: t.expose('from', { type: 'DateTime' }),
    to: t.expose('to', { type: 'DateTime' }),
    groupBy: t.field({ type: UsageGroupByEnum, resolve: (r) => r.groupBy }),
    rows: t.field({ type: [UsageRowRef], resolve: (r) => r.rows }),
    total: t.field({ type: UsageRowRef, resolve: (r) => r.total }),
    csv: t.string({ description: 'The same report as CSV (cost in micro-dollars and in dollars).', resolve: (r) => usageCsv(r) }),
  }),
});

builder.objectField(OrganizationRef, 'usage', (t) =>
  t.field({
    type: UsageReportRef,
    args: {
      from: t.arg({ type: 'DateTime', required: true }),
      to: t.arg({ type: 'DateTime', required: true }),
      groupBy: t.arg({ type: UsageGroupByEnum, required: true }),
    },
    resolve: async (org, { from, to, groupBy }, ctx) => {
      await authorize(ctx, org.id, 'usage.read', 'Organization');
      return usageReport(ctx.prisma, org, from, to, groupBy as UsageGroupBy);
    },
  }),
);

const SetBudgetInput = builder.inputType('SetBudgetInput', {
  fields: (t) => ({
    organizationId: t.id({ required: true }),
    projectId: t.id({ description: 'Limit one project instead of the whole organization.' }),
    period: t.field({ type: BudgetPeriodEnum, required: true }),
    limit: t.field({ type: 'Money', required: true, description: 'Micro-dollars: "25000000" is $25.' }),
  }),
});

const SetBudgetPayload = builder.objectRef<{ id: string }>('SetBudgetPayload').implement({
  fields: (t) => ({
    budget: t.prismaField({ type: 'Budget', resolve: (q, p, _a, ctx) => ctx.prisma.budget.findUniqueOrThrow({ ...q, where: { id: p.id } }) }),
  }),
});

builder.mutationField('setBudget', (t) =>
  t.field({
    type: SetBudgetPayload,
    errors: {},
    authScopes: { loggedIn: true },
    description: 'Creates or changes the DAILY or MONTHLY budget of an organization or one of its projects (ADMIN and above).',
    args: { input: t.arg({ type: SetBudgetInput, required: true }) },
    resolve: (_r, { input }, ctx) =>
      budgets.setBudget(
        ctx,
        fromGlobalId(String(input.organizationId), 'Organization'),
        input.projectId != null ? fromGlobalId(String(input.projectId), 'Project') : null,
        { period: input.period, limit: input.limit },
      ),
  }),
);

const RemoveBudgetInput = builder.inputType('RemoveBudgetInput', { fields: (t) => ({ id: t.id({ required: true }) }) });
const RemoveBudgetPayload = builder.objectRef<{ removedId: string }>('RemoveBudgetPayload').implement({
  fields: (t) => ({ removedId: t.exposeID('removedId') }),
});

builder.mutationField('removeBudget', (t) =>
  t.field({
    type: RemoveBudgetPayload,
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: RemoveBudgetInput, required: true }) },
    resolve: async (_r, { input }, ctx) => {
      await budgets.removeBudget(ctx, fromGlobalId(String(input.id), 'Budget'));
      return { removedId: String(input.id) };
    },
  }),
);

const BudgetAlertRef = builder
  .objectRef<{ budgetId: string; period: 'DAILY' | 'MONTHLY'; percent: number; limitMicros: string; spentMicros: string; resetsAt: string }>('BudgetAlert')
  .implement({
    description: 'A budget crossed 50 %, 80 % or 100 % of its limit.',
    fields: (t) => ({
      budgetId: t.id({ resolve: (a) => fromBudgetDbId(a.budgetId) }),
      period: t.field({ type: BudgetPeriodEnum, resolve: (a) => a.period }),
      percent: t.exposeInt('percent'),
      limit: t.field({ type: 'Money', resolve: (a) => BigInt(a.limitMicros) }),
      spent: t.field({ type: 'Money', resolve: (a) => BigInt(a.spentMicros) }),
      resetsAt: t.field({ type: 'DateTime', resolve: (a) => new Date(a.resetsAt) }),
    }),
  });

const fromBudgetDbId = (id: string) => Buffer.from(`Budget:${id}`).toString('base64');

builder.subscriptionField('budgetAlerts', (t) =>
  t.field({
    type: BudgetAlertRef,
    args: { organizationId: t.arg.id({ required: true }) },
    subscribe: async function* (_r, { organizationId }, ctx) {
      const orgId = fromGlobalId(String(organizationId), 'Organization');
      await authorize(ctx, orgId, 'budget.read', 'Organization');
      yield* channelMessages<never>(ctx.bus, budgetChannel(orgId));
    },
    resolve: (a) => a,
  }),
);
