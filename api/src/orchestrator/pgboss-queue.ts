import PgBoss from 'pg-boss';
import type { Logger } from '../lib/logger.js';
import type { EventBus } from '../lib/pubsub.js';
import type { JobOutcome, QueueLimits, RunJob, RunQueue } from './queue.js';

const QUEUE = 'agent-runs';
const WAKE = 'queue:wake';
/** When an organization is at its cap across processes, look again after this long. */
const BUSY_RETRY_SECONDS = 1;

/**
 * The run queue on PostgreSQL: pg-boss stores, locks and hands out jobs (SKIP LOCKED, retries, expiry)
 * across any number of processes. pg-boss polls; to start a run within milliseconds rather than at the
 * next poll, every enqueue also sends a wake-up over the event bus, which pokes this process's workers.
 */
export class PgBossRunQueue implements RunQueue {
  readonly durable = true;
  private workerIds: string[] = [];
  private unsubscribeWake: (() => Promise<void>) | null = null;
  private active = 0;

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
      // Jobs a dead process fetched but never claimed expire and are retried; claiming is idempotent.
      await boss.createQueue(QUEUE, { name: QUEUE, retryLimit: 5, retryDelay: 1, expireInSeconds: 15 * 60 }).catch(async (err) => {
        if (!(await boss.getQueue(QUEUE))) throw err;
      });
    }
    return new PgBossRunQueue(boss, bus, limits, logger);
  }

  async enqueue(job: RunJob) {
    await this.boss.send(QUEUE, job);
    await this.bus.publish(WAKE, null);
  }

  async start(handler: (job: RunJob) => Promise<JobOutcome>) {
    for (let i = 0; i < this.limits.concurrency; i++) {
      const id = await this.boss.work<RunJob>(QUEUE, { batchSize: 1, pollingIntervalSeconds: 2 }, async ([job]) => {
        if (!job) return;
        this.active++;
        try {
          if ((await handler(job.data)) === 'busy') {
            await this.boss.send(QUEUE, job.data, { startAfter: BUSY_RETRY_SECONDS });
          }
        } finally {
          this.active--;
        }
      });
      this.workerIds.push(id);
    }
    this.unsubscribeWake = await this.bus.subscribe(WAKE, () => {
      for (const id of this.workerIds) this.boss.notifyWorker(id);
    });
  }

  async stop() {
    await this.unsubscribeWake?.();
    for (const id of this.workerIds) await this.boss.offWork({ id, wait: true } as never).catch(() => {});
    this.workerIds = [];
    await this.boss.stop({ graceful: true, wait: true, timeout: 10_000 }).catch((err) => this.logger.warn({ err }, 'pg-boss stop'));
  }

  stats() {
    return { waiting: 0, active: this.active };
  }
}
