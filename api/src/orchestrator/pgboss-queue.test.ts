import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase, usingPostgres } from '../../test/db.js';
import type { Database } from '../lib/db.js';
import { createLogger } from '../lib/logger.js';
import { createPgBus, type EventBus } from '../lib/pubsub.js';
import { PgBossRunQueue } from './pgboss-queue.js';
import type { RunJob, SlotHandle } from './queue.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.runIf(usingPostgres())('the pg-boss run queue', () => {
  const logger = createLogger('silent');
  let db: Database;
  let bus: EventBus;

  beforeAll(async () => {
    db = await getTestDatabase();
    bus = await createPgBus(db.url!, db.pool!, logger);
    // The files this worker ran before share its database: jobs their runs left in the queue are not this file's.
    await db.pool!.query(`DO $$ BEGIN IF to_regclass('pgboss.job') IS NOT NULL THEN DELETE FROM pgboss.job WHERE name = 'agent-runs'; END IF; END $$`);
  });
  afterAll(async () => {
    await bus.close();
  });

  it('never runs more jobs at once than its concurrency, even when a run claims a slot while a fetch is on its way', async () => {
    const queue = await PgBossRunQueue.create(db.url!, bus, { concurrency: 2, perOrg: 2 }, logger);
    const org = randomUUID();
    let running = 0;
    let most = 0;
    const handled: string[] = [];
    let finish!: () => void;
    const gate = new Promise<void>((resolve) => (finish = resolve));
    const handler = async (job: RunJob) => {
      handled.push(job.runId);
      running++;
      most = Math.max(most, running);
      await gate;
      running--;
      return 'done' as const;
    };
    try {
      for (let i = 0; i < 2; i++) await queue.enqueue({ runId: randomUUID(), organizationId: org });
      // start() begins a fetch for its two free slots; while it is on its way, two startRun calls of this
      // process take both slots (Orchestrator.start's fast path).
      await queue.start(handler);
      const slots: SlotHandle[] = [];
      for (let i = 0; i < 2; i++) {
        const slot = queue.acquire();
        if (slot) {
          slots.push(slot);
          running++;
          most = Math.max(most, running);
        }
      }
      expect(slots).toHaveLength(2);
      for (const slot of slots) slot(gate.then(() => void running--));
      await sleep(1_000);
      // Two runs at once at most: the fetched jobs wait for a free slot.
      expect(most).toBeLessThanOrEqual(2);
      finish();
      // And they still run, once the slots are free.
      for (let i = 0; i < 200 && handled.length < 2; i++) await sleep(25);
      expect(handled).toHaveLength(2);
      expect(most).toBeLessThanOrEqual(2);
    } finally {
      finish();
      await queue.stop();
    }
  }, 30_000);

  it('gives a job it fetched while stopping back to the queue, for another worker to run at once', async () => {
    const org = randomUUID();
    const runId = randomUUID();
    const stopping = await PgBossRunQueue.create(db.url!, bus, { concurrency: 2, perOrg: 2 }, logger);
    const seen: string[] = [];
    await stopping.enqueue({ runId, organizationId: org });
    // A fetch is on its way (start, a wake-up or the 2-second timer) when the worker is told to stop.
    await stopping.start(async (job) => {
      seen.push(job.runId);
      return 'done';
    });
    await stopping.stop();
    expect(seen).toEqual([]);

    const other = await PgBossRunQueue.create(db.url!, bus, { concurrency: 2, perOrg: 2 }, logger);
    try {
      await other.start(async (job) => {
        seen.push(job.runId);
        return 'done';
      });
      for (let i = 0; i < 200 && seen.length === 0; i++) await sleep(25);
      expect(seen).toEqual([runId]);
    } finally {
      await other.stop();
    }
  }, 30_000);
});
