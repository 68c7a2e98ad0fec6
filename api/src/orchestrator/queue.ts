import type { SqlQuery } from '../lib/db.js';

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
  /** Stops taking jobs and waits for the ones in progress. */
  stop(): Promise<void>;
}

export interface QueueLimits {
  concurrency: number;
  perOrg: number;
}

/**
 * In-process queue: one FIFO per organization, served round-robin so a busy organization cannot starve
 * the others, with a global and a per-organization cap. Durability comes from the database: on start the
 * orchestrator re-enqueues every run still QUEUED.
 */
export class LocalRunQueue implements RunQueue {
  readonly durable = false;
  private readonly byOrg = new Map<string, RunJob[]>();
  private readonly activeByOrg = new Map<string, number>();
  private readonly queued = new Set<string>();
  private active = 0;
  private handler: ((job: RunJob) => Promise<JobOutcome>) | null = null;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly limits: QueueLimits) {}

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


  private pump() {
    if (!this.handler) return;
    while (this.active < this.limits.concurrency) {
      const job = this.next();
      if (!job) return;
      this.queued.delete(job.runId);
      this.active++;
      this.activeByOrg.set(job.organizationId, (this.activeByOrg.get(job.organizationId) ?? 0) + 1);
      const p: Promise<void> = this.handler(job)
        .then((outcome) => {
          if (outcome === 'busy') setTimeout(() => void this.enqueue(job), 250).unref();
        })
        .catch(() => {})
        .finally(() => {
          this.active--;
          this.activeByOrg.set(job.organizationId, this.activeByOrg.get(job.organizationId)! - 1);
          this.inFlight.delete(p);
          this.pump();
        });
      this.inFlight.add(p);
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
