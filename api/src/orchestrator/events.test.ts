import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase } from '../../test/db.js';
import type { Database, SqlQuery } from '../lib/db.js';
import { createLogger } from '../lib/logger.js';
import { createLocalBus, createPgBus, type EventBus } from '../lib/pubsub.js';
import { EventLog, LeaseLostError, RunEventWriter, runChannel, type RunEventHint } from './events.js';

let db: Database;
let bus: EventBus;
let org: { id: string };
let project: { id: string };
let agent: { id: string };
/** The lease the test's runs are held under (by this test, as a worker). */
const LEASE = { owner: 'w-test', attempt: 1 };

async function newRun() {
  return db.prisma.agentRun.create({
    data: { organizationId: org.id, projectId: project.id, agentId: agent.id, input: 'x', status: 'RUNNING', leaseOwner: LEASE.owner, attempts: LEASE.attempt },
    select: { id: true, lastSeq: true },
  });
}

/** The bus the product uses on this database: LISTEN/NOTIFY on PostgreSQL, in process on PGlite. */
async function onRealBus(fn: (bus: EventBus) => Promise<void>) {
  const realBus = db.kind === 'postgresql' ? await createPgBus(db.url!, db.pool!, createLogger('silent')) : bus;
  try {
    await fn(realBus);
  } finally {
    if (realBus !== bus) await realBus.close();
  }
}

/** The real statement runner, counting the statements it sends. */
function counting(query: SqlQuery) {
  const counter = { statements: 0 };
  const wrapped: SqlQuery = (text, params) => {
    counter.statements++;
    return query(text, params);
  };
  return { counter, query: wrapped };
}

beforeAll(async () => {
  db = await getTestDatabase();
  bus = createLocalBus();
  org = await db.prisma.organization.create({ data: { slug: `ev-${randomUUID().slice(0, 8)}`, name: 'Events' } });
  project = await db.prisma.project.create({ data: { organizationId: org.id, slug: 'p', name: 'P' } });
  agent = await db.prisma.agent.create({ data: { organizationId: org.id, projectId: project.id, name: 'A', provider: 'OFFLINE', model: 'offline-echo' } });
});

afterAll(async () => {
  await bus.close();
});

describe('EventLog: group commit across runs', () => {
  it('stores the batches of several runs in one statement, each run in order with its lastSeq, announced', async () => {
    const runs = await Promise.all([newRun(), newRun(), newRun()]);
    const { counter, query } = counting(db.query);
    const log = new EventLog(query, bus);
    const seen = new Map<string, number[]>();
    for (const r of runs) {
      await bus.subscribe(runChannel(r.id), (m) => {
        const hint = m as RunEventHint;
        seen.set(r.id, [...(seen.get(r.id) ?? []), ...(hint.events ?? []).map((e) => e.seq)]);
      });
    }
    const writers = runs.map((r) => new RunEventWriter(log, r.id, r.lastSeq, LEASE));
    // Appended in the same tick: one statement for all three runs.
    for (const w of writers) {
      w.append('STATUS', { status: 'RUNNING' });
      w.append('TOKEN', { text: 'a' });
      w.append('TOKEN', { text: 'b' }); // merges with the previous token
    }
    await Promise.all(writers.map((w) => w.flush()));
    expect(counter.statements).toBe(1);
    // While the next statement is in flight, later batches of every run wait and go together.
    for (const w of writers) w.append('TOKEN', { text: 'c' });
    for (const w of writers) w.append('ERROR', { message: 'late' });
    await Promise.all(writers.map((w) => w.flush()));
    expect(counter.statements).toBe(2);

    for (const r of runs) {
      const events = await db.prisma.runEvent.findMany({ where: { runId: r.id }, orderBy: { seq: 'asc' } });
      expect(events.map((e) => [e.seq, e.type, e.payload])).toEqual([
        [1, 'STATUS', { status: 'RUNNING' }],
        [2, 'TOKEN', { text: 'ab' }],
        [3, 'TOKEN', { text: 'c' }],
        [4, 'ERROR', { message: 'late' }],
      ]);
      expect((await db.prisma.agentRun.findUniqueOrThrow({ where: { id: r.id } })).lastSeq).toBe(4);
      expect(seen.get(r.id)).toEqual([1, 2, 3, 4]);
    }
  });

  it("holds a run's later tokens so that runs streaming apart share a statement; first tokens, statuses and flush go at once", async () => {
    const runs = await Promise.all([newRun(), newRun(), newRun()]);
    const { counter, query } = counting(db.query);
    const log = new EventLog(query, bus, 1, 60_000); // a hold longer than the test: only an urgent batch or a flush ends it
    const [w1, w2, w3] = runs.map((r) => new RunEventWriter(log, r.id, r.lastSeq, LEASE));
    const texts = async (runId: string) =>
      (await db.prisma.runEvent.findMany({ where: { runId }, orderBy: { seq: 'asc' } })).map((e) => (e.payload as { text?: string; status?: string }).text ?? e.type);

    // Each run's first token is urgent: stored without a flush.
    for (const w of [w1!, w2!, w3!]) w.append('TOKEN', { text: 'a' });
    await expect.poll(() => counter.statements).toBe(1);
    await expect.poll(() => texts(runs[2]!.id)).toEqual(['a']);

    // Later tokens, appended apart, wait for one another…
    w1!.append('TOKEN', { text: 'b' });
    await new Promise((r) => setTimeout(r, 20));
    w2!.append('TOKEN', { text: 'c' });
    await new Promise((r) => setTimeout(r, 50));
    expect(counter.statements).toBe(1);
    expect(await texts(runs[0]!.id)).toEqual(['a']);
    // …until an urgent batch (a status change) takes them all in its statement.
    w3!.append('STATUS', { status: 'CANCELLED' });
    await expect.poll(() => counter.statements).toBe(2);
    await expect.poll(() => texts(runs[0]!.id)).toEqual(['a', 'b']);
    expect(await texts(runs[1]!.id)).toEqual(['a', 'c']);
    expect(await texts(runs[2]!.id)).toEqual(['a', 'STATUS']);

    // A flush does not wait for the hold.
    w1!.append('TOKEN', { text: 'd' });
    await w1!.flush();
    expect(counter.statements).toBe(3);
    expect(await texts(runs[0]!.id)).toEqual(['a', 'b', 'd']);
  });

  it('stores a held batch on its own when nothing else comes within the hold', async () => {
    const [a, b] = await Promise.all([newRun(), newRun()]);
    const { counter, query } = counting(db.query);
    const log = new EventLog(query, bus, 2, 50);
    const [wa, wb] = [a!, b!].map((r) => new RunEventWriter(log, r.id, r.lastSeq, LEASE));
    wa!.append('TOKEN', { text: 'first' });
    wb!.append('TOKEN', { text: 'first' });
    await expect.poll(() => counter.statements).toBe(1);
    wa!.append('TOKEN', { text: 'later' }); // held: b streams too
    await expect.poll(() => db.prisma.runEvent.count({ where: { runId: a!.id } }), { timeout: 5_000 }).toBe(2);
    expect(counter.statements).toBe(2);
  });

  it("does not hold a lone run's tokens: nothing would share their statement", async () => {
    const run = await newRun();
    const { counter, query } = counting(db.query);
    const writer = new RunEventWriter(new EventLog(query, bus, 2, 60_000), run.id, run.lastSeq, LEASE);
    writer.append('TOKEN', { text: 'first' });
    await expect.poll(() => counter.statements).toBe(1);
    writer.append('TOKEN', { text: 'later' });
    await expect.poll(() => db.prisma.runEvent.count({ where: { runId: run.id } })).toBe(2);
  });

  it('stores a deferred event with the next statement of its run, in seq order, and on flush or finish', async () => {
    const [a, b] = await Promise.all([newRun(), newRun()]);
    const { counter, query } = counting(db.query);
    const log = new EventLog(query, bus, 2);
    const events = async (runId: string) =>
      (await db.prisma.runEvent.findMany({ where: { runId }, orderBy: { seq: 'asc' } })).map((e) => [e.seq, e.type]);

    // A deferred note starts no statement: it goes with the first token.
    const wa = new RunEventWriter(log, a!.id, a!.lastSeq, LEASE);
    wa.append('LOG', { kind: 'attempt' }, { deferred: true });
    await new Promise((r) => setTimeout(r, 50));
    expect(counter.statements).toBe(0);
    wa.append('TOKEN', { text: 'first' });
    await expect.poll(() => counter.statements).toBe(1);
    await wa.flush();
    expect(await events(a!.id)).toEqual([[1, 'LOG'], [2, 'TOKEN']]);

    // With nothing after it, a flush stores it; before a final event, finish does.
    const wb = new RunEventWriter(log, b!.id, b!.lastSeq, LEASE);
    wb.append('LOG', { kind: 'skip' }, { deferred: true });
    await wb.flush();
    expect(await events(b!.id)).toEqual([[1, 'LOG']]);
    wb.append('LOG', { kind: 'attempt' }, { deferred: true });
    const update = (p: { add(v: unknown): string }) => `UPDATE "AgentRun" SET status = 'FAILED' WHERE id = ${p.add(b!.id)}::uuid RETURNING id`;
    expect(await wb.finish('STATUS', { status: 'FAILED' }, update)).toBe(true);
    expect(await events(b!.id)).toEqual([[1, 'LOG'], [2, 'LOG'], [3, 'STATUS']]);
  });

  it('does not count a run that has ended as streaming: the next run alone is not held', async () => {
    const [done, next] = await Promise.all([newRun(), newRun()]);
    const log = new EventLog(db.query, bus, 2, 60_000);
    const first = new RunEventWriter(log, done!.id, done!.lastSeq, LEASE);
    first.append('TOKEN', { text: 'x' });
    await first.flush();
    expect(await first.finish('STATUS', { status: 'SUCCEEDED' }, (p) => `UPDATE "AgentRun" SET status = 'SUCCEEDED' WHERE id = ${p.add(done!.id)}::uuid RETURNING id`)).toBe(true);
    const writer = new RunEventWriter(log, next!.id, next!.lastSeq, LEASE);
    writer.append('TOKEN', { text: 'first' });
    await expect.poll(() => db.prisma.runEvent.count({ where: { runId: next!.id } })).toBe(1);
    writer.append('TOKEN', { text: 'later' });
    await expect.poll(() => db.prisma.runEvent.count({ where: { runId: next!.id } })).toBe(2);
  });

  it('with two statements allowed in flight, a run does not wait behind the write of another; the rest still group', async () => {
    const [a, b, c, d] = await Promise.all([newRun(), newRun(), newRun(), newRun()]);
    // The first statement is held until released, as a slow write would be.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const sent: number[] = [];
    const query: SqlQuery = async (text, params) => {
      const rows = params?.find((v): v is string => typeof v === 'string' && v.startsWith('[{"runId"'));
      sent.push((rows?.match(/"runId"/g) ?? []).length);
      if (sent.length === 1) await held;
      return db.query(text, params);
    };
    const log = new EventLog(query, bus, 2);
    const [wa, wb, wc, wd] = [a, b, c, d].map((r) => new RunEventWriter(log, r!.id, r!.lastSeq, LEASE));
    wa!.append('TOKEN', { text: 'a' });
    await new Promise((r) => setTimeout(r, 10));
    wb!.append('TOKEN', { text: 'b' });
    await wb!.flush(); // stored while a's statement is still held
    expect(sent).toEqual([1, 1]);
    // Appended in the same tick: c and d share the free slot's statement.
    wc!.append('TOKEN', { text: 'c' });
    wd!.append('TOKEN', { text: 'd' });
    await Promise.all([wc!.flush(), wd!.flush()]);
    expect(sent).toEqual([1, 1, 2]);
    release();
    await wa!.flush();
    for (const [r, text] of [[a, 'a'], [b, 'b'], [c, 'c'], [d, 'd']] as const) {
      const events = await db.prisma.runEvent.findMany({ where: { runId: r!.id } });
      expect(events.map((e) => e.payload)).toEqual([{ text }]);
    }
  });

  it('a batch that cannot be stored fails only its own run; the others in the same statement are stored', async () => {
    const [good, clashing] = [await newRun(), await newRun()];
    const log = new EventLog(db.query, bus);
    await new RunEventWriter(log, clashing.id, clashing.lastSeq, LEASE).finish('STATUS', { status: 'RUNNING' }, (p, seq) => `UPDATE "AgentRun" SET "lastSeq" = ${p.add(seq)} WHERE id = ${p.add(clashing.id)}::uuid RETURNING id`);
    const ok = new RunEventWriter(log, good.id, good.lastSeq, LEASE);
    const stale = new RunEventWriter(log, clashing.id, 0, LEASE); // believes seq 1 is free: the unique key refuses it
    ok.append('TOKEN', { text: 'kept' });
    stale.append('TOKEN', { text: 'refused' });
    await expect(stale.flush()).rejects.toThrow(/unique|duplicate/i);
    await ok.flush();
    const events = await db.prisma.runEvent.findMany({ where: { runId: good.id } });
    expect(events.map((e) => e.payload)).toEqual([{ text: 'kept' }]);
    expect((await db.prisma.runEvent.findMany({ where: { runId: clashing.id } })).map((e) => e.type)).toEqual(['STATUS']);
  });

  it("stores events only under the run's current lease: once the run is claimed again, the old writer stores and announces nothing more", async () => {
    await onRealBus(async (realBus) => {
      const [run, other, third] = [await newRun(), await newRun(), await newRun()];
      const { counter, query } = counting(db.query);
      const log = new EventLog(query, realBus);
      // Subscribers in this process, and (PostgreSQL) in another one, which learns of events through NOTIFY.
      const elsewhere = db.kind === 'postgresql' ? await createPgBus(db.url!, db.pool!, createLogger('silent')) : null;
      const seen = { here: [] as string[], elsewhere: [] as string[] };
      const announced = { here: [] as unknown[], elsewhere: [] as unknown[] };
      for (const [where, b] of [['here', realBus], ['elsewhere', elsewhere]] as const) {
        await b?.subscribe(runChannel(run.id), (m) => {
          for (const e of (m as RunEventHint).events ?? []) seen[where].push(String(e.payload.text));
        });
        await b?.subscribe(`project:${third.id}`, (m) => m && announced[where].push(m));
      }
      let lost = 0;
      const old = new RunEventWriter(log, run.id, run.lastSeq, { ...LEASE, onLost: () => lost++ });
      old.append('TOKEN', { text: 'before' });
      await old.flush();

      // The run is claimed again: by the same worker here (a process that stalled past its lease), so only
      // the claim's number tells the two leases apart.
      await db.prisma.agentRun.update({ where: { id: run.id }, data: { attempts: LEASE.attempt + 1 } });
      const neighbour = new RunEventWriter(log, other.id, other.lastSeq, LEASE);
      old.append('TOKEN', { text: 'stale' });
      neighbour.append('TOKEN', { text: 'kept' }); // in the same statement: stored, whatever happens to the other
      // An announcement with no events rides in that statement too, and goes out whatever the leases.
      new RunEventWriter(log, third.id, third.lastSeq, LEASE).announce(`project:${third.id}`, { hello: true });
      const statements = counter.statements;
      await expect(old.flush()).rejects.toBeInstanceOf(LeaseLostError);
      await neighbour.flush();
      expect(counter.statements).toBe(statements + 1);
      expect(lost).toBe(1);
      // Nothing more is sent for it, and its final write is refused without a statement.
      old.append('TOKEN', { text: 'later' });
      expect(await old.finish('STATUS', { status: 'SUCCEEDED' }, (p) => `UPDATE "AgentRun" SET status = 'SUCCEEDED' WHERE id = ${p.add(run.id)}::uuid RETURNING id`)).toBe(false);
      expect(counter.statements).toBe(statements + 1);
      expect(lost).toBe(1);

      // The new claim's writer goes on from the stored seq: no seq is taken twice.
      const next = new RunEventWriter(log, run.id, 1, { ...LEASE, attempt: LEASE.attempt + 1 });
      next.append('TOKEN', { text: 'after' });
      await next.flush();
      const stored = await db.prisma.runEvent.findMany({ where: { runId: run.id }, orderBy: { seq: 'asc' } });
      expect(stored.map((e) => [e.seq, (e.payload as { text: string }).text])).toEqual([[1, 'before'], [2, 'after']]);
      expect((await db.prisma.agentRun.findUniqueOrThrow({ where: { id: run.id } })).lastSeq).toBe(2);
      expect((await db.prisma.runEvent.findMany({ where: { runId: other.id } })).map((e) => e.payload)).toEqual([{ text: 'kept' }]);
      // Subscribers were never told of the refused batch.
      await expect.poll(() => seen.here).toEqual(['before', 'after']);
      expect(announced.here).toEqual([{ hello: true }]);
      if (elsewhere) {
        await expect.poll(() => seen.elsewhere).toEqual(['before', 'after']);
        expect(announced.elsewhere).toEqual([{ hello: true }]);
        await elsewhere.close();
      }
    });
  });

  it('finish writes the final event only while its condition holds, and only then announces it', async () => {
    await onRealBus(async (realBus) => {
      const run = await newRun();
      const log = new EventLog(db.query, realBus);
      const statuses: unknown[] = [];
      const channel = `project:${run.id}`;
      await realBus.subscribe(channel, (m) => m && statuses.push(m));
      const writer = new RunEventWriter(log, run.id, run.lastSeq, LEASE);
      writer.append('TOKEN', { text: 'hi' });
      const refused = await writer.finish(
        'STATUS',
        { status: 'SUCCEEDED' },
        (p, seq) => `UPDATE "AgentRun" SET status = 'SUCCEEDED', "lastSeq" = ${p.add(seq)} WHERE id = ${p.add(run.id)}::uuid AND "leaseOwner" = 'someone else' RETURNING id`,
        [[channel, { status: 'REFUSED' }]],
      );
      expect(refused).toBe(false);
      const applied = await writer.finish(
        'STATUS',
        { status: 'SUCCEEDED' },
        (p, seq) => `UPDATE "AgentRun" SET status = 'SUCCEEDED', "lastSeq" = ${p.add(seq)} WHERE id = ${p.add(run.id)}::uuid RETURNING id`,
        [[channel, { status: 'SUCCEEDED' }]],
      );
      expect(applied).toBe(true);
      // Messages arrive in order, so the refused finish would show up before this one.
      await expect.poll(() => statuses.length).toBe(1);
      expect(statuses).toEqual([{ status: 'SUCCEEDED' }]);
      const row = await db.prisma.agentRun.findUniqueOrThrow({ where: { id: run.id } });
      expect([row.status, row.lastSeq]).toEqual(['SUCCEEDED', 2]);
      expect((await db.prisma.runEvent.findMany({ where: { runId: run.id }, orderBy: { seq: 'asc' } })).map((e) => e.type)).toEqual(['TOKEN', 'STATUS']);
    });
  });

  it('a final event too long to ride in a notification is stored, and its hint tells subscribers to read it', async () => {
    // On PostgreSQL this goes through LISTEN/NOTIFY, whose payloads are limited to 8,000 bytes.
    await onRealBus(async (realBus) => {
      const run = await newRun();
      const hints: RunEventHint[] = [];
      await realBus.subscribe(runChannel(run.id), (m) => m && hints.push(m as RunEventHint));
      const writer = new RunEventWriter(new EventLog(db.query, realBus), run.id, run.lastSeq, LEASE);
      const error = 'é'.repeat(5_000); // 5,000 characters, 10,000 bytes
      const applied = await writer.finish(
        'STATUS',
        { status: 'FAILED', error },
        (p, seq) => `UPDATE "AgentRun" SET status = 'FAILED', "lastSeq" = ${p.add(seq)} WHERE id = ${p.add(run.id)}::uuid RETURNING id`,
      );
      expect(applied).toBe(true);
      const stored = await db.prisma.runEvent.findFirstOrThrow({ where: { runId: run.id, seq: 1 } });
      expect((stored.payload as { error: string }).error).toBe(error);
      await expect.poll(() => hints.length).toBe(1);
      expect(hints[0]).toEqual({ seq: 1 });
    });
  });
});
