import type { SqlQuery } from '../lib/db.js';
import type { EventBus } from '../lib/pubsub.js';
import { fromUtcWall, utcWallText } from '../lib/sql.js';
import { runChannel, type RunEventHint, type RunEventRecord } from './events.js';

const PAGE = 500;

/**
 * One page of a run's stored events after `afterSeq`, with the run's status and last seq, in one
 * statement (so from one snapshot). No row: the run does not exist.
 */
const READ_RANGE = `SELECT r.status::text AS status, r."lastSeq" AS "lastSeq",
    (SELECT coalesce(json_agg(json_build_object('seq', e.seq, 'type', e.type, 'payload', e.payload, 'createdAt', ${utcWallText('e."createdAt"')}) ORDER BY e.seq), '[]'::json)
       FROM (SELECT seq, type, payload, "createdAt" FROM "RunEvent" WHERE "runId" = $1::uuid AND seq > $2::int ORDER BY seq LIMIT $3::int) e) AS events
  FROM "AgentRun" r WHERE r.id = $1::uuid`;

interface RangeRow {
  status: string;
  lastSeq: number;
  events: { seq: number; type: RunEventRecord['type']; payload: Record<string, unknown>; createdAt: string }[];
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
const queuedReads = new WeakMap<SqlQuery, Map<string, Promise<StoredRange>>>();

/**
 * The stored events of a run after `afterSeq` (one page). Bounded and shared: a burst of subscribers (a
 * thousand clients subscribing, or reconnecting, at once) costs a few reads in flight at a time, not a
 * thousand queries competing for the pool, and those asking for the same range share one. Only a read
 * that has not started yet is joined, so it always starts after the joiner opened its bus subscription,
 * which is what makes "subscribe, then read" gap-free. The events returned are frozen and may be shared.
 */
function readStoredRange(query: SqlQuery, runId: string, afterSeq: number): Promise<StoredRange> {
  let queued = queuedReads.get(query);
  if (!queued) queuedReads.set(query, (queued = new Map()));
  const key = `${runId}:${afterSeq}`;
  const joined = queued.get(key);
  if (joined) return joined;
  const read = (async (): Promise<StoredRange> => {
    await acquireReadSlot();
    queued.delete(key);
    try {
      const [row] = await query<RangeRow>(READ_RANGE, [runId, afterSeq, PAGE]);
      if (!row) return { events: Object.freeze([]), run: null, exists: false };
      const events = Object.freeze(
        row.events.map((e) => Object.freeze({ runId, seq: e.seq, type: e.type, payload: e.payload, createdAt: fromUtcWall(e.createdAt) })),
      );
      // A full page: more to read. Otherwise the end of the log, and whether the run can still grow.
      return { events, run: events.length === PAGE ? null : { status: row.status, lastSeq: row.lastSeq }, exists: true };
    } finally {
      releaseReadSlot();
    }
  })();
  queued.set(key, read);
  return read;
}

const DONE: IteratorReturnResult<void> = Object.freeze({ value: undefined, done: true });

/**
 * Every event of a run with seq > afterSeq, exactly once and in order: stored ones first, then live ones,
 * with no gap between the two (the bus subscription opens before the first read, and any hole in what
 * the bus delivers is filled from the database). Ends after the run's terminal status event. The events
 * are shared with the run's other subscribers in this process: they are frozen.
 *
 * `run` is the run's id, or a function that authorizes the subscriber and returns it: it runs when the
 * stream is first read, so a refusal is the stream's error. return() ends the stream at once, even while
 * it waits for the run's next event, so a client that goes away releases its subscription.
 */
export function streamRunEvents(
  query: SqlQuery,
  bus: EventBus,
  run: string | (() => Promise<string>),
  afterSeq: number,
): AsyncGenerator<RunEventRecord, void, void> {
  // Node 20 types async generators as async disposable; GraphQL and graphql-ws need next/return/throw.
  return new RunEventStream(query, bus, run, afterSeq) as unknown as AsyncGenerator<RunEventRecord, void, void>;
}

/**
 * One subscriber's position in a run's log. Written as an iterator rather than an async generator: an
 * event already received is handed over without a turn of the generator machinery (this runs once per
 * subscriber per event), and return() can end a wait.
 */
class RunEventStream implements AsyncIterator<RunEventRecord, void, void> {
  private opened: Promise<void> | null = null;
  private isOpen = false; // subscribed to the bus
  private runId = '';
  private unsubscribe: (() => Promise<void>) | null = null;
  private delivered: number;
  private mustRead = true; // replay first
  /** Events to hand over, oldest first: what a read returned, then what the bus carried, batch by batch. */
  private batches: (readonly RunEventRecord[])[] = [];
  private pos = 0; // next index in batches[0]
  /** Set by a read: once `at` is delivered, read the next page, or end (the run had finished). */
  private afterRead: { at: number; then: 'read' | 'end' } | null = null;
  private ended = false;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly query: SqlQuery,
    private readonly bus: EventBus,
    private readonly run: string | (() => Promise<string>),
    afterSeq: number,
  ) {
    // Seqs start at 1: a position before that (a negative afterSeq) is the start of the log.
    this.delivered = Math.max(0, afterSeq);
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  async next(): Promise<IteratorResult<RunEventRecord, void>> {
    try {
      if (this.ended) {
        // Finished, failed or returned.
        await this.release();
        return DONE;
      }
      this.opened ??= this.open();
      await this.opened;
      for (;;) {
        if (this.afterRead && this.delivered >= this.afterRead.at) {
          if (this.afterRead.then === 'end') this.ended = true;
          else this.mustRead = true;
          this.afterRead = null;
        }
        if (this.ended) {
          await this.release();
          return DONE;
        }
        if (!this.mustRead) {
          const e = this.take();
          if (e) {
            if (isTerminalEvent(e)) this.ended = true;
            return { value: e, done: false };
          }
          if (this.ended) continue;
        }
        if (this.mustRead) {
          this.mustRead = false;
          await this.read();
          continue;
        }
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
    } catch (error) {
      this.ended = true;
      await this.release();
      throw error;
    }
  }

  async return(): Promise<IteratorResult<RunEventRecord, void>> {
    this.ended = true;
    this.onArrival = null;
    this.wakeAll();
    await this.release();
    return DONE;
  }

  async throw(error: unknown): Promise<IteratorResult<RunEventRecord, void>> {
    await this.return();
    throw error;
  }

  private async open() {
    const runId = typeof this.run === 'string' ? this.run : await this.run();
    if (this.ended) return;
    this.runId = runId;
    this.unsubscribe = await this.bus.subscribe(runChannel(runId), this.onMessage);
    this.isOpen = true;
    if (this.ended) await this.release(); // returned meanwhile
  }

  /**
   * Whether next() has work besides waiting for the bus: opening, a read (replay, next page, a hole), or
   * the end. Until then, what arrives can be taken with takeNow().
   */
  get needsNext(): boolean {
    return !this.isOpen || this.ended || this.mustRead || (this.afterRead !== null && this.delivered >= this.afterRead.at);
  }

  /** The next event if it is already at hand (no read, no wait); counts as delivered, as from next(). */
  takeNow(): RunEventRecord | undefined {
    if (this.needsNext) return undefined;
    const e = this.take();
    if (!e) return undefined;
    if (isTerminalEvent(e)) this.ended = true;
    return e;
  }

  /**
   * Set by a consumer that takes events with takeNow() instead of waiting in next(): called synchronously
   * when a bus message arrives, so a fan-out to many subscribers costs no promise per subscriber.
   */
  onArrival: (() => void) | null = null;

  private readonly onMessage = (raw: unknown) => {
    const hint = raw as RunEventHint | null;
    if (hint?.events) {
      if (hint.events.length > 0) this.batches.push(eventsOf(hint as RunEventHint & { events: RunEventRecord[] }));
    } else {
      // No events inline, or a bus reconnect (null): what we missed is in the database.
      this.mustRead = true;
    }
    if (this.onArrival) this.onArrival();
    else this.wakeAll();
  };

  private wakeAll() {
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** The next event in sequence, if at hand; a hole in the sequence asks for a read. */
  private take(): RunEventRecord | null {
    while (this.batches.length > 0) {
      const batch = this.batches[0]!;
      while (this.pos < batch.length && batch[this.pos]!.seq <= this.delivered) {
        // The run ended before this position (an afterSeq past the end of its log): nothing more will come.
        if (isTerminalEvent(batch[this.pos]!)) this.ended = true;
        this.pos++;
      }
      if (this.pos === batch.length) {
        this.batches.shift();
        this.pos = 0;
        continue;
      }
      const e = batch[this.pos]!;
      if (e.seq !== this.delivered + 1) {
        this.mustRead = true; // e.g. a message too large to carry its events: read the missing range
        return null;
      }
      this.pos++;
      this.delivered = e.seq;
      return e;
    }
    return null;
  }

  private async read() {
    const stored = await readStoredRange(this.query, this.runId, this.delivered);
    const last = stored.events.length > 0 ? stored.events[stored.events.length - 1]!.seq : this.delivered;
    if (stored.events.length > 0) {
      // Ahead of anything the bus brought: those are later events, or the same ones (skipped).
      this.batches.unshift(stored.events);
      this.pos = 0;
    }
    // A finished run whose last event is in hand (e.g. resuming at or past its end): nothing more will come.
    const finished = !stored.exists || (stored.run !== null && TERMINAL_STATUSES.includes(stored.run.status) && stored.run.lastSeq <= last);
    this.afterRead = finished ? { at: last, then: 'end' } : stored.run ? null : { at: last, then: 'read' }; // null run: a full page
  }

  private async release() {
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = null;
    if (unsubscribe) await unsubscribe();
  }
}
