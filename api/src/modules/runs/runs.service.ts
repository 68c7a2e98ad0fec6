import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AgentRun } from '../../_generated/prisma/client.js';
import type { Role } from '../../_generated/prisma/enums.js';
import type { RunStatus } from '../../_generated/prisma/enums.js';
import type { Context } from '../../context.js';
import type { SqlQuery } from '../../lib/db.js';
import { ConflictError, NotFoundError, ValidationError } from '../../lib/errors.js';
import { isUuid } from '../../lib/ids.js';
import { ARCHIVED_PROJECT } from '../projects/projects.service.js';
import { parseInput, storable } from '../../lib/validate.js';
import { RunEventWriter } from '../../orchestrator/events.js';
import { CANCEL_GRACE_MS, statusAnnouncement } from '../../orchestrator/run-executor.js';
import type { StartOutcome } from '../../orchestrator/orchestrator.js';
import { statementNotifications } from '../../lib/pubsub.js';
import { SqlParams, utcWall } from '../../lib/sql.js';
import { auditWithin } from '../audit/audit.service.js';
import { authorize, authorizeRole, requireViewer } from '../authorize.js';
import { can, type Action } from '../permissions.js';
import { ROLE_RANK } from '../../schema/auth.js';
import { RateLimits } from '../../lib/rate-limit.js';

export const TERMINAL: RunStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'BLOCKED'];

const StartRun = z.object({
  input: z
    .string()
    .max(200_000, 'Keep the input under 200,000 characters')
    .refine((s) => s.trim() !== '', 'Give the agent something to do'),
  idempotencyKey: z
    .string()
    .trim()
    .min(1, 'Give the idempotency key at least one character')
    .max(200, 'Keep the idempotency key to 200 characters')
    .nullish(),
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

/**
 * Authorizes `action` on a run (an id from `fromGlobalId`) for the viewer and returns the id: one statement
 * reads the run's organization and the viewer's role there (remembered in the context). A run of an
 * organization the viewer is not a member of is NotFound, exactly like a missing one.
 */
export async function authorizeRun(ctx: Context, runId: string, action: Action): Promise<string> {
  const viewer = requireViewer(ctx);
  const [row] = await ctx.db.query<{ organizationId: string; role: Role }>(
    `SELECT r."organizationId", m.role FROM "AgentRun" r
       JOIN "Membership" m ON m."organizationId" = r."organizationId" AND m."userId" = $2::uuid
      WHERE r.id = $1::uuid`,
    [runId, viewer.userId],
  );
  if (!row) throw new NotFoundError('Run');
  ctx.knowRole(row.organizationId, row.role);
  await authorizeRole(ctx, row.organizationId, row.role, action, 'Run');
  return runId;
}

/** Where an agent lives; it never moves, so a process remembers it (see `placeAgent`). */
interface Placement {
  organizationId: string;
  projectId: string;
}
const PLACEMENTS_KEPT = 10_000;
const placements = new WeakMap<object, Map<string, Placement>>();

/**
 * The agent's organization and project, for a viewer who is a member there; from this process's memory
 * after their first look-up. Only a belief: hub_start_run finds the agent only where it says, and checks
 * the caller's role there. Remembered per viewer and read with their membership, so an agent of another
 * organization is not found by the same single statement as an id that exists nowhere: whoever holds such
 * an id learns nothing from the answer or from the time it takes.
 */
async function placeAgent(ctx: Context, agentId: string, userId: string): Promise<Placement | null> {
  let known = placements.get(ctx.db);
  if (!known) placements.set(ctx.db, (known = new Map()));
  const key = `${userId} ${agentId}`;
  const hit = known.get(key);
  if (hit) return hit;
  const [row] = await ctx.db.query<Placement & { role: Role }>(
    `SELECT a."organizationId", a."projectId", m.role FROM "Agent" a
       JOIN "Membership" m ON m."organizationId" = a."organizationId" AND m."userId" = $2::uuid
      WHERE a.id = $1::uuid`,
    [agentId, userId],
  );
  if (!row) return null;
  ctx.knowRole(row.organizationId, row.role);
  if (known.size >= PLACEMENTS_KEPT) known.delete(known.keys().next().value!);
  known.set(key, { organizationId: row.organizationId, projectId: row.projectId });
  return row;
}

/** Roles that may start a run, for hub_start_run (the permission table decides). */
const STARTERS = (Object.keys(ROLE_RANK) as Role[]).filter((r) => can(r, 'run.start'));

/**
 * The run an idempotency key already started, if it is the start asked for again; a key reused for another
 * agent or input is a conflict, not that other run passed off as this one.
 */
function sameStart(existing: AgentRun, agentId: string, input: string): AgentRun {
  if (existing.agentId !== agentId || existing.input !== input) {
    throw new ConflictError('This idempotency key already started a run with another agent or input: use a new key for a new run', 'idempotencyKey');
  }
  return existing;
}

/** What hub_start_run raises (see its migration) and what each means to the caller. */
const START_REFUSALS = { HB002: 'not found', HB003: 'forbidden', HB004: 'archived', HB005: 'rate limited', HB006: 'project archived' } as const;

/**
 * Creates a run: claimed by a free worker of this process (stored RUNNING) or queued. The same
 * idempotency key returns the same run (a ConflictError when it started one with another agent or input).
 * One statement does the checks and the creation (see hub_start_run): the caller's role in the agent's
 * organization, the agent and its project not archived, the organization's run rate limit, then the run, its first
 * event and, with a free worker here, its claim.
 */
export async function startRun(ctx: Context, agentId: string, raw: unknown, extra: { parentRunId?: string; idempotencyKey?: string } = {}) {
  const viewer = requireViewer(ctx);
  const placement = isUuid(agentId) ? await placeAgent(ctx, agentId, viewer.userId) : null;
  if (!placement) throw new NotFoundError('Agent');
  const { organizationId, projectId } = placement;
  const parsed = StartRun.safeParse(raw);
  if (!parsed.success || !storable(raw)) {
    // Who may not start runs here learns that, not what was wrong with the input.
    await authorize(ctx, organizationId, 'run.start', 'Agent');
    parseInput(StartRun, raw);
  }
  const input = parsed.data!;
  const idempotencyKey = extra.idempotencyKey ?? input.idempotencyKey ?? null;
  if (idempotencyKey) {
    const existing = await ctx.prisma.agentRun.findUnique({
      where: { organizationId_idempotencyKey: { organizationId, idempotencyKey } },
    });
    if (existing) {
      await authorize(ctx, organizationId, 'run.start', 'Agent');
      return sameStart(existing, agentId, input.input);
    }
  }
  // Charged only when a run is created, so a replayed idempotent start never trips the limit: in the
  // statement when the counters are in PostgreSQL; in memory, counted here and given back if not.
  const counter = ctx.limits.sqlCounter('runsOrg', organizationId);
  if (!counter) {
    // As in hub_start_run, the role first: who may not start runs here neither holds a point of the
    // organization's budget while refused nor learns that the budget is spent.
    await authorize(ctx, organizationId, 'run.start', 'Agent');
    await ctx.limits.consume('runsOrg', organizationId);
  }
  const charged = !counter;

  const now = new Date();
  const run: AgentRun = {
    ...RUN_DEFAULTS,
    id: randomUUID(),
    organizationId,
    projectId,
    agentId,
    createdById: viewer.userId,
    input: input.input,
    idempotencyKey,
    parentRunId: extra.parentRunId ?? null,
    lastSeq: 1,
    createdAt: now,
    queuedAt: now,
  };
  // The project's status notification rides along in the same statement on PostgreSQL; the run is
  // claimed by a free worker of this process or, in the same transaction, queued: see Orchestrator.start.
  const queued = statusAnnouncement(run.projectId, run.id, 'QUEUED');
  // A claimed run is stored RUNNING, with its RUNNING event, by the same statement.
  const running = statusAnnouncement(run.projectId, run.id, 'RUNNING');
  let published = async () => {};
  let created: boolean;
  try {
    created = await ctx.orchestrator.start(
      { runId: run.id, organizationId },
      {
        agentId,
        input: run.input,
        async insert(query, claim) {
          const p = new SqlParams();
          const args = [
            `${p.add(run.id)}::uuid`,
            `${p.add(organizationId)}::uuid`,
            `${p.add(projectId)}::uuid`,
            `${p.add(agentId)}::uuid`,
            `${p.add(viewer.userId)}::uuid`,
            `${p.add(STARTERS)}::text[]`,
            p.add(run.input),
            p.add(run.idempotencyKey),
            `${p.add(run.parentRunId)}::uuid`,
            `${p.add(utcWall(now))}::timestamp(3)`,
            p.add(counter?.key ?? null),
            `${p.add(counter?.points ?? null)}::int`,
            `${p.add(counter?.durationMs ?? null)}::bigint`,
            `${p.add(now.getTime())}::bigint`,
            p.add(claim?.workerId ?? null),
            `${p.add(claim?.perOrgCap ?? null)}::int`,
            `${p.add(claim?.leaseMs ?? null)}::int`,
          ];
          const notes = statementNotifications(ctx.bus, claim ? [queued, running] : [queued], p);
          // The notifications go out only when a run was created (a taken idempotency key creates nothing).
          const [row] = await query<{ start: (StartOutcome | { outcome: 'exists' }) & { role: Role } }>(
            `SELECT s.start, CASE WHEN s.start->>'outcome' = 'exists' THEN 0 ELSE ${notes.sql} END FROM (SELECT hub_start_run(${args.join(', ')}) AS start) s`,
            p.values,
          );
          const { role, ...outcome } = row!.start;
          ctx.knowRole(organizationId, role);
          published = notes.publishAfter;
          if (outcome.outcome === 'claimed' && claim) {
            Object.assign(run, { status: 'RUNNING', attempts: 1, lastSeq: 2, startedAt: now, leaseOwner: claim.workerId, leaseExpiresAt: new Date(now.getTime() + claim.leaseMs) });
          }
          return outcome.outcome === 'exists' ? null : (outcome as StartOutcome);
        },
        committed: () => published(),
      },
    );
  } catch (err) {
    if (charged) await ctx.limits.refund('runsOrg', organizationId);
    const code = (err as { code?: unknown } | null)?.code;
    const refusal = typeof code === 'string' ? START_REFUSALS[code as keyof typeof START_REFUSALS] : undefined;
    if (!refusal) throw err;
    if (refusal === 'not found') throw new NotFoundError('Agent');
    if (refusal === 'archived') throw new ValidationError([{ path: ['agentId'], message: 'This agent is archived' }]);
    if (refusal === 'project archived') throw new ValidationError([{ path: ['agentId'], message: ARCHIVED_PROJECT.run }]);
    if (refusal === 'rate limited') throw RateLimits.refused(Number((err as { detail?: unknown }).detail) || 0);
    // A role the permission table does not let start runs: refused, with the denial audited.
    const role = String((err as { detail?: unknown }).detail) as Role;
    ctx.knowRole(organizationId, role);
    await authorizeRole(ctx, organizationId, role, 'run.start', 'Agent');
    throw err;
  }
  if (!created) {
    if (charged) await ctx.limits.refund('runsOrg', organizationId);
    // Two concurrent starts with one key: the loser returns the winner's run.
    const winner = await ctx.prisma.agentRun.findUniqueOrThrow({
      where: { organizationId_idempotencyKey: { organizationId, idempotencyKey: idempotencyKey! } },
    });
    return sameStart(winner, agentId, input.input);
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
  usageEstimated: false,
  costMicros: 0n,
  attempts: 0,
  handovers: 0,
  leaseOwner: null,
  leaseExpiresAt: null,
  cancelRequested: false,
  cancelledById: null,
  startedAt: null,
  firstTokenAt: null,
  finishedAt: null,
  workflowRunId: null,
  workflowStepIndex: null,
};

/**
 * Cancels a queued run at once; asks the worker of a running one to stop (it records what was produced). The
 * cancel that changes the run (it ends a queued one, or is the first to ask a running one to stop) writes one
 * `run.cancelled` audit row with that change; a repeated cancel, or one of a run that has ended, writes none.
 */
export async function cancelRun(ctx: Context, runId: string) {
  const run = await loadRun(ctx, runId);
  await authorize(ctx, run.organizationId, 'run.cancel', 'Run');
  if (TERMINAL.includes(run.status)) return run;
  const viewerId = ctx.viewer!.userId;
  const now = new Date();
  // Only the cancel that changes the run is audited, in its transaction: the agent's name is read then.
  const auditCancel = async (query: SqlQuery, status: RunStatus) => {
    const [agent] = await query<{ name: string }>(`SELECT name FROM "Agent" WHERE id = $1::uuid`, [run.agentId]);
    await auditWithin(query, {
      organizationId: run.organizationId,
      actorId: viewerId,
      action: 'run.cancelled',
      targetType: 'Run',
      targetId: run.id,
      metadata: { runId: run.id, agentId: run.agentId, agentName: agent?.name, status },
      ip: ctx.ip,
    });
  };
  const writer = new RunEventWriter(ctx.events, run.id, run.lastSeq);
  let publish = async () => {};
  const fromQueue = await ctx.db.transaction(async (query) => {
    const done = await writer.finishWithin(
      query,
      'STATUS',
      { status: 'CANCELLED', error: 'Cancelled by a user', errorCode: 'CANCELLED' },
      (p, seq) => `UPDATE "AgentRun"
          SET status = 'CANCELLED', "cancelRequested" = true, "cancelledById" = ${p.add(viewerId)}::uuid, "finishedAt" = ${p.add(utcWall(now))}::timestamp(3),
              error = 'Cancelled by a user', "errorCode" = 'CANCELLED', "lastSeq" = ${p.add(seq)}
          WHERE id = ${p.add(run.id)}::uuid AND status = 'QUEUED' AND "lastSeq" = ${p.add(run.lastSeq)}
          RETURNING id`,
      [statusAnnouncement(run.projectId, run.id, 'CANCELLED')],
    );
    if (done.applied) await auditCancel(query, 'QUEUED');
    publish = done.publish;
    return done.applied;
  });
  if (fromQueue) await publish();
  else {
    // Its worker has CANCEL_GRACE_MS to end it; should that worker be dead, the recovery sweep ends it then.
    const graceOver = utcWall(new Date(now.getTime() + CANCEL_GRACE_MS));
    const asked = await ctx.db.transaction(async (query) => {
      // Under the run's row lock: of cancels at once, the first to ask is the one who cancelled it (and audited).
      const [row] = await query<{ status: RunStatus; cancelledById: string | null }>(
        `SELECT status, "cancelledById" FROM "AgentRun" WHERE id = $1::uuid FOR NO KEY UPDATE`,
        [run.id],
      );
      if (!row || TERMINAL.includes(row.status)) return false;
      await query(
        `UPDATE "AgentRun" SET "cancelRequested" = true, "cancelledById" = COALESCE("cancelledById", $2::uuid),
            "leaseExpiresAt" = CASE WHEN status = 'RUNNING' THEN least("leaseExpiresAt", $3::timestamp(3)) ELSE "leaseExpiresAt" END
          WHERE id = $1::uuid`,
        [run.id, viewerId, graceOver],
      );
      if (row.cancelledById === null) await auditCancel(query, row.status);
      return true;
    });
    if (asked) await ctx.orchestrator.requestCancel(run.id);
  }
  return ctx.prisma.agentRun.findUniqueOrThrow({ where: { id: run.id } });
}

/**
 * The idempotency key of a run's retry. Callers' keys are trimmed, so one that starts with a space is
 * never theirs: no startRun can take it, nor be taken for the retry.
 */
export const RETRY_KEY_PREFIX = ' retry of ';
const retryKey = (runId: string) => `${RETRY_KEY_PREFIX}${runId}`;

/**
 * Starts a new run of the same agent with the same input, linked to the original. A run is retried once:
 * asking again (a double click, a request repeated after its answer got lost, two at once) returns that
 * retry instead of paying for another; to try again after it, retry the retry.
 */
export async function retryRun(ctx: Context, runId: string) {
  const run = await loadRun(ctx, runId);
  await authorize(ctx, run.organizationId, 'run.retry', 'Run');
  if (!TERMINAL.includes(run.status)) throw new ValidationError([{ path: ['id'], message: 'Only a finished run can be retried' }]);
  try {
    return await startRun(ctx, run.agentId, { input: run.input }, { parentRunId: run.id, idempotencyKey: retryKey(run.id) });
  } catch (err) {
    // startRun's refusal names its own input's agentId; a retry's input is only the run's id.
    if (err instanceof ValidationError && err.issues.some((i) => i.path[0] === 'agentId')) {
      throw new ValidationError(err.issues.map((i) => (i.path[0] === 'agentId' ? { ...i, path: ['id'] } : i)));
    }
    throw err;
  }
}
