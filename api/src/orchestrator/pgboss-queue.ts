import PgBoss from 'pg-boss';
import type { SqlQuery } from '../lib/db.js';
import { utcWall } from '../lib/sql.js';
import type { Logger } from '../lib/logger.js';
import { NOTIFY_CHANNEL, type EventBus } from '../lib/pubsub.js';
import { slotHandle, type JobOutcome, type QueueLimits, type RunJob, type RunQueue, type SlotHandle } from './queue.js';

const QUEUE = 'agent-runs';
/** Sent on every enqueue; the bus does not echo a process's own messages, and the sender looks for work itself. */
const WAKE = 'queue:wake';
/** When an organization is at its cap across processes, look again after this long. */
const BUSY_RETRY_SECONDS = 1;

/**
 * The run queue on PostgreSQL: pg-boss stores, locks and hands out jobs (SKIP LOCKED, retries, expiry)
 * across any number of processes. One dispatcher per process fetches as many jobs as it has free slots:
 * on every enqueue anywhere (a wake-up sent over the event bus, so a run starts within milliseconds), when
 * a slot frees up, and every two seconds as a safety net. Wake-ups arriving during a fetch coalesce.
 */
export class PgBossRunQueue implements RunQueue {
  readonly durable = true;
  private handler: ((job: RunJob) => Promise<JobOutcome>) | null = null;
  private unsubscribeWake: (() => Promise<void>) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private active = 0;
  private fetching: Promise<void> | null = null;
  private again = false;
  private readonly inFlight = new Set<Promise<void>>();

  private constructor(
    private readonly boss: PgBoss,
    private readonly bus: EventBus,
    private readonly limits: QueueLimits,
    private readonly logger: Logger,
  ) {}

  static async create(connectionString: string, bus: EventBus, limits: QueueLimits, logger: Logger) {
    const boss = new PgBoss({ connectionString, schema: 'pgboss', max: 4, application_name: 'hub-queue' });
    boss.on('error', (err) => logger.error({ err }, 'pg-boss error'));
    await boss.start();
    if (!(await boss.getQueue(QUEUE))) {
      // Jobs a dead process fetched but never claimed expire and are retried, and the recovery sweep gives
      // their runs a new job sooner (see stranded); claiming is idempotent.
      await boss.createQueue(QUEUE, { name: QUEUE, retryLimit: 5, retryDelay: 1, expireInSeconds: 15 * 60 }).catch(async (err) => {
        if (!(await boss.getQueue(QUEUE))) throw err;
      });
    }
    return new PgBossRunQueue(boss, bus, limits, logger);
  }

  async enqueue(job: RunJob, within?: SqlQuery) {
    if (!within || !this.bus.encode) {
      await this.boss.send(QUEUE, job, within ? { db: { executeSql: async (text, values) => ({ rows: await within(text, values) }) } } : {});
      await this.bus.publish(WAKE, {});
      return;
    }
    // One round trip: pg-boss's own INSERT … RETURNING, plus the wake-up for every other process, which
    // PostgreSQL delivers only when the caller's transaction commits.
    const notice = this.bus.encode(WAKE, {});
    await this.boss.send(QUEUE, job, {
      db: {
        executeSql: async (text: string, values: unknown[] = []) => ({
          rows: await within(`WITH job AS (${text}) SELECT job.*, pg_notify($${values.length + 1}, $${values.length + 2}) FROM job`, [
            ...values,
            NOTIFY_CHANNEL,
            notice,
          ]),
        }),
      },
    });
  }

  async stranded(query: SqlQuery, before: Date): Promise<RunJob[]> {
    // One snapshot for both tables: a run and its job change state in separate transactions, but a QUEUED
    // run always has a job created, retried or active (the job of a claim, a hand-over or a retry is written
    // before the one it replaces is completed, or with the run's own change). A job stays active while its
    // run executes, but that run is RUNNING: a QUEUED run's active job fetched before `before` was fetched
    // by a process that died (or stalled) before its claim.
    return query<RunJob>(
      `SELECT r.id::text AS "runId", r."organizationId"::text AS "organizationId"
         FROM "AgentRun" r
        WHERE r.status = 'QUEUED' AND r."queuedAt" < $1::timestamp(3)
          AND NOT EXISTS (
            SELECT 1 FROM pgboss.job j
             WHERE j.name = $2 AND j.data->>'runId' = r.id::text
               AND (j.state IN ('created', 'retry') OR (j.state = 'active' AND j.started_on >= $3::timestamptz)))
        ORDER BY r."queuedAt"
        LIMIT 100`,
      [utcWall(before), QUEUE, before.toISOString()],
    );
  }

  poke() {
    this.pump();
  }

  async start(handler: (job: RunJob) => Promise<JobOutcome>) {
    this.handler = handler;
    this.unsubscribeWake = await this.bus.subscribe(WAKE, () => this.pump());
    this.timer = setInterval(() => this.pump(), 2_000);
    this.timer.unref();
    this.pump();
  }

  private pump() {
    if (!this.handler) return;
    if (this.fetching) {
      this.again = true;
      return;
    }
    const free = this.limits.concurrency - this.active;
    if (free <= 0) return;
    this.fetching = this.boss
      .fetch<RunJob>(QUEUE, { batchSize: free })
      .then(async (jobs) => {
        // Slots taken while the fetch was on its way (runs claimed as they were created), or a stop meanwhile:
        // what does not fit goes back to the queue at once, for this or another process to run.
        const over = jobs.filter((job) => {
          if (!this.handler || this.active >= this.limits.concurrency) return true;
          this.run(job);
          return false;
        });
        await Promise.all(
          over.map(async (job) => {
            await this.enqueue(job.data);
            await this.boss.complete(QUEUE, job.id);
          }),
        );
      })
      .catch((err) => this.logger.error({ err }, 'fetching runs from the queue failed'))
      .finally(() => {
        this.fetching = null;
        if (this.again) {
          this.again = false;
          this.pump();
        }
      });
  }

  acquire(): SlotHandle | null {
    if (!this.handler || this.active >= this.limits.concurrency) return null;
    this.active++;
    return slotHandle(this.inFlight, () => this.release());
  }

  private release() {
    this.active--;
    this.pump();
  }

  private run(job: PgBoss.Job<RunJob>) {
    this.active++;
    slotHandle(this.inFlight, () => this.release())(
      this.handler!(job.data)
        .then(async (outcome) => {
          if (outcome === 'busy') await this.boss.send(QUEUE, job.data, { startAfter: BUSY_RETRY_SECONDS });
          await this.boss.complete(QUEUE, job.id);
        })
        .catch(async (err) => {
          this.logger.error({ err, runId: job.data.runId }, 'run handler failed');
          await this.boss.fail(QUEUE, job.id).catch(() => {});
        }),
    );
  }

  async stop() {
    this.handler = null;
    if (this.timer) clearInterval(this.timer);
    await this.unsubscribeWake?.();
    await this.fetching;
    await Promise.allSettled([...this.inFlight]);
    await this.boss.stop({ graceful: true, wait: true, timeout: 10_000 }).catch((err) => this.logger.warn({ err }, 'pg-boss stop'));
  }

}
