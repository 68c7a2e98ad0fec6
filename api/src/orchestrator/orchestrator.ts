import { randomUUID } from 'node:crypto';
import type { Database, SqlQuery } from '../lib/db.js';
import type { Logger } from '../lib/logger.js';
import type { EventBus } from '../lib/pubsub.js';
import { CircuitBreaker, type ProviderRegistry, type RetryPolicy } from '../providers/index.js';
import { RunEventWriter, type EventLog } from './events.js';
import type { RunJob, RunQueue } from './queue.js';
import {
  cancelChannel,
  claimRun,
  DEFAULT_LEASE_MS,
  executeClaimed,
  executeRun,
  listenForCancel,
  statusAnnouncement,
  type AttemptBudget,
  type ClaimOutcome,
  type ExecutorDeps,
} from './run-executor.js';
import { utcWall } from '../lib/sql.js';

/** How many times a run is retried after its worker died before it fails for good. */
export const MAX_WORKER_ATTEMPTS = 3;

export interface OrchestratorDeps {
  db: Database;
  events: EventLog;
  bus: EventBus;
  logger: Logger;
  providers: ProviderRegistry;
  queue: RunQueue;
  retry?: RetryPolicy;
  budget: AttemptBudget;
  /** How often to look for runs whose worker stopped renewing its lease. */
  sweepIntervalMs?: number;
  perOrgCap: number;
  leaseMs?: number;
}

export class Orchestrator {
  readonly workerId = `worker-${randomUUID().slice(0, 8)}`;
  // Five straight failures within a minute open a provider's circuit for 30 s.
  private readonly breaker = new CircuitBreaker({ failureThreshold: 5, windowMs: 60_000, cooldownMs: 30_000 });
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private executor: ExecutorDeps | null = null;

  constructor(private readonly deps: OrchestratorDeps) {}

  /** Queues a run that was just created (the row is already QUEUED and committed). */
  enqueue(job: RunJob) {
    return this.deps.queue.enqueue(job);
  }

  /**
   * Hands a run over inside the transaction that creates it (`query` runs on that transaction), so a run
   * and its hand-over commit together or not at all. When a worker of this process is free, the run is
   * claimed right there (RUNNING under this worker's lease, the organization's cap checked as for any
   * claim) and starts the moment the transaction commits, with no queue round trips; a run whose worker
   * dies is recovered through its lease like any other. Otherwise it is queued.
   * Call `committed()` once the transaction has committed, `abandoned()` if it did not.
   */
  async handOverWithin(job: RunJob, query: SqlQuery): Promise<{ committed(): void; abandoned(): void }> {
    const queue = this.deps.queue;
    const slot = queue.acquire(job.organizationId);
    if (slot) {
      const cancel = await listenForCancel(this.deps.bus, job.runId);
      let claim: ClaimOutcome | null = null;
      try {
        claim = await claimRun(query, job.runId, this.workerId, this.deps.perOrgCap, this.deps.leaseMs ?? DEFAULT_LEASE_MS);
      } finally {
        if (claim?.outcome !== 'claimed') {
          slot(null);
          await cancel.stop();
        }
      }
      if (claim.outcome === 'claimed') {
        const claimed = claim;
        return {
          committed: () => slot(executeClaimed(this.executorDeps, claimed, cancel)),
          abandoned: () => {
            slot(null);
            void cancel.stop();
          },
        };
      }
      // 'busy': the organization is at its cap across processes; the run waits in the queue like any other.
    }
    if (!queue.durable) return { committed: () => void queue.enqueue(job), abandoned: () => {} };
    await queue.enqueue(job, query);
    return { committed: () => queue.poke?.(), abandoned: () => {} };
  }

  /** Asks whichever worker holds the run to stop its provider request. */
  async requestCancel(runId: string) {
    await this.deps.bus.publish(cancelChannel(runId), { runId });
  }

  /** Starts consuming runs in this process, after re-queuing what a previous process left. */
  async startWorker() {
    await this.deps.queue.start((job) => this.run(job));
    await this.recover();
    if (!this.deps.queue.durable) await this.requeueWaiting();
    const every = this.deps.sweepIntervalMs ?? Math.min(5_000, (this.deps.leaseMs ?? 30_000) / 2);
    this.sweeper = setInterval(() => {
      if (this.sweeping) return;
      this.sweeping = this.recover()
        .then(() => undefined)
        .catch((err) => this.deps.logger.error({ err }, 'recovery sweep failed'))
        .finally(() => (this.sweeping = null));
    }, every);
    this.sweeper.unref();
  }

  /** The in-process queue forgets on restart: put back every run still waiting in the database. */
  private async requeueWaiting() {
    const queued = await this.deps.db.prisma.agentRun.findMany({
      where: { status: 'QUEUED' },
      select: { id: true, organizationId: true },
      orderBy: { queuedAt: 'asc' },
    });
    for (const r of queued) await this.deps.queue.enqueue({ runId: r.id, organizationId: r.organizationId });
  }

  async stop() {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    await this.sweeping;
    // Always stop the queue: even a process that never consumed holds the engine's connections.
    await this.deps.queue.stop();
  }

  private get executorDeps(): ExecutorDeps {
    return (this.executor ??= {
      db: this.deps.db,
      events: this.deps.events,
      bus: this.deps.bus,
      logger: this.deps.logger,
      providers: this.deps.providers,
      breaker: this.breaker,
      retry: this.deps.retry ?? { maxAttempts: 3, baseDelayMs: 250, maxDelayMs: 8_000 },
      budget: this.deps.budget,
      workerId: this.workerId,
      perOrgCap: this.deps.perOrgCap,
      leaseMs: this.deps.leaseMs,
    });
  }

  private run(job: RunJob) {
    return executeRun(this.executorDeps, job.runId);
  }

  /**
   * Finds RUNNING runs whose lease expired (their worker died) and re-queues them, or fails them after
   * MAX_WORKER_ATTEMPTS. Events already stored are kept; a status event explains what happened.
   */
  async recover(now = new Date()): Promise<number> {
    const { db } = this.deps;
    const stale = await db.prisma.agentRun.findMany({
      where: { status: 'RUNNING', leaseExpiresAt: { lt: now } },
      select: { id: true, organizationId: true, projectId: true, attempts: true, lastSeq: true, leaseOwner: true },
      take: 100,
    });
    let recovered = 0;
    for (const run of stale) {
      const retry = run.attempts < MAX_WORKER_ATTEMPTS;
      const reason = `Worker ${run.leaseOwner ?? 'unknown'} stopped responding`;
      const writer = new RunEventWriter(this.deps.events, run.id, run.lastSeq);
      const changed = await writer.finish(
        'STATUS',
        retry ? { status: 'QUEUED', reason: `${reason}; retrying` } : { status: 'FAILED', error: `${reason}; gave up`, errorCode: 'WORKER_LOST' },
        (p, seq) => {
          const at = p.add(utcWall(now));
          const set = retry
            ? `status = 'QUEUED', "queuedAt" = ${at}::timestamp(3)`
            : `status = 'FAILED', "finishedAt" = ${at}::timestamp(3), error = ${p.add(`${reason}; gave up after ${run.attempts} attempts`)}, "errorCode" = 'WORKER_LOST'`;
          return `UPDATE "AgentRun" SET ${set}, "leaseOwner" = NULL, "leaseExpiresAt" = NULL, "lastSeq" = ${p.add(seq)}
                  WHERE id = ${p.add(run.id)}::uuid AND status = 'RUNNING' AND "leaseOwner" IS NOT DISTINCT FROM ${p.add(run.leaseOwner)}
                    AND "leaseExpiresAt" < ${at}::timestamp(3)
                  RETURNING id`;
        },
        [statusAnnouncement(run.projectId, run.id, retry ? 'QUEUED' : 'FAILED')],
      );
      if (!changed) continue;
      recovered++;
      await this.deps.budget.releaseHolds({ runId: run.id });
      if (retry) await this.deps.queue.enqueue({ runId: run.id, organizationId: run.organizationId });
    }
    await this.deps.budget.releaseHolds({ expiredBefore: now });
    return recovered;
  }
}
