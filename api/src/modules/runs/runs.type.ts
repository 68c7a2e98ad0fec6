import type { AgentRun } from '../../_generated/prisma/client.js';
import { builder, MAX_PAGE_SIZE } from '../../schema/builder.js';
import { resumeRelatedCursor } from '../../schema/resume-cursor.js';
import { ConflictError, ValidationError } from '../../lib/errors.js';
import { fromGlobalId } from '../../lib/ids.js';
import { filterId } from '../../lib/validate.js';
import { channelMessages } from '../../lib/pubsub.js';
import { streamRunEvents, withReadSlot } from '../../orchestrator/event-stream.js';
import { projectChannel, type RunEventRecord } from '../../orchestrator/events.js';
import '../agents/agents.type.js';
import { ProviderEnum } from '../agents/agents.type.js';
import { authorize } from '../authorize.js';
import { can } from '../permissions.js';
import { loadProject } from '../projects/projects.service.js';
import { ProjectRef } from '../projects/projects.type.js';
import * as runs from './runs.service.js';

/** Most events `Run.events` returns per call. */
export const EVENTS_PAGE = 500;

export const RunStatusEnum = builder.enumType('RunStatus', {
  values: {
    QUEUED: { description: 'Waiting for a worker.' },
    RUNNING: { description: 'A worker is streaming the provider response.' },
    SUCCEEDED: {},
    FAILED: { description: 'The provider failed (after retries and fallbacks) or the worker was lost too often.' },
    CANCELLED: {},
    BLOCKED: { description: 'Not admitted: it would have exceeded a budget.' },
  } as const,
});

const RunEventTypeEnum = builder.enumType('RunEventType', {
  values: {
    STATUS: { description: 'A status change: `payload.status`, and for RUNNING `payload.attempt`, the claim number.' },
    TOKEN: { description: 'Streamed output text (`text`).' },
    USAGE: {
      description:
        'The usage of the run\'s last provider attempt (`provider`, `model`, token counts, `costMicros`, `attempts`), stored as the run ends. `estimated` is true when the provider sent no usage report (the run was cancelled or failed mid-stream): the figures are our estimate.',
    },
    HANDOFF: {},
    ERROR: { description: 'A failed provider attempt (`message`, `kind`, `provider`, `model`, `attempt`, `chainIndex`), or what blocked the run (`code`).' },
    LOG: {
      description:
        'The run\'s provider story. `kind: "attempt"`: an attempt starts on `provider` and `model` (`attempt` number, `chainIndex` 0 for the agent\'s own provider, n for its nth fallback); `kind: "skip"`: a chain entry was skipped (`reason` unconfigured or circuit_open, `detail`). Each has a readable `message`.',
    },
  } as const,
});

export const RunEventRef = builder.objectRef<RunEventRecord>('RunEvent').implement({
  description: 'One entry of a run\'s ordered event log. `seq` starts at 1 and has no gaps.',
  fields: (t) => ({
    seq: t.exposeInt('seq'),
    type: t.field({ type: RunEventTypeEnum, resolve: (e) => e.type }),
    text: t.string({ nullable: true, description: 'For TOKEN events: the streamed text. The output is the TOKEN text after the last RUNNING status event: a RUNNING event whose payload has `attempt` > 1 is a new claim of a run whose worker stopped responding, and it streams the output from the start.', resolve: (e) => (e.type === 'TOKEN' ? String(e.payload.text) : null) }),
    status: t.field({ type: RunStatusEnum, nullable: true, resolve: (e) => (e.type === 'STATUS' ? (e.payload.status as never) : null) }),
    payload: t.field({ type: 'JSON', resolve: (e) => e.payload }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

const TokenUsageRef = builder.objectRef<{ inputTokens: number; cachedInputTokens: number; outputTokens: number }>('TokenUsage').implement({
  fields: (t) => ({
    inputTokens: t.exposeInt('inputTokens'),
    cachedInputTokens: t.exposeInt('cachedInputTokens'),
    outputTokens: t.exposeInt('outputTokens'),
  }),
});

export const RunRef = builder.prismaNode('AgentRun', {
  name: 'Run',
  id: { field: 'id' },
  authScopes: (r) => ({ orgRole: { organizationId: r.organizationId, role: 'VIEWER' } }),
  fields: (t) => ({
    status: t.expose('status', { type: RunStatusEnum }),
    input: t.exposeString('input'),
    output: t.exposeString('output', { nullable: true }),
    error: t.exposeString('error', { nullable: true }),
    errorCode: t.exposeString('errorCode', { nullable: true }),
    provider: t.field({
      type: ProviderEnum,
      nullable: true,
      description: 'The provider of the run\'s last attempt once it ended (a fallback when the agent\'s own provider was skipped or failed); null before, or when no attempt was made.',
      resolve: (r) => r.provider,
    }),
    model: t.exposeString('model', { nullable: true, description: 'The model of the run\'s last attempt once it ended (see `provider`).' }),
    usage: t.field({ type: TokenUsageRef, description: 'Tokens of the run\'s last attempt (see `usageEstimated`).', resolve: (r) => r }),
    usageEstimated: t.exposeBoolean('usageEstimated', {
      description:
        'True when the provider sent no usage report for the run\'s last attempt (it was cancelled, or failed, mid-stream): `usage` and that attempt\'s cost are our estimate, from the prompt and the text received.',
    }),
    costMicros: t.expose('costMicros', { type: 'Money', description: 'Actual cost of every attempt, in micro-dollars.' }),
    attempts: t.exposeInt('attempts', {
      description: 'How many times a worker picked this run up (not provider attempts: those are the run\'s LOG events of kind "attempt").',
    }),
    lastSeq: t.exposeInt('lastSeq', { description: 'Seq of the newest stored event.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    startedAt: t.expose('startedAt', { type: 'DateTime', nullable: true }),
    firstTokenAt: t.expose('firstTokenAt', { type: 'DateTime', nullable: true }),
    finishedAt: t.expose('finishedAt', { type: 'DateTime', nullable: true }),
    durationMs: t.int({
      nullable: true,
      resolve: (r) => (r.startedAt ? (r.finishedAt ?? new Date()).getTime() - r.startedAt.getTime() : null),
    }),
    agent: t.relation('agent'),
    project: t.relation('project'),
    parentRun: t.relation('parentRun', { nullable: true, deprecationReason: 'Use retryOf.' }),
    startedBy: t.relation('createdBy', {
      nullable: true,
      description: 'Who started the run (for a retry, who retried it); null once their account is deleted.',
    }),
    cancelledBy: t.relation('cancelledBy', {
      nullable: true,
      description: 'Who cancelled the run (the first to ask, for a running one); null if nobody did, or once their account is deleted.',
    }),
    events: t.field({
      type: [RunEventRef],
      description: `Stored events after \`afterSeq\`, oldest first (at most ${EVENTS_PAGE} per call); only those of \`types\` when given.`,
      // Costed at the page it serves (see the builder's complexity), not at a connection's 100.
      extensions: { maxPageSize: EVENTS_PAGE },
      args: {
        afterSeq: t.arg.int({ defaultValue: 0 }),
        first: t.arg.int({ defaultValue: EVENTS_PAGE }),
        types: t.arg({ type: [RunEventTypeEnum], required: false, description: 'e.g. [STATUS, ERROR]: a run\'s story without its tokens' }),
      },
      resolve: async (r, { afterSeq, first, types }, ctx) => {
        const size = first ?? EVENTS_PAGE;
        if (size < 0) throw ValidationError.field('first', 'Ask for 0 events or more');
        if (size === 0) return [];
        const rows = await ctx.prisma.runEvent.findMany({
          where: { runId: r.id, seq: { gt: afterSeq ?? 0 }, ...(types?.length ? { type: { in: types } } : {}) },
          orderBy: { seq: 'asc' },
          take: Math.min(size, EVENTS_PAGE),
        });
        return rows.map((e) => ({ ...e, payload: e.payload as Record<string, unknown> }));
      },
    }),
    viewerCanCancel: t.boolean({
      resolve: async (r, _a, ctx) => !runs.TERMINAL.includes(r.status) && can(await ctx.roleIn(r.organizationId), 'run.cancel'),
    }),
    viewerCanRetry: t.boolean({
      description: 'The run is finished, its agent and its project are not archived, and the viewer may start runs.',
      select: { agent: { select: { archivedAt: true } }, project: { select: { archivedAt: true } } },
      resolve: async (r, _a, ctx) =>
        runs.TERMINAL.includes(r.status) && !r.agent.archivedAt && !r.project.archivedAt && can(await ctx.roleIn(r.organizationId), 'run.retry'),
    }),
  }),
});

// The retry lineage: read with the run itself, also for every run of a list. A retry is always in its
// original's organization (retryRun starts it with the same agent); a link elsewhere is never shown.
builder.prismaObjectFields(RunRef, (t) => ({
  retryOf: t.field({
    type: RunRef,
    nullable: true,
    description: 'The run this one is a retry of (retryRun started it); null if it is none.',
    select: (_a, _c, nestedSelection) => ({ parentRun: nestedSelection(true) }),
    resolve: (r) => (r.parentRun?.organizationId === r.organizationId ? r.parentRun : null),
  }),
  retriedAs: t.field({
    type: RunRef,
    nullable: true,
    description:
      'The retry of this run: the run retryRun returns for it (a run is retried once); null until it is retried. (Retries started before retryRun was idempotent, 7 December 2026, are not anyone\'s retriedAs; their retryOf is set.)',
    // The child run under retryRun's own idempotency key, which is unique in the organization: at most one.
    select: (_a, _c, nestedSelection) => ({ childRuns: nestedSelection({ where: { idempotencyKey: { startsWith: runs.RETRY_KEY_PREFIX } } }) }),
    resolve: (r) => r.childRuns.find((c) => c.organizationId === r.organizationId) ?? null,
  }),
}));

const RunFilter = builder.inputType('RunFilter', {
  fields: (t) => ({
    status: t.field({ type: [RunStatusEnum], description: 'Only runs in one of these states.' }),
    agentId: t.id({ description: 'Only runs of this agent (an Agent.id; a malformed one is a VALIDATION_FAILED on filter.agentId).' }),
  }),
});

builder.prismaObjectField('Project', 'runs', (t) =>
  t.relatedConnection('runs', {
    cursor: 'id',
    maxSize: MAX_PAGE_SIZE,
    defaultSize: 25,
    totalCount: true,
    description: 'Runs, newest first.',
    args: { filter: t.arg({ type: RunFilter }) },
    // The connection's own arguments reach `query` too, untyped.
    query: async ({ filter, ...page }, ctx) => {
      const where = {
        ...(filter?.status?.length ? { status: { in: filter.status } } : {}),
        // Within the project anyway: another organization's agent matches nothing, exactly like a missing one.
        ...(filter?.agentId != null ? { agentId: filterId(String(filter.agentId), 'Agent', ['filter', 'agentId']) } : {}),
      };
      const orderBy = [{ createdAt: 'desc' as const }, { id: 'desc' as const }];
      // A run changes status (a queued run starts), never agent: only a status filter can lose a listed run.
      const resume = await resumeRelatedCursor(ctx.prisma.agentRun, { page, where: where.status && where, orderBy, scope: ['projectId'] });
      return { where, orderBy, ...resume };
    },
  }),
);

builder.prismaObjectField('Agent', 'runs', (t) =>
  t.relatedConnection('runs', {
    cursor: 'id',
    maxSize: MAX_PAGE_SIZE,
    defaultSize: 25,
    query: () => ({ orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] }),
  }),
);

const QueueStatsRef = builder.objectRef<{ queued: number; running: number }>('QueueStats').implement({
  description: 'Runs waiting and running in this project, across all workers.',
  fields: (t) => ({ queued: t.exposeInt('queued'), running: t.exposeInt('running') }),
});

builder.objectField(ProjectRef, 'queue', (t) =>
  t.field({
    type: QueueStatsRef,
    resolve: async (p, _a, ctx) => {
      const rows = await ctx.prisma.agentRun.groupBy({
        by: ['status'],
        where: { projectId: p.id, status: { in: ['QUEUED', 'RUNNING'] } },
        _count: true,
      });
      const n = (s: string) => rows.find((r) => r.status === s)?._count ?? 0;
      return { queued: n('QUEUED'), running: n('RUNNING') };
    },
  }),
);

builder.queryField('run', (t) =>
  t.prismaField({
    type: 'AgentRun',
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _r, { id }, ctx) => {
      if (!ctx.viewer) return null;
      try {
        return await ctx.prisma.agentRun.findFirst({
          ...query,
          where: { id: fromGlobalId(String(id), 'Run'), organization: { memberships: { some: { userId: ctx.viewer.userId } } } },
        });
      } catch {
        return null;
      }
    },
  }),
);

const runPayload = (name: string) =>
  builder.objectRef<AgentRun>(name).implement({
    fields: (t) => ({
      run: t.prismaField({
        type: 'AgentRun',
        // The mutation returns the whole row; read it again only when the selection needs its relations.
        resolve: (query, p, _a, ctx) => (Object.keys(query).length === 0 ? p : ctx.prisma.agentRun.findUniqueOrThrow({ ...query, where: { id: p.id } })),
      }),
    }),
  });

const StartRunInput = builder.inputType('StartRunInput', {
  fields: (t) => ({
    agentId: t.id({ required: true }),
    input: t.string({ required: true }),
    idempotencyKey: t.string({
      description:
        'Retrying a start with the same key returns the same run instead of a second one; the key used with another agent or input is a ConflictError.',
    }),
  }),
});

builder.mutationField('startRun', (t) =>
  t.field({
    type: runPayload('StartRunPayload'),
    errors: { types: [ConflictError] },
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: StartRunInput, required: true }) },
    resolve: (_r, { input: { agentId, ...rest } }, ctx) => runs.startRun(ctx, fromGlobalId(String(agentId), 'Agent'), rest),
  }),
);

const RunIdInput = builder.inputType('RunIdInput', { fields: (t) => ({ id: t.id({ required: true }) }) });

builder.mutationField('cancelRun', (t) =>
  t.field({
    type: runPayload('CancelRunPayload'),
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: RunIdInput, required: true }) },
    resolve: (_r, { input }, ctx) => runs.cancelRun(ctx, fromGlobalId(String(input.id), 'Run')),
  }),
);

builder.mutationField('retryRun', (t) =>
  t.field({
    type: runPayload('RetryRunPayload'),
    description:
      'Starts a finished run again: a new run of the same agent and input, whose retryOf is this one (and this run\'s retriedAs, the new one). A run is retried once: asking again returns that retry (safe to repeat after a lost answer); to try again after it, retry the retry.',
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: RunIdInput, required: true }) },
    resolve: (_r, { input }, ctx) => runs.retryRun(ctx, fromGlobalId(String(input.id), 'Run')),
  }),
);

builder.subscriptionField('runEvents', (t) =>
  t.field({
    type: RunEventRef,
    description:
      'Every stored event with seq > afterSeq, then live ones: each exactly once, in order. Resume after a disconnect by passing the last seq you saw. Completes after the final status.',
    args: { runId: t.arg.id({ required: true }), afterSeq: t.arg.int({ defaultValue: 0 }) },
    subscribe: (_r, { runId, afterSeq }, ctx) =>
      // Authorized when the stream starts, in one of the slots that bound a burst of subscribers' queries.
      streamRunEvents(
        ctx.db.query,
        ctx.bus,
        () => withReadSlot(() => runs.authorizeRun(ctx, fromGlobalId(String(runId), 'Run'), 'run.read')),
        afterSeq ?? 0,
      ),
    // Nothing below this field may read the viewer: every subscriber of a run shares one result per event
    // (VIEWER_INDEPENDENT_SUBSCRIPTIONS in schema/shared-subscribe.ts).
    resolve: (e) => e,
  }),
);

/**
 * The changed run, read once per status change and selection for every dashboard subscribed in this
 * process: the bus hands each of them the same message object. Each subscriber was authorized for the
 * project when it subscribed; fields that depend on the viewer resolve from the shared row per subscriber.
 */
const changedRuns = new WeakMap<object, Map<string, Promise<AgentRun | null>>>();

const RunUpdateRef = builder.objectRef<{ runId: string; status: string }>('RunUpdate').implement({
  fields: (t) => ({
    run: t.prismaField({
      type: 'AgentRun',
      nullable: true,
      resolve: (query, u, _a, ctx) => {
        let reads = changedRuns.get(u);
        if (!reads) changedRuns.set(u, (reads = new Map()));
        const key = JSON.stringify(query);
        let read = reads.get(key);
        if (!read) {
          read = ctx.prisma.agentRun.findUnique({ ...query, where: { id: u.runId } });
          reads.set(key, read);
        }
        return read;
      },
    }),
    status: t.field({ type: RunStatusEnum, resolve: (u) => u.status as never }),
  }),
});

builder.subscriptionField('projectRunUpdates', (t) =>
  t.field({
    type: RunUpdateRef,
    description: 'Status changes of every run in a project, for dashboards.',
    args: { projectId: t.arg.id({ required: true }) },
    subscribe: async function* (_r, { projectId }, ctx) {
      const project = await loadProject(ctx, fromGlobalId(String(projectId), 'Project'));
      await authorize(ctx, project.organizationId, 'run.read', 'Project');
      yield* channelMessages<{ runId: string; status: string }>(ctx.bus, projectChannel(project.id));
    },
    resolve: (u) => u,
  }),
);
