import type { Prisma } from '../_generated/prisma/client.js';
import type { RunStatus } from '../_generated/prisma/enums.js';
import type { PrismaClient } from '../lib/db.js';
import type { Logger } from '../lib/logger.js';
import type { EventBus } from '../lib/pubsub.js';
import {
  executeCompletion,
  ProviderError,
  type AttemptInfo,
  type AttemptOutcome,
  type ChainEntry,
  type CircuitBreaker,
  type ProviderId,
  type ProviderRegistry,
  type RetryPolicy,
} from '../providers/index.js';
import { projectChannel, RunEventWriter } from './events.js';
import type { JobOutcome } from './queue.js';

/** A worker renews its lease every third of it; a lease that lapses means the worker is gone. */
export const DEFAULT_LEASE_MS = 30_000;
export const cancelChannel = (runId: string) => `cancel:${runId}`;

/** Budget admission for each provider attempt (see modules/budgets). Throwing RunBlockedError blocks the run. */
export interface AttemptBudget {
  /** Holds the attempt's worst-case cost; returns an opaque handle for settle. */
  reserve(run: RunContext, attempt: AttemptInfo): Promise<unknown>;
  /** Records the attempt in the usage ledger and settles its hold to the actual cost. */
  settle(handle: unknown, run: RunContext, attempt: AttemptInfo, outcome: AttemptOutcome): Promise<void>;
  /** Keeps a live run's holds alive (called with the lease heartbeat). */
  extend(runId: string): Promise<void>;
  /** Frees holds of runs whose worker died, or that expired. */
  releaseHolds(where: { runId?: string; expiredBefore?: Date }): Promise<number>;
}

/** Thrown by an AttemptBudget to end a run as BLOCKED rather than FAILED. */
export class RunBlockedError extends Error {
  constructor(
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'RunBlockedError';
  }
}

export interface RunContext {
  runId: string;
  organizationId: string;
  projectId: string;
  agentId: string;
}

export interface ExecutorDeps {
  prisma: PrismaClient;
  bus: EventBus;
  logger: Logger;
  providers: ProviderRegistry;
  breaker: CircuitBreaker;
  retry: RetryPolicy;
  budget: AttemptBudget;
  workerId: string;
  /** Most RUNNING runs one organization may have, across every process. */
  perOrgCap: number;
  leaseMs?: number;
}

/**
 * QUEUED → RUNNING under a per-organization advisory lock, so N processes together never exceed the
 * organization's cap (each process's queue also caps itself; this is the cross-process guarantee).
 */
async function claimRun(prisma: PrismaClient, runId: string, workerId: string, perOrgCap: number, leaseMs: number, now: Date) {
  return prisma.$transaction(async (tx) => {
    const run = await tx.agentRun.findUnique({ where: { id: runId }, select: { organizationId: true, status: true } });
    if (!run || run.status !== 'QUEUED') return 'gone' as const;
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${run.organizationId}, 0))`;
    const running = await tx.agentRun.count({ where: { organizationId: run.organizationId, status: 'RUNNING' } });
    if (running >= perOrgCap) return 'busy' as const;
    const claimed = await tx.agentRun.updateMany({
      where: { id: runId, status: 'QUEUED' },
      data: { status: 'RUNNING', leaseOwner: workerId, leaseExpiresAt: new Date(now.getTime() + leaseMs), startedAt: now, attempts: { increment: 1 } },
    });
    return claimed.count === 1 ? ('claimed' as const) : ('gone' as const);
  });
}

export function parseChain(provider: ProviderId, model: string, fallback: Prisma.JsonValue): ChainEntry[] {
  const rest = Array.isArray(fallback)
    ? fallback.flatMap((f) =>
        f && typeof f === 'object' && 'provider' in f && 'model' in f ? [{ provider: f.provider as ProviderId, model: String(f.model) }] : [],
      )
    : [];
  return [{ provider, model }, ...rest];
}

/** Announces a status change to dashboards watching the project. */
export async function announceStatus(bus: EventBus, projectId: string, runId: string, status: RunStatus) {
  await bus.publish(projectChannel(projectId), { runId, status });
}

/**
 * Runs one queued run to its end. Only the worker holding the run's lease writes to it; every final
 * update is conditional on still holding it, so a run recovered from a dead worker is never finished twice.
 * Returns 'busy' when the organization is at its cap, 'done' otherwise (also when the run was not
 * claimable: already taken, cancelled or finished).
 */
export async function executeRun(deps: ExecutorDeps, runId: string): Promise<JobOutcome> {
  const { prisma, bus, logger, workerId } = deps;
  const now = new Date();
  const leaseMs = deps.leaseMs ?? DEFAULT_LEASE_MS;
  const claim = await claimRun(prisma, runId, workerId, deps.perOrgCap, leaseMs, now);
  if (claim !== 'claimed') return claim === 'busy' ? 'busy' : 'done';
  const run = await prisma.agentRun.findUniqueOrThrow({ where: { id: runId }, include: { agent: true } });
  const rc: RunContext = { runId, organizationId: run.organizationId, projectId: run.projectId, agentId: run.agentId };
  const writer = new RunEventWriter(prisma, bus, runId, run.lastSeq);
  writer.append('STATUS', { status: 'RUNNING', attempt: run.attempts, worker: workerId });
  await announceStatus(bus, run.projectId, runId, 'RUNNING');

  const abort = new AbortController();
  const unsubscribeCancel = await bus.subscribe(cancelChannel(runId), () => abort.abort());
  const heartbeat = setInterval(() => {
    Promise.all([
      prisma.agentRun.updateMany({ where: { id: runId, leaseOwner: workerId }, data: { leaseExpiresAt: new Date(Date.now() + leaseMs) } }),
      deps.budget.extend(runId),
    ]).catch((err) => logger.warn({ err, runId }, 'lease renewal failed'));
  }, leaseMs / 3);
  heartbeat.unref();
  // Re-read after subscribing: a cancel that raced the claim is seen either here or on the bus.
  const { cancelRequested } = await prisma.agentRun.findUniqueOrThrow({ where: { id: runId }, select: { cancelRequested: true } });
  if (cancelRequested) abort.abort();

  let output = '';
  let firstTokenAt: Date | null = null;
  let final: { status: RunStatus; error?: string; errorCode?: string; data?: Prisma.AgentRunUpdateManyMutationInput } = { status: 'FAILED' };
  const holds = new Map<number, unknown>();
  try {
    const result = await executeCompletion({
      chain: parseChain(run.agent.provider, run.agent.model, run.agent.fallbackChain),
      request: {
        system: run.agent.systemPrompt || undefined,
        messages: [{ role: 'user', content: run.input }],
        temperature: run.agent.temperature ?? undefined,
        maxOutputTokens: run.agent.maxOutputTokens,
        signal: abort.signal,
      },
      registry: deps.providers,
      retry: deps.retry,
      breaker: deps.breaker,
      onAttemptStart: async (attempt) => {
        holds.set(attempt.number, await deps.budget.reserve(rc, attempt));
      },
      onAttemptEnd: async (attempt, outcome) => {
        await deps.budget.settle(holds.get(attempt.number) ?? null, rc, attempt, outcome);
        if (outcome.error && outcome.status === 'failed') {
          writer.append('ERROR', { message: outcome.error.message, kind: outcome.error.kind, provider: attempt.provider, model: attempt.model, attempt: attempt.number });
        }
      },
      onDelta: (text) => {
        if (!firstTokenAt) {
          firstTokenAt = new Date();
        }
        output += text;
        writer.append('TOKEN', { text });
      },
    });
    writer.append('USAGE', {
      provider: result.provider,
      model: result.model,
      inputTokens: result.usage.inputTokens,
      cachedInputTokens: result.usage.cachedInputTokens,
      outputTokens: result.usage.outputTokens,
      costMicros: String(result.costMicros ?? 0n),
      attempts: result.attempts.filter((a) => a.number !== null).length,
    });
    final = {
      status: 'SUCCEEDED',
      data: {
        output: result.text,
        provider: result.provider,
        model: result.model,
        inputTokens: result.usage.inputTokens,
        cachedInputTokens: result.usage.cachedInputTokens,
        outputTokens: result.usage.outputTokens,
        costMicros: await totalCost(prisma, runId),
      },
    };
  } catch (err) {
    if (err instanceof RunBlockedError) {
      final = {
        status: 'BLOCKED',
        error: err.message,
        errorCode: 'BUDGET_EXCEEDED',
        data: { output, costMicros: await totalCost(prisma, runId), errorDetails: err.details as Prisma.InputJsonValue },
      };
      writer.append('ERROR', { message: err.message, code: 'BUDGET_EXCEEDED', ...err.details });
    } else if (abort.signal.aborted || (err instanceof ProviderError && err.kind === 'aborted')) {
      final = { status: 'CANCELLED', error: 'Cancelled by a user', errorCode: 'CANCELLED', data: { output, costMicros: await totalCost(prisma, runId) } };
    } else if (err instanceof ProviderError) {
      final = { status: 'FAILED', error: err.message, errorCode: `PROVIDER_${err.kind.toUpperCase()}`, data: { output, costMicros: await totalCost(prisma, runId) } };
    } else {
      logger.error({ err, runId }, 'run crashed');
      final = { status: 'FAILED', error: 'Internal error while running the agent', errorCode: 'INTERNAL', data: { output } };
    }
  } finally {
    clearInterval(heartbeat);
    await unsubscribeCancel();
  }

  const finished = await writer.finish(
    'STATUS',
    { status: final.status, ...(final.error ? { error: final.error, errorCode: final.errorCode } : {}) },
    async (tx, seq) =>
      (
        await tx.agentRun.updateMany({
          where: { id: runId, leaseOwner: workerId, status: 'RUNNING' },
          data: {
            ...final.data,
            status: final.status,
            error: final.error ?? null,
            errorCode: final.errorCode ?? null,
            firstTokenAt,
            finishedAt: new Date(),
            leaseOwner: null,
            leaseExpiresAt: null,
            lastSeq: seq,
          },
        })
      ).count === 1,
  );
  if (finished) await announceStatus(bus, run.projectId, runId, final.status);
  else logger.warn({ runId }, 'lease lost before the run finished; another worker owns it now');
  return 'done';
}

async function totalCost(prisma: PrismaClient, runId: string): Promise<bigint> {
  const agg = await prisma.usageRecord.aggregate({ where: { runId }, _sum: { costMicros: true } });
  return agg._sum.costMicros ?? 0n;
}
