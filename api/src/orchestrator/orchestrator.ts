import { setMaxListeners } from 'node:events';
import type { Database, SqlQuery } from '../lib/db.js';
import type { Logger } from '../lib/logger.js';
import type { EventBus } from '../lib/pubsub.js';
import { CircuitBreaker, type ProviderRegistry, type RetryPolicy } from '../providers/index.js';
import { RunEventWriter, type EventLog } from './events.js';
import { lapsedAttempts } from './lapsed-claims.js';
import type { RunJob, RunQueue } from './queue.js';
import {
  cancelChannel,
  DEFAULT_LEASE_MS,
  executeClaimed,
  executeRun,
  LeaseKeeper,
  listenForCancel,
  prepareEarly,
  requeueRun,
  statusAnnouncement,
  type AttemptBudget,
  type ClaimedRun,
  type ExecutorDeps,
} from './run-executor.js';
import { SqlParams, utcWall } from '../lib/sql.js';

/** The SQLSTATE hub_start_run raises when the organization is at its concurrency cap. */
const ORG_AT_CAP = 'HB001';

/** Who claims a run as it is created: a worker of this process with a free slot. */
export interface ClaimRequest {
  workerId: string;
  perOrgCap: number;
  leaseMs: number;
}

/** hub_start_run's answer; null when the idempotency key was taken (nothing written). */
export type StartOutcome = { outcome: 'queued' } | ({ outcome: 'claimed' } & ClaimedRun);

/** How the caller creates its run (see Orchestrator.start). */
export interface RunCreation {
  /** The run's agent and input: with them its provider request is built while the statement runs. */
  agentId: string;
  input: string;
  /** One statement: hub_start_run with `claim` (null: no claim), plus whatever rides along; returns its answer. */
  insert(query: SqlQuery, claim: ClaimRequest | null): Promise<StartOutcome | null>;
  /** Called once the run is committed, before it starts (e.g. to announce it to this process's subscribers). */
  committed(): Promise<void>;
}

/** How many agents' settings a process keeps to build their runs' first requests early. */
const REMEMBERED_AGENTS = 1_000;

/**
 * How many of a run's claims may end with their worker lost before it fails for good (WORKER_LOST). A claim
 * its worker handed back as it shut down (`handovers`) is not one.
 */
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
  /** On stop, how long runs in progress may take to finish before they are handed over (default 10 s). */
  shutdownGraceMs?: number;
}

export class Orchestrator {
  /** Its budget's holder (see AttemptBudget.holder): a dead worker's runs name the lease their holds are in. */
  readonly workerId: string;
  // Five straight failures within a minute open a provider's circuit for 30 s.
  private readonly breaker = new CircuitBreaker({ failureThreshold: 5, windowMs: 60_000, cooldownMs: 30_000 });
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private executor: ExecutorDeps | null = null;
  /** Agents as hub_start_run last returned them, newest last (a bounded LRU). */
  private readonly agents = new Map<string, ClaimedRun['agent']>();
  /** Aborted when stopping has waited its grace period: the runs still in progress go back to the queue. */
  private handover = handoverController();

  constructor(private readonly deps: OrchestratorDeps) {
    this.workerId = deps.budget.holder;
  }

  /**
   * Creates a run and hands it over, all or nothing. When a worker of this process is free, one statement
   * creates the run already claimed by it (RUNNING under its lease, the organization's cap checked as for
   * any claim), and it starts at once, with no queue round trips; a run whose worker dies is recovered
   * through its lease like any other. Otherwise (or when the organization is at its cap) the run and its
   * queue job are written in one transaction. Returns false when `insert` found the idempotency key taken.
   */
  async start(job: RunJob, creation: RunCreation): Promise<boolean> {
    const { queue, db } = this.deps;
    const slot = queue.acquire(job.organizationId);
    if (slot) {
      const cancel = await listenForCancel(this.deps.bus, this.deps.db.query, job.runId);
      const release = async () => {
        slot(null);
        await cancel.stop();
      };
      const claim = { workerId: this.workerId, perOrgCap: this.deps.perOrgCap, leaseMs: this.deps.leaseMs ?? DEFAULT_LEASE_MS };
      // While the statement runs, the provider SDK builds the run's request from the agent as last seen;
      // it is sent only once the run is claimed, the agent found unchanged and the budget hold taken.
      const known = this.agents.get(creation.agentId);
      const early = known ? prepareEarly(this.deps.providers, known, creation.input, cancel) : null;
      const outcome = await creation.insert(db.query, claim).catch(async (err: unknown) => {
        early?.attempt.discard();
        await release();
        // The organization is at its cap across processes: the run waits in the queue like any other.
        if ((err as { code?: unknown } | null)?.code === ORG_AT_CAP) return 'at cap' as const;
        throw err;
      });
      if (outcome === null || outcome === 'at cap' || outcome.outcome !== 'claimed') early?.attempt.discard();
      if (outcome === null) {
        await release(); // the idempotency key is taken: nothing was written
        return false;
      }
      if (outcome !== 'at cap') {
        if (outcome.outcome !== 'claimed') throw new Error('hub_start_run answered without claiming the run');
        this.remember(creation.agentId, outcome.agent);
        await creation.committed();
        slot(executeClaimed(this.executorDeps, outcome, cancel, early));
        // Answer the caller one event-loop turn later: the run's provider request, started above, then goes
        // out first. It is on the path to the first token and the answer is not; node:http sends a request
        // from a nextTick, which would otherwise wait for the whole response to be serialized and written.
        await new Promise((resolve) => setImmediate(resolve));
        return true;
      }
    }
    const created = await db.transaction(async (query) => {
      if ((await creation.insert(query, null)) === null) return false;
      if (queue.durable) await queue.enqueue(job, query);
      return true;
    });
    if (!created) return false;
    await creation.committed();
    if (queue.durable) queue.poke?.();
    else await queue.enqueue(job);
    return true;
  }

  private remember(agentId: string, agent: ClaimedRun['agent']) {
    this.agents.delete(agentId);
    this.agents.set(agentId, agent);
    if (this.agents.size > REMEMBERED_AGENTS) this.agents.delete(this.agents.keys().next().value!);
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
    else await this.requeueStranded();
    const every = this.deps.sweepIntervalMs ?? Math.min(5_000, (this.deps.leaseMs ?? 30_000) / 2);
    this.sweeper = setInterval(() => {
      if (this.sweeping) return;
      this.sweeping = this.recover()
        .then(() => this.requeueStranded())
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

  /**
   * A durable queue: gives a job again to every run QUEUED for over a lease that no job will deliver (see
   * RunQueue.stranded): its job failed on every retry (say, the database was out of reach while it was
   * claimed), or the process that fetched it died before claiming it (pg-boss would give it back only once
   * it expires, 15 minutes later). Claiming is conditional on the run being QUEUED, so a job too many (two
   * sweeps at once, a job that was only slow) finds the run taken and does nothing: a run never runs twice.
   */
  private async requeueStranded() {
    const { queue, db, logger } = this.deps;
    if (!queue.stranded) return;
    for (const job of await queue.stranded(db.query, new Date(Date.now() - (this.deps.leaseMs ?? DEFAULT_LEASE_MS)))) {
      logger.warn({ runId: job.runId }, 'a queued run had no job left to deliver it: queued again');
      await queue.enqueue(job);
    }
  }

  /**
   * Stops consuming. Runs in progress get `graceMs` to finish; those still running then are handed over:
   * their provider requests stop and they go back to the queue at once, to start over on another worker
   * (or on this process's next start), instead of waiting for their leases to lapse.
   */
  async stop(graceMs = this.deps.shutdownGraceMs ?? 10_000) {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    await this.sweeping;
    // Always stop the queue: even a process that never consumed holds the engine's connections.
    const stopped = this.deps.queue.stop();
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<true>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)));
    if (await Promise.race([stopped.then(() => false), graceOver])) {
      this.deps.logger.info({ worker: this.workerId }, 'handing over the runs still in progress');
      this.handover.abort();
    }
    clearTimeout(timer);
    await stopped;
    // A worker started again later hands over its own runs when it stops.
    this.handover = handoverController();
    if (this.executor) this.executor.stopping = this.handover.signal;
  }

  private get executorDeps(): ExecutorDeps {
    const { db, logger, budget } = this.deps;
    return (this.executor ??= {
      db,
      events: this.deps.events,
      bus: this.deps.bus,
      logger,
      providers: this.deps.providers,
      breaker: this.breaker,
      retry: this.deps.retry ?? { maxAttempts: 3, baseDelayMs: 250, maxDelayMs: 8_000 },
      budget,
      workerId: this.workerId,
      perOrgCap: this.deps.perOrgCap,
      leaseMs: this.deps.leaseMs,
      leases: new LeaseKeeper({ db, logger, budget, workerId: this.workerId }, this.deps.leaseMs),
      queue: this.deps.queue,
      stopping: this.handover.signal,
    });
  }

  private run(job: RunJob) {
    return executeRun(this.executorDeps, job.runId);
  }

  /**
   * Finds RUNNING runs whose lease expired (their worker died) and re-queues them, or fails them after
   * MAX_WORKER_ATTEMPTS lost workers; a run its user asked to cancel ends CANCELLED instead of starting again. Events
   * already stored are kept; a status event explains what happened. A run whose worker stored events since
   * it was read here (stalled past its lease, not dead) is left for the next sweep rather than given a seq
   * that worker just took.
   *
   * What the dead worker's attempt may have been billed and did not settle goes on the ledger (estimated,
   * see lapsedAttempts) and on the budgets in the same transaction that takes the run back, under its row's
   * lock and only while the run is still under the lapsed lease read here: two sweeps, here or in another
   * process, take a run back once, so they record its dead claim once (and a ledger row is unique per run,
   * claim and attempt besides).
   */
  async recover(now = new Date()): Promise<number> {
    const { db } = this.deps;
    const stale = await db.prisma.agentRun.findMany({
      where: { status: 'RUNNING', leaseExpiresAt: { lt: now } },
      select: {
        id: true,
        organizationId: true,
        projectId: true,
        agentId: true,
        input: true,
        attempts: true,
        handovers: true,
        lastSeq: true,
        startedAt: true,
        leaseOwner: true,
        cancelRequested: true,
      },
      take: 100,
    });
    let recovered = 0;
    for (const run of stale) {
      // Claims whose worker was lost, this one included: those handed back on shutdown do not count.
      const lost = run.attempts - run.handovers;
      const retry = !run.cancelRequested && lost < MAX_WORKER_ATTEMPTS;
      const reason = `Worker ${run.leaseOwner ?? 'unknown'} stopped responding`;
      const writer = new RunEventWriter(this.deps.events, run.id, run.lastSeq);
      // Still the lapsed lease this sweep read, and no event stored since.
      const lapsed = (p: SqlParams, at: string) =>
        `"leaseOwner" IS NOT DISTINCT FROM ${p.add(run.leaseOwner)} AND "leaseExpiresAt" < ${at} AND "lastSeq" = ${p.add(run.lastSeq)}`;
      // Read from the events up to lastSeq, which the takeover checks: no event of the claim is missed.
      const unsettled = await lapsedAttempts(db, run);
      const fence = async (query: SqlQuery) => {
        const p = new SqlParams();
        const at = `${p.add(utcWall(now))}::timestamp(3)`;
        const held = await query(`SELECT id FROM "AgentRun" WHERE id = ${p.add(run.id)}::uuid AND status = 'RUNNING' AND ${lapsed(p, at)} FOR NO KEY UPDATE`, p.values);
        if (held.length === 0) return false;
        const charged = await this.deps.budget.chargeLapsed(query, run.leaseOwner ?? '', unsettled);
        if (charged > 0n) this.deps.logger.info({ runId: run.id, costMicros: String(charged) }, 'recorded the estimated cost of a dead worker\'s attempt');
        return true;
      };
      const end = run.cancelRequested
        ? { status: 'CANCELLED' as const, error: 'Cancelled by a user', errorCode: 'CANCELLED', detail: 'Cancelled by a user' }
        : { status: 'FAILED' as const, error: `${reason}; gave up`, errorCode: 'WORKER_LOST', detail: `${reason}; gave up after losing ${lost} workers` };
      const changed = retry
        ? await requeueRun(this.deps, writer, run, `${reason}; retrying`, lapsed, { now, beforeQueued: () => this.deps.budget.releaseHolds({ runId: run.id }), fence })
        : await this.endLapsed(fence, (query) =>
            writer.finishWithin(
              query,
              'STATUS',
              { status: end.status, error: end.error, errorCode: end.errorCode },
              (p, seq) => {
                const at = `${p.add(utcWall(now))}::timestamp(3)`;
                const id = p.add(run.id);
                // Its cost is what its attempts recorded in the ledger (the dead claim's estimate, just before, included), as for a run its worker ended.
                return `UPDATE "AgentRun" SET status = ${p.add(end.status)}::"RunStatus", "finishedAt" = ${at}, error = ${p.add(end.detail)},
                          "errorCode" = ${p.add(end.errorCode)}, "leaseOwner" = NULL, "leaseExpiresAt" = NULL, "lastSeq" = ${p.add(seq)},
                          "costMicros" = (SELECT coalesce(sum(u."costMicros"), 0) FROM "UsageRecord" u WHERE u."runId" = ${id}::uuid)
                        WHERE id = ${id}::uuid AND status = 'RUNNING' AND ${lapsed(p, at)}
                        RETURNING id`;
              },
              [statusAnnouncement(run.projectId, run.id, end.status)],
            ),
          );
      if (!changed) continue;
      recovered++;
      if (!retry) await this.deps.budget.releaseHolds({ runId: run.id });
    }
    await this.deps.budget.releaseHolds({ expiredBefore: now });
    return recovered;
  }

  /** Ends a lapsed run (`finish`) in one transaction with its `fence`; its messages go out once it committed. */
  private async endLapsed(
    fence: (query: SqlQuery) => Promise<boolean>,
    finish: (query: SqlQuery) => Promise<{ applied: boolean; publish: () => Promise<void> }>,
  ): Promise<boolean> {
    const done = await this.deps.db.transaction(async (query) => ((await fence(query)) ? finish(query) : { applied: false, publish: async () => {} }));
    if (done.applied) await done.publish();
    return done.applied;
  }
}

/**
 * Every run in progress listens on the hand-over signal, so it has as many listeners as the worker has
 * runs (up to WORKER_CONCURRENCY), each removed when its run ends: not a leak, whatever Node's default
 * limit of 10 would say.
 */
function handoverController() {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}
