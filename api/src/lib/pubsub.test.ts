import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresDatabase, getTestDatabase, usingPostgres } from '../../test/db.js';
import type { Database } from './db.js';
import { createLogger } from './logger.js';
import { createPgBus, NOTIFY_CHANNEL, type EventBus } from './pubsub.js';

// Two buses on one database are two processes.
describe.runIf(usingPostgres())('the PostgreSQL event bus', () => {
  let db: Database;
  let a: EventBus;
  let b: EventBus;
  const logger = createLogger('silent');

  beforeAll(async () => {
    db = await getTestDatabase();
    [a, b] = await Promise.all([createPgBus(db.url!, db.pool!, logger), createPgBus(db.url!, db.pool!, logger)]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  /** Collects what a bus delivers on `channel`. */
  async function listen(bus: EventBus, channel: string) {
    const got: unknown[] = [];
    await bus.subscribe(channel, (p) => p !== null && got.push(p));
    return got;
  }
  const settle = () => new Promise((r) => setTimeout(r, 150));

  it("delivers a message once in the sending process and once in every other, whoever's statement sent it", async () => {
    const inA = await listen(a, 'bus-test');
    const inB = await listen(b, 'bus-test');
    await a.publish('bus-test', { n: 1 });
    // Two senders are not ordered with each other: wait until B has A's message before B sends its own.
    for (let i = 0; i < 100 && inB.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    // A statement's own notification (encode), delivered locally by its sender after the commit.
    await db.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, b.encode!('bus-test', { n: 2 })]);
    b.deliverLocally!('bus-test', { n: 2 });
    await settle();
    expect(inA).toEqual([{ n: 1 }, { n: 2 }]);
    expect(inB).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it("keeps one process's messages in the order they were published, here and elsewhere, even sent at once", async () => {
    const inA = await listen(a, 'bus-order');
    const inB = await listen(b, 'bus-order');
    const sent = Array.from({ length: 20 }, (_, n) => ({ n }));
    await Promise.all(sent.map((m) => a.publish('bus-order', m)));
    for (let i = 0; i < 100 && inB.length < sent.length; i++) await new Promise((r) => setTimeout(r, 10));
    expect(inA).toEqual(sent);
    expect(inB).toEqual(sent);
  });

  it('reads a message of the earlier format (sender id last), as a process of the previous release sends it during an upgrade', async () => {
    const inA = await listen(a, 'bus-old');
    await db.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, JSON.stringify({ c: 'bus-old', p: { n: 3 }, o: 'an-older-process' })]);
    await settle();
    expect(inA).toEqual([{ n: 3 }]);
    // And what this release sends is one JSON object with the same keys, which that release reads.
    expect(JSON.parse(a.encode!('bus-old', { n: 4 }))).toMatchObject({ c: 'bus-old', p: { n: 4 }, o: expect.any(String) });
  });
});

describe.runIf(usingPostgres())('the PostgreSQL event bus when the database is out of reach', () => {
  it('keeps trying to listen again until the database is back, then says what may have been missed and delivers again', async () => {
    // A database of its own, closed to every connection for a while: a restart that takes longer than a moment.
    const name = `hub_bus_outage_${process.env.VITEST_POOL_ID ?? '0'}`;
    const url = await createPostgresDatabase(name);
    const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await admin.connect();
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => {});
    const bus = await createPgBus(url, pool, createLogger('silent'));
    try {
      const got: unknown[] = [];
      await bus.subscribe('outage', (p) => got.push(p));
      await admin.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS false`);
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, [name]);
      await new Promise((r) => setTimeout(r, 1_500));
      await admin.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`);

      // Another process's message, sent once the database is back, reaches this one.
      const other = new pg.Client({ connectionString: url });
      await other.connect();
      try {
        const message = JSON.stringify({ o: 'another-process', c: 'outage', p: { n: 1 } });
        for (let i = 0; i < 100 && !got.some((p) => p !== null); i++) {
          await other.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, message]);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        await other.end();
      }
      expect(got[0]).toBeNull(); // the reconnect: re-read what was missed
      expect(got).toContainEqual({ n: 1 });
    } finally {
      await bus.close();
      await pool.end();
      await admin.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`);
      await admin.end();
    }
  }, 30_000);
});
