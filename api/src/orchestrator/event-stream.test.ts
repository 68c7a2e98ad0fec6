import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase } from '../../test/db.js';
import type { Prisma } from '../_generated/prisma/client.js';
import type { Database, SqlQuery } from '../lib/db.js';
import { createLocalBus, type EventBus } from '../lib/pubsub.js';
import type { SyncEventSource } from '../schema/shared-subscribe.js';
import { streamRunEvents } from './event-stream.js';
import { runChannel, type RunEventHint, type RunEventRecord } from './events.js';

let db: Database;
let bus: EventBus;
let org: { id: string };
let project: { id: string };
let agent: { id: string };

async function aRun() {
  const run = await db.prisma.agentRun.create({
    data: { organizationId: org.id, projectId: project.id, agentId: agent.id, input: 'x', status: 'RUNNING' },
    select: { id: true },
  });
  return run.id;
}

/** Stores the next events of a run (as the writer does: rows, then lastSeq) and returns them. */
async function store(runId: string, events: { type: 'TOKEN' | 'STATUS'; payload: Record<string, unknown> }[], status?: 'SUCCEEDED') {
  const { lastSeq } = await db.prisma.agentRun.findUniqueOrThrow({ where: { id: runId }, select: { lastSeq: true } });
  const createdAt = new Date();
  const rows = events.map((e, i) => ({ runId, seq: lastSeq + i + 1, type: e.type, payload: e.payload, createdAt }));
  await db.prisma.runEvent.createMany({ data: rows.map((r) => ({ ...r, payload: r.payload as Prisma.InputJsonValue })) });
  await db.prisma.agentRun.update({ where: { id: runId }, data: { lastSeq: lastSeq + rows.length, ...(status ? { status } : {}) } });
  return rows as RunEventRecord[];
}

const tokens = (...texts: string[]) => texts.map((text) => ({ type: 'TOKEN' as const, payload: { text } }));
const finished = { type: 'STATUS' as const, payload: { status: 'SUCCEEDED' } };

/** Stored, then announced with the events inline (what the bus carries for small batches). */
async function append(runId: string, events: Parameters<typeof store>[1], status?: 'SUCCEEDED') {
  const rows = await store(runId, events, status);
  await bus.publish(runChannel(runId), { seq: rows.at(-1)!.seq, events: rows } satisfies RunEventHint);
  return rows;
}

/** The raw statement call, counting the reads a stream makes (and optionally holding their results). */
function counting(query: SqlQuery, hold?: Promise<void>) {
  const counts = { reads: 0 };
  const counted: SqlQuery = async <T,>(text: string, params?: unknown[]) => {
    counts.reads++;
    const rows = await query<T>(text, params);
    await hold;
    return rows;
  };
  return { counts, query: counted };
}

/** Reads a stream to its end. */
async function drain(stream: AsyncIterable<RunEventRecord>) {
  const seen: RunEventRecord[] = [];
  for await (const e of stream) seen.push(e);
  return seen;
}

/** Resolves once `stream` has delivered `n` events; they are pushed to `into`. */
function firstEvents(stream: AsyncGenerator<RunEventRecord, void, void>, n: number, into: RunEventRecord[]) {
  return (async () => {
    while (into.length < n) {
      const step = await stream.next();
      if (step.done) throw new Error(`the stream ended after ${into.length} events`);
      into.push(step.value);
    }
  })();
}

const tick = () => new Promise((r) => setTimeout(r, 20));

beforeAll(async () => {
  db = await getTestDatabase();
  bus = createLocalBus();
  org = await db.prisma.organization.create({ data: { slug: `es-${randomUUID().slice(0, 8)}`, name: 'Streams' } });
  project = await db.prisma.project.create({ data: { organizationId: org.id, slug: 'p', name: 'P' } });
  agent = await db.prisma.agent.create({ data: { organizationId: org.id, projectId: project.id, name: 'A', provider: 'OFFLINE', model: 'offline-echo' } });
});

afterAll(async () => {
  await bus.close();
});

describe('streamRunEvents', () => {
  it('replays the stored events, then streams live ones exactly once, in order, with no query per live event', async () => {
    const runId = await aRun();
    const stored = await store(runId, tokens('a', 'b'));
    const { counts, query } = counting(db.query);
    const stream = streamRunEvents(query, bus, runId, 0);
    const seen: RunEventRecord[] = [];
    await firstEvents(stream, 2, seen);
    // Replayed as stored, to the millisecond.
    expect(seen).toEqual(stored);
    for (let i = 0; i < 20; i++) await append(runId, tokens(`live ${i}`));
    await append(runId, [finished], 'SUCCEEDED');
    seen.push(...(await drain(stream)));
    expect(seen.map((e) => e.seq)).toEqual(Array.from({ length: 23 }, (_, i) => i + 1));
    expect(seen.slice(2, 22).map((e) => e.payload.text)).toEqual(Array.from({ length: 20 }, (_, i) => `live ${i}`));
    // One replay (its events and the run's status at the end of the log, in one statement); the live events cost no query.
    expect(counts).toEqual({ reads: 1 });
  });

  it('gives every subscriber of a run the same live event objects, frozen', async () => {
    const runId = await aRun();
    const streams = [streamRunEvents(db.query, bus, runId, 0), streamRunEvents(db.query, bus, runId, 0)];
    const started = streams.map((s) => s.next());
    await tick();
    await append(runId, tokens('x', 'y'));
    await append(runId, [finished], 'SUCCEEDED');
    const [a, b] = await Promise.all(streams.map(async (s, i) => [(await started[i]!).value as RunEventRecord, ...(await drain(s))]));
    expect(a!.map((e) => e.seq)).toEqual([1, 2, 3]);
    for (let i = 0; i < 3; i++) {
      expect(a![i]).toBe(b![i]);
      expect(Object.isFrozen(a![i])).toBe(true);
    }
    expect(a![0]!.createdAt).toBeInstanceOf(Date);
  });

  it('reads what the bus did not carry: a message without events, and a hole in the sequence', async () => {
    const runId = await aRun();
    const stream = streamRunEvents(db.query, bus, runId, 0);
    const pending = stream.next();
    await tick();
    const first = await store(runId, tokens('too large to carry'));
    await bus.publish(runChannel(runId), { seq: first[0]!.seq } satisfies RunEventHint);
    expect((await pending).value).toMatchObject({ seq: 1, payload: { text: 'too large to carry' } });
    // Event 2 is announced without being carried; event 3 arrives inline: 2 must come from the database, first.
    await store(runId, tokens('missed'));
    await append(runId, tokens('inline'));
    await append(runId, [finished], 'SUCCEEDED');
    expect((await drain(stream)).map((e) => [e.seq, e.payload.text ?? e.payload.status])).toEqual([
      [2, 'missed'],
      [3, 'inline'],
      [4, 'SUCCEEDED'],
    ]);
  });

  it('ends at once when resuming at the end of a finished run, and after its last event otherwise', async () => {
    const runId = await aRun();
    await store(runId, [...tokens('a'), finished], 'SUCCEEDED');
    expect(await drain(streamRunEvents(db.query, bus, runId, 2))).toEqual([]);
    expect((await drain(streamRunEvents(db.query, bus, runId, 1))).map((e) => e.seq)).toEqual([2]);
    expect(await drain(streamRunEvents(db.query, bus, randomUUID(), 0))).toEqual([]);
  });

  it('replays the whole log for a position before its start (a negative afterSeq), reading it once', async () => {
    const runId = await aRun();
    await store(runId, [...tokens('a'), finished], 'SUCCEEDED');
    const { counts, query } = counting(db.query);
    // A stream that cannot place seq 1 after -1 would read the same range forever, growing its buffer.
    const bounded: SqlQuery = async <T,>(text: string, params?: unknown[]) => {
      if (counts.reads >= 5) throw new Error('read the same range again and again');
      return query<T>(text, params);
    };
    expect((await drain(streamRunEvents(bounded, bus, runId, -1))).map((e) => e.seq)).toEqual([1, 2]);
    expect(counts.reads).toBe(1);
  });

  it('ends when the run finishes, for a position past the end of its log (a too large afterSeq)', async () => {
    const runId = await aRun();
    await store(runId, tokens('a'));
    const stream = streamRunEvents(db.query, bus, runId, 1000);
    const ended = drain(stream);
    await tick();
    await append(runId, tokens('b'));
    await append(runId, [finished], 'SUCCEEDED');
    const outcome = await Promise.race([ended, new Promise((r) => setTimeout(() => r('still open'), 2000))]);
    await stream.return();
    expect(outcome).toEqual([]);
  });

  it('replays a long log page by page, then goes live', async () => {
    const runId = await aRun();
    await store(runId, tokens(...Array.from({ length: 1203 }, (_, i) => `${i}`)));
    const { counts, query } = counting(db.query);
    const stream = streamRunEvents(query, bus, runId, 0);
    const seen: RunEventRecord[] = [];
    await firstEvents(stream, 1203, seen);
    await append(runId, [finished], 'SUCCEEDED');
    seen.push(...(await drain(stream)));
    expect(seen.map((e) => e.seq)).toEqual(Array.from({ length: 1204 }, (_, i) => i + 1));
    expect(counts.reads).toBe(3);
  });

  it('fails with the authorization error, before subscribing to anything', async () => {
    const stream = streamRunEvents(db.query, bus, () => Promise.reject(new Error('refused')), 0);
    await expect(stream.next()).rejects.toThrow('refused');
    expect(await stream.next()).toEqual({ value: undefined, done: true });
  });

  it('serves a burst of subscribers with a few shared reads', async () => {
    const runId = await aRun();
    await store(runId, tokens('a', 'b', 'c'));
    const { counts, query } = counting(db.query);
    const streams = Array.from({ length: 60 }, () => streamRunEvents(query, bus, runId, 0));
    const replays = await Promise.all(
      streams.map(async (s) => {
        const seen: RunEventRecord[] = [];
        await firstEvents(s, 3, seen);
        return seen;
      }),
    );
    for (const r of replays) expect(r.map((e) => e.payload.text)).toEqual(['a', 'b', 'c']);
    expect(counts.reads).toBeLessThan(20);
    await append(runId, [finished], 'SUCCEEDED');
    for (const s of streams) expect((await drain(s)).map((e) => e.seq)).toEqual([4]);
  });

  it('never hands a subscriber a read that started before it subscribed (it could miss the events in between)', async () => {
    const runId = await aRun();
    await store(runId, tokens('a'));
    let release!: () => void;
    const { query } = counting(db.query, new Promise<void>((r) => (release = r)));
    // A's read of the log is taken (it sees event 1) and held.
    const a = streamRunEvents(query, bus, runId, 0);
    const aFirst = a.next();
    await tick();
    // The run ends meanwhile: B subscribes after the announcement, so only a read of its own can show it the end.
    await append(runId, [finished], 'SUCCEEDED');
    const b = streamRunEvents(query, bus, runId, 0);
    const bAll = drain(b);
    await tick();
    release();
    expect((await aFirst).value).toMatchObject({ seq: 1 });
    expect((await drain(a)).map((e) => e.seq)).toEqual([2]);
    expect((await bAll).map((e) => e.seq)).toEqual([1, 2]);
  });

  it('hands live events over synchronously, within the bus dispatch, to a consumer that takes them', async () => {
    const runId = await aRun();
    await store(runId, tokens('a'));
    const stream = streamRunEvents(db.query, bus, runId, 0) as AsyncGenerator<RunEventRecord, void, void> & SyncEventSource;
    expect(stream.needsNext).toBe(true); // not open, nothing replayed yet
    expect((await stream.next()).value).toMatchObject({ seq: 1 });
    expect(stream.needsNext).toBe(false);
    const taken: unknown[] = [];
    stream.onArrival = () => {
      for (let e = stream.takeNow(); e !== undefined; e = stream.takeNow()) taken.push((e as RunEventRecord).seq);
    };
    const rows = await store(runId, tokens('b', 'c'));
    void bus.publish(runChannel(runId), { seq: 3, events: rows } satisfies RunEventHint); // the local bus dispatches at once
    expect(taken).toEqual([2, 3]);
    // What the bus did not carry is for next() to read.
    await store(runId, [finished], 'SUCCEEDED');
    void bus.publish(runChannel(runId), { seq: 4 } satisfies RunEventHint);
    expect(taken).toEqual([2, 3]);
    expect(stream.needsNext).toBe(true);
    stream.onArrival = null;
    expect((await drain(stream)).map((e) => e.seq)).toEqual([4]);
  });

  it('return() ends a subscription that is waiting for the next event, and releases it', async () => {
    const runId = await aRun();
    const stream = streamRunEvents(db.query, bus, runId, 0);
    const pending = stream.next();
    await tick();
    await stream.return();
    expect(await pending).toEqual({ value: undefined, done: true });
    // Nothing listens any more: a later event reaches no one (and the run never finishes here).
    await append(runId, tokens('late'));
    expect(await stream.next()).toEqual({ value: undefined, done: true });
  });
});
