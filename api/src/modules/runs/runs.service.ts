import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AgentRun } from '../../_generated/prisma/client.js';
import type { Role } from '../../_generated/prisma/enums.js';
import type { RunStatus } from '../../_generated/prisma/enums.js';
import type { Context } from '../../context.js';
import { NotFoundError, ValidationError } from '../../lib/errors.js';
import { parseInput } from '../../lib/validate.js';
import { RunEventWriter } from '../../orchestrator/events.js';
import { statusAnnouncement } from '../../orchestrator/run-executor.js';
import type { StartOutcome } from '../../orchestrator/orchestrator.js';
import { statementNotifications } from '../../lib/pubsub.js';
import { SqlParams, utcWall } from '../../lib/sql.js';
import { authorize, authorizeRole, requireViewer } from '../authorize.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const TERMINAL: RunStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'BLOCKED'];

const StartRun = z.object({
  input: z.string().min(1, 'Give the agent something to do').max(200_000, 'Keep the input under 200,000 characters'),
  idempotencyKey: z.string().trim().min(1).max(200).nullish(),
});

/** A run the viewer can see, or NotFound (also for runs of other organizations). */
export async function loadRun(ctx: Context, runId: string) {
  const viewer = requireViewer(ctx);
  const run = await ctx.prisma.agentRun.findFirst({
    where: { id: runId, organization: { memberships: { some: { userId: viewer.userId } } } },
  });
  if (!run) throw new NotFoundError('Run');
  return run;
}

/** Creates a QUEUED run and hands it to the queue. The same idempotency key returns the same run. */
export async function startRun(ctx: Context, agentId: string, raw: unknown, extra: { parentRunId?: string } = {}) {
  const viewer = requireViewer(ctx);
  // The agent and the viewer's role in its organization in one round trip (the hot path of the API).
  const [agent] = UUID.test(agentId)
    ? await ctx.db.query<{ id: string; organizationId: string; projectId: string; archived: boolean; role: Role | null }>(
        `SELECT a.id, a."organizationId", a."projectId", a."archivedAt" IS NOT NULL AS archived, m.role::text AS role
         FROM "Agent" a JOIN "Membership" m ON m."organizationId" = a."organizationId" AND m."userId" = $2::uuid
         WHERE a.id = $1::uuid`,
        [agentId, viewer.userId],
      )
    : [];
  if (!agent) throw new NotFoundError('Agent');
  ctx.knowRole(agent.organizationId, agent.role);
  await authorizeRole(ctx, agent.organizationId, agent.role, 'run.start', 'Agent');
  if (agent.archived) throw new ValidationError([{ path: ['agentId'], message: 'This agent is archived' }]);
  const input = parseInput(StartRun, raw);
  if (input.idempotencyKey) {
    const existing = await ctx.prisma.agentRun.findUnique({
      where: { organizationId_idempotencyKey: { organizationId: agent.organizationId, idempotencyKey: input.idempotencyKey } },
    });
    if (existing) return existing;
  }
  // Charged only when a run is actually created, so a replayed idempotent start never trips the limit.
  await ctx.limits.consume('runsOrg', agent.organizationId);
  const now = new Date();
  const run: AgentRun = {
    ...RUN_DEFAULTS,
    id: randomUUID(),
    organizationId: agent.organizationId,
    projectId: agent.projectId,
    agentId: agent.id,
    createdById: ctx.viewer!.userId,
    input: input.input,
    idempotencyKey: input.idempotencyKey ?? null,
    parentRunId: extra.parentRunId ?? null,
    lastSeq: 1,
    createdAt: now,
    queuedAt: now,
  };
  // One statement creates the run with its first event (and, on PostgreSQL, the project's status
  // notification riding along), claimed by a free worker of this process or, in the same transaction,
  // queued: see Orchestrator.start.
  const announce = [statusAnnouncement(run.projectId, run.id, 'QUEUED')];
  let published = async () => {};
  const created = await ctx.orchestrator.start(
    { runId: run.id, organizationId: run.organizationId },
    {
      async insert(query, claim) {
        const p = new SqlParams();
        const args = [run.id, run.organizationId, run.projectId, run.agentId, run.createdById, run.input, run.idempotencyKey, run.parentRunId, utcWall(now)];
        const start = `hub_start_run(${args.map((v) => p.add(v)).join(', ')}, ${p.add(claim?.workerId ?? null)}, ${p.add(claim?.perOrgCap ?? null)}::int, ${p.add(claim?.leaseMs ?? null)}::int)`;
        const notes = statementNotifications(ctx.bus, announce, p);
        // The notifications go out only when a run was created (a taken idempotency key creates nothing).
        const [row] = await query<{ start: StartOutcome | null }>(`SELECT s.start, CASE WHEN s.start IS NULL THEN 0 ELSE ${notes.sql} END FROM (SELECT ${start} AS start) s`, p.values);
        published = notes.publishAfter;
        return row!.start;
      },
      committed: () => published(),
    },
  );
  if (!created) {
    // Two concurrent starts with one key: the loser returns the winner's run.
    return ctx.prisma.agentRun.findUniqueOrThrow({
      where: { organizationId_idempotencyKey: { organizationId: agent.organizationId, idempotencyKey: input.idempotencyKey! } },
    });
  }
  return run;
}

/** Columns of a new run that take their database defaults (checked against the model by the type). */
const RUN_DEFAULTS: Omit<
  AgentRun,
  'id' | 'organizationId' | 'projectId' | 'agentId' | 'createdById' | 'input' | 'idempotencyKey' | 'parentRunId' | 'lastSeq' | 'createdAt' | 'queuedAt'
> = {
  status: 'QUEUED',
  output: null,
  error: null,
  errorCode: null,
  errorDetails: null,
  provider: null,
  model: null,
  inputTokens: 0,
  cachedInputTokens: 0,
  outputTokens: 0,
  costMicros: 0n,
  attempts: 0,
  leaseOwner: null,
  leaseExpiresAt: null,
  cancelRequested: false,
  startedAt: null,
  firstTokenAt: null,
  finishedAt: null,
  workflowRunId: null,
  workflowStepIndex: null,
};

/** Cancels a queued run at once; asks the worker of a running one to stop (it records what was produced). */
export async function cancelRun(ctx: Context, runId: string) {
  const run = await loadRun(ctx, runId);
  await authorize(ctx, run.organizationId, 'run.cancel', 'Run');
  if (TERMINAL.includes(run.status)) return run;
  const now = new Date();
  const writer = new RunEventWriter(ctx.events, run.id, run.lastSeq);
  const fromQueue = await writer.finish(
    'STATUS',
    { status: 'CANCELLED', error: 'Cancelled by a user', errorCode: 'CANCELLED' },
    (p, seq) => `UPDATE "AgentRun"
        SET status = 'CANCELLED', "cancelRequested" = true, "finishedAt" = ${p.add(utcWall(now))}::timestamp(3),
            error = 'Cancelled by a user', "errorCode" = 'CANCELLED', "lastSeq" = ${p.add(seq)}
        WHERE id = ${p.add(run.id)}::uuid AND status = 'QUEUED' AND "lastSeq" = ${p.add(run.lastSeq)}
        RETURNING id`,
    [statusAnnouncement(run.projectId, run.id, 'CANCELLED')],
  );
  if (!fromQueue) {
    await ctx.prisma.agentRun.update({ where: { id: run.id }, data: { cancelRequested: true } });
    await ctx.orchestrator.requestCancel(run.id);
  }
  return ctx.prisma.agentRun.findUniqueOrThrow({ where: { id: run.id } });
}

/** Starts a new run of the same agent with the same input, linked to the original. */
export async function retryRun(ctx: Context, runId: string) {
  const run = await loadRun(ctx, runId);
  await authorize(ctx, run.organizationId, 'run.retry', 'Run');
  if (!TERMINAL.includes(run.status)) throw new ValidationError([{ path: ['id'], message: 'Only a finished run can be retried' }]);
  return startRun(ctx, run.agentId, { input: run.input }, { parentRunId: run.id });
}
