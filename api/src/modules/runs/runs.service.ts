import { z } from 'zod';
import { Prisma } from '../../_generated/prisma/client.js';
import type { RunStatus } from '../../_generated/prisma/enums.js';
import type { Context } from '../../context.js';
import { NotFoundError, ValidationError } from '../../lib/errors.js';
import { parseInput } from '../../lib/validate.js';
import { RunEventWriter } from '../../orchestrator/events.js';
import { announceStatus } from '../../orchestrator/run-executor.js';
import { authorize, requireViewer } from '../authorize.js';
import { loadAgent } from '../agents/agents.service.js';

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
  const agent = await loadAgent(ctx, agentId);
  await authorize(ctx, agent.organizationId, 'run.start', 'Agent');
  if (agent.archivedAt) throw new ValidationError([{ path: ['agentId'], message: 'This agent is archived' }]);
  const input = parseInput(StartRun, raw);
  if (input.idempotencyKey) {
    const existing = await ctx.prisma.agentRun.findUnique({
      where: { organizationId_idempotencyKey: { organizationId: agent.organizationId, idempotencyKey: input.idempotencyKey } },
    });
    if (existing) return existing;
  }
  // Charged only when a run is actually created, so a replayed idempotent start never trips the limit.
  await ctx.limits.consume('runsOrg', agent.organizationId);
  let run;
  try {
    run = await ctx.prisma.$transaction(async (tx) => {
      const created = await tx.agentRun.create({
        data: {
          organizationId: agent.organizationId,
          projectId: agent.projectId,
          agentId: agent.id,
          createdById: ctx.viewer!.userId,
          input: input.input,
          idempotencyKey: input.idempotencyKey ?? null,
          parentRunId: extra.parentRunId ?? null,
          lastSeq: 1,
        },
      });
      await tx.runEvent.create({ data: { runId: created.id, seq: 1, type: 'STATUS', payload: { status: 'QUEUED' } } });
      return created;
    });
  } catch (err) {
    // Two concurrent starts with one key: the loser returns the winner's run.
    if (input.idempotencyKey && err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') {
      return ctx.prisma.agentRun.findUniqueOrThrow({
        where: { organizationId_idempotencyKey: { organizationId: agent.organizationId, idempotencyKey: input.idempotencyKey } },
      });
    }
    throw err;
  }
  await announceStatus(ctx.bus, run.projectId, run.id, 'QUEUED');
  await ctx.orchestrator.enqueue({ runId: run.id, organizationId: run.organizationId });
  return run;
}

/** Cancels a queued run at once; asks the worker of a running one to stop (it records what was produced). */
export async function cancelRun(ctx: Context, runId: string) {
  const run = await loadRun(ctx, runId);
  await authorize(ctx, run.organizationId, 'run.cancel', 'Run');
  if (TERMINAL.includes(run.status)) return run;
  const now = new Date();
  const writer = new RunEventWriter(ctx.prisma, ctx.bus, run.id, run.lastSeq);
  const fromQueue = await writer.finish('STATUS', { status: 'CANCELLED', error: 'Cancelled by a user', errorCode: 'CANCELLED' }, async (tx, seq) =>
    (
      await tx.agentRun.updateMany({
        where: { id: run.id, status: 'QUEUED', lastSeq: run.lastSeq },
        data: { status: 'CANCELLED', cancelRequested: true, finishedAt: now, error: 'Cancelled by a user', errorCode: 'CANCELLED', lastSeq: seq },
      })
    ).count === 1,
  );
  if (fromQueue) {
    await announceStatus(ctx.bus, run.projectId, run.id, 'CANCELLED');
  } else {
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
