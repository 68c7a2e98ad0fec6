import type { PrismaClient } from '../lib/db.js';
import type { EventBus } from '../lib/pubsub.js';
import { runChannel, type RunEventHint, type RunEventRecord } from './events.js';

const PAGE = 500;

export async function readRunEvents(prisma: PrismaClient, runId: string, afterSeq: number, limit = PAGE) {
  const rows = await prisma.runEvent.findMany({
    where: { runId, seq: { gt: afterSeq } },
    orderBy: { seq: 'asc' },
    take: limit,
  });
  return rows.map((r) => ({ runId: r.runId, seq: r.seq, type: r.type, payload: r.payload as Record<string, unknown>, createdAt: r.createdAt }));
}

const TERMINAL_STATUSES: string[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'BLOCKED'];

export const isTerminalEvent = (e: RunEventRecord) => e.type === 'STATUS' && TERMINAL_STATUSES.includes(String(e.payload.status));

/**
 * The events a bus message carries, decoded once per message: the bus hands the same message object to
 * every subscriber of the run in this process, so they all get the same (frozen) event objects, which
 * lets the API execute and cache one GraphQL result per event for all of them (see schema/shared-subscribe.ts).
 */
const decoded = new WeakMap<object, readonly RunEventRecord[]>();

function eventsOf(hint: RunEventHint & { events: RunEventRecord[] }): readonly RunEventRecord[] {
  let events = decoded.get(hint);
  if (!events) {
    events = Object.freeze(hint.events.map((e) => Object.freeze({ ...e, createdAt: new Date(e.createdAt) })));
    decoded.set(hint, events);
  }
  return events;
}

/** Stored events after a position, and (at the end of the log) the run's status and last seq. */
interface StoredRange {
  events: readonly RunEventRecord[];
  /** Null when the page is full (more to read), or when the run does not exist (`exists` false). */
  run: { status: string; lastSeq: number } | null;
  exists: boolean;
}

/** Subscription reads from the database that run at once in this process; the others wait for a slot. */
const READ_SLOTS = 8;
let busySlots = 0;
const slotQueue: (() => void)[] = [];

async function acquireReadSlot(): Promise<void> {
  if (busySlots < READ_SLOTS) busySlots++;
  else await new Promise<void>((resolve) => slotQueue.push(resolve));
}

function releaseReadSlot(): void {
  const next = slotQueue.shift();
  if (next) next(); // the slot passes to the next reader
  else busySlots--;
}

/**
 * Runs a subscription's set-up reads (e.g. its authorization) in one of the slots the stream's own reads
 * use: a thousand clients subscribing at once then queue here, holding little, instead of holding a
 * thousand ORM queries in flight (which is what makes the process's memory peak).
 */
export async function withReadSlot<T>(fn: () => Promise<T>): Promise<T> {
  await acquireReadSlot();
  try {
    return await fn();
  } finally {
    releaseReadSlot();
  }
}

/** Reads not started yet, per database, by run and position: every subscriber asking for the same range joins the same read. */
const queuedReads = new WeakMap<PrismaClient, Map<string, Promise<StoredRange>>>();

/**
 * The stored events of a run after `afterSeq` (one page). Bounded and shared: a burst of subscribers (a
 * thousand clients subscribing, or reconnecting, at once) costs a few reads in flight at a time, not a
 * thousand queries competing for the pool, and those asking for the same range share one. Only a read
 * that has not started yet is joined, so it always starts after the joiner opened its bus subscription,
 * which is what makes "subscribe, then read" gap-free. The events returned are frozen and may be shared.
 */
function readStoredRange(prisma: PrismaClient, runId: string, afterSeq: number): Promise<StoredRange> {
  let queued = queuedReads.get(prisma);
  if (!queued) queuedReads.set(prisma, (queued = new Map()));
  const key = `${runId}:${afterSeq}`;
  const joined = queued.get(key);
  if (joined) return joined;
  const read = (async (): Promise<StoredRange> => {
    await acquireReadSlot();
    queued.delete(key);
    try {
      const events = Object.freeze((await readRunEvents(prisma, runId, afterSeq)).map((e) => Object.freeze(e)));
      if (events.length === PAGE) return { events, run: null, exists: true };
      // The end of the log: the caller needs to know whether the run can still grow.
      const run = await prisma.agentRun.findUnique({ where: { id: runId }, select: { status: true, lastSeq: true } });
      return { events, run, exists: run !== null };
    } finally {
      releaseReadSlot();
    }
  })();
  queued.set(key, read);
  return read;
}

/**
 * Every event of a run with seq > afterSeq, exactly once and in order: stored ones first, then live ones,
 * with no gap between the two (the bus subscription opens before the first read, and any hole in what
 * the bus delivers is filled from the database). Ends after the run's terminal status event. The events
 * are shared with the run's other subscribers in this process: they are frozen.
 *
 * `run` is the run's id, or a function that authorizes the subscriber and returns it: it runs when the
 * stream is first read (so a refusal is the stream's error), without an extra generator per event.
 * return() ends the stream at once, even while it waits for the run's next event (an async generator
 * alone would only notice at that event), so a client that goes away releases its subscription.
 */
export function streamRunEvents(
  prisma: PrismaClient,
  bus: EventBus,
  run: string | (() => Promise<string>),
  afterSeq: number,
  signal?: AbortSignal,
): AsyncGenerator<RunEventRecord, void, void> {
  const stop = new AbortController();
  const events = runEvents(prisma, bus, run, afterSeq, signal ? AbortSignal.any([signal, stop.signal]) : stop.signal);
  return {
    next: () => events.next(),
    return: () => {
      stop.abort();
      return events.return();
    },
    throw: (error: unknown) => {
      stop.abort();
      return events.throw(error);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
    // Node 20 types async generators as async disposable; GraphQL only needs next/return/throw.
  } as AsyncGenerator<RunEventRecord, void, void>;
}

async function* runEvents(
  prisma: PrismaClient,
  bus: EventBus,
  run: string | (() => Promise<string>),
  afterSeq: number,
  signal: AbortSignal,
): AsyncGenerator<RunEventRecord, void, void> {
  const runId = typeof run === 'string' ? run : await run();
  let delivered = afterSeq;
  let mustRead = true; // replay first
  // Live batches in arrival order (each one message's events, ascending); consumed from `head`.
  let inbox: (readonly RunEventRecord[])[] = [];
  let head = 0;
  let wake: (() => void) | null = null;
  let dirty = false; // something arrived since the loop last looked
  const unsubscribe = await bus.subscribe(runChannel(runId), (raw) => {
    const hint = raw as RunEventHint | null;
    dirty = true;
    if (hint?.events) {
      if (hint.events.length > 0) inbox.push(eventsOf(hint as RunEventHint & { events: RunEventRecord[] }));
    } else {
      // No events inline, or a bus reconnect (null): what we missed is in the database.
      mustRead = true;
    }
    wake?.();
  });
  const onAbort = () => wake?.();
  signal.addEventListener('abort', onAbort);
  try {
    while (!signal.aborted) {
      dirty = false;
      // Live events, for as long as they continue the sequence without a hole.
      while (!mustRead && head < inbox.length) {
        const batch = inbox[head]!;
        if (batch[batch.length - 1]!.seq <= delivered) {
          head++;
        } else if (batch[0]!.seq > delivered + 1) {
          mustRead = true; // a hole (e.g. a message too large to carry its events): read the missing range
        } else {
          head++;
          for (const e of batch) {
            if (e.seq <= delivered) continue;
            delivered = e.seq;
            yield e;
            if (isTerminalEvent(e)) return;
          }
        }
      }
      if (head === inbox.length) {
        inbox = [];
        head = 0;
      }
      if (mustRead) {
        mustRead = false;
        const stored = await readStoredRange(prisma, runId, delivered);
        for (const e of stored.events) {
          if (e.seq !== delivered + 1) break;
          delivered = e.seq;
          yield e;
          if (isTerminalEvent(e)) return;
        }
        if (!stored.exists) return;
        if (!stored.run) {
          mustRead = true; // a full page: read on
        } else if (TERMINAL_STATUSES.includes(stored.run.status) && stored.run.lastSeq <= delivered) {
          return; // a finished run whose last event we have (e.g. resuming at or past its end)
        }
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (dirty || mustRead || signal.aborted) resolve();
      });
      wake = null;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    await unsubscribe();
  }
}
