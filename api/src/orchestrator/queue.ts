import type { SqlQuery } from '../lib/db.js';
import type { Logger } from '../lib/logger.js';

export interface RunJob {
  runId: string;
  organizationId: string;
}

/** 'busy': the organization is at its concurrency cap (seen across all processes); deliver again shortly. */
export type JobOutcome = 'done' | 'busy';

/**
 * The run queue. Two engines behind one interface: in-process for the embedded database (one process by
 * definition), pg-boss on PostgreSQL (any number of API and worker processes).
 */
export interface RunQueue {
  /** True when jobs survive a restart by themselves; otherwise the orchestrator re-enqueues QUEUED runs on start. */
  readonly durable: boolean;
  /**
   * Adds a job. A durable engine given `within` (a statement runner on the caller's open transaction)
   * stores the job in that transaction, so it commits or rolls back with the run it belongs to.
   */
  enqueue(job: RunJob, within?: SqlQuery): Promise<void>;
  /** Looks for work now (after a job was enqueued within a transaction that has just committed). */
  poke?(): void;
  /** Begins consuming: at most `concurrency` jobs at once in this process, at most `perOrg` per organization. */
  start(handler: (job: RunJob) => Promise<JobOutcome>): Promise<void>;
  /**
   * Takes one of this process's worker slots for a run claimed outside the queue (startRun claims the run
   * it creates when a worker here is free, skipping the queue's round trips), or null when none is free or
   * this process does not consume. Hand the slot back with the run's work (freed when it settles), or with
   * null (freed now).
   */
  acquire(organizationId: string): SlotHandle | null;
  /**
   * Durable engines: runs QUEUED since before `before` that no job of theirs will deliver: none waits (a job
   * whose every delivery failed is failed for good, say), and none was fetched since `before` (one fetched
   * earlier and still in hand was fetched by a process that died before claiming the run, which takes one
   * statement). The recovery sweep queues them again; a job too many is harmless, since only a QUEUED run can
   * be claimed.
   */
  stranded?(query: SqlQuery, before: Date): Promise<RunJob[]>;
  /** Stops taking jobs and waits for the ones in progress (claimed ones included). */
  stop(): Promise<void>;
}

export type SlotHandle = (work: Promise<unknown> | null) => void;

/** A slot handle over `release`: called once, when the work settles (tracked in `inFlight` meanwhile) or at once. */
export function slotHandle(inFlight: Set<Promise<void>>, release: () => void): SlotHandle {
  let handed = false;
  return (work) => {
    if (handed) return;
    handed = true;
    if (!work) return release();
    const p: Promise<void> = work
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        inFlight.delete(p);
        release();
      });
    inFlight.add(p);
  };
}

export interface QueueLimits {
  concurrency: number;
  perOrg: number;
}

const FIRST_RETRY_DELAY_MS = 500;
const MAX_RETRY_DELAY_MS = 30_000;

/**
 * In-process queue: one FIFO per organization, served round-robin so a busy organization cannot starve
 * the others, with a global and a per-organization cap. Durability comes from the database: on start the
 * orchestrator re-enqueues every run still QUEUED; a job whose delivery fails is delivered again later.
 */
export class LocalRunQueue implements RunQueue {
  readonly durable = false;
  private readonly byOrg = new Map<string, RunJob[]>();
  private readonly activeByOrg = new Map<string, number>();
  private readonly queued = new Set<string>();
  /** Failed deliveries in a row, per run. */
  private readonly failures = new Map<string, number>();
  private active = 0;
  private handler: ((job: RunJob) => Promise<JobOutcome>) | null = null;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly limits: QueueLimits,
    private readonly logger?: Logger,
  ) {}

  async enqueue(job: RunJob) {
    if (this.queued.has(job.runId)) return;
    this.queued.add(job.runId);
    const q = this.byOrg.get(job.organizationId);
    if (q) q.push(job);
    else this.byOrg.set(job.organizationId, [job]);
    this.pump();
  }

  async start(handler: (job: RunJob) => Promise<JobOutcome>) {
    this.handler = handler;
    this.pump();
  }

  async stop() {
    this.handler = null;
    await Promise.allSettled([...this.inFlight]);
  }

  acquire(organizationId: string): SlotHandle | null {
    if (!this.handler || this.active >= this.limits.concurrency || (this.activeByOrg.get(organizationId) ?? 0) >= this.limits.perOrg) return null;
    this.take(organizationId);
    return slotHandle(this.inFlight, () => this.release(organizationId));
  }

  private take(organizationId: string) {
    this.active++;
    this.activeByOrg.set(organizationId, (this.activeByOrg.get(organizationId) ?? 0) + 1);
  }

  private release(organizationId: string) {
    this.active--;
    this.activeByOrg.set(organizationId, this.activeByOrg.get(organizationId)! - 1);
    this.pump();
  }


  private pump() {
    if (!this.handler) return;
    while (this.active < this.limits.concurrency) {
      const job = this.next();
      if (!job) return;
      this.queued.delete(job.runId);
      this.take(job.organizationId);
      slotHandle(this.inFlight, () => this.release(job.organizationId))(
        this.handler(job).then(
          (outcome) => {
            this.failures.delete(job.runId);
            if (outcome === 'busy') setTimeout(() => void this.enqueue(job), 250).unref();
          },
          (err: unknown) => {
            // A delivery that failed (its claim's statement, say) is not the end of its run, which is still QUEUED:
            // delivered again, later each time (0.5 s, 1 s, 2 s… up to 30 s), as pg-boss retries a failed job.
            const failures = (this.failures.get(job.runId) ?? 0) + 1;
            this.failures.set(job.runId, failures);
            const retryInMs = Math.min(MAX_RETRY_DELAY_MS, FIRST_RETRY_DELAY_MS * 2 ** (failures - 1));
            this.logger?.error({ err, runId: job.runId, retryInMs }, 'run handler failed; delivering the run again later');
            setTimeout(() => void this.enqueue(job), retryInMs).unref();
          },
        ),
      );
    }
  }

  /** Round-robin: take from the first organization under its cap, then move it to the back. */
  private next(): RunJob | undefined {
    for (const [org, jobs] of this.byOrg) {
      if ((this.activeByOrg.get(org) ?? 0) >= this.limits.perOrg) continue;
      const job = jobs.shift()!;
      this.byOrg.delete(org);
      if (jobs.length > 0) this.byOrg.set(org, jobs);
      return job;
    }
    return undefined;
  }
}
