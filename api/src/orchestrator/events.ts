import type { RunEventType } from '../_generated/prisma/enums.js';
import { whileUnreachable, type SqlQuery } from '../lib/db.js';
import { statementNotifications, type EventBus } from '../lib/pubsub.js';
import { SqlParams, utcWall } from '../lib/sql.js';

export interface RunEventRecord {
  runId: string;
  seq: number;
  type: RunEventType;
  payload: Record<string, unknown>;
  createdAt: Date;
}

/** What the bus carries: the run's newest seq, plus the events themselves when they are small. */
export interface RunEventHint {
  seq: number;
  events?: RunEventRecord[];
}

export const runChannel = (runId: string) => `run:${runId}`;
export const projectChannel = (projectId: string) => `project:${projectId}`;

const INLINE_LIMIT_BYTES = 6_000;

/** A run that stored events this recently counts as streaming (see EventLog's hold). */
const STREAMING_WINDOW_MS = 250;

/** A message for another channel that goes out with the run's next stored batch (e.g. a project's status feed). */
export type Announcement = [channel: string, payload: unknown];

/**
 * The lease a run's events are written under: the worker that claimed the run, and which claim (the run's
 * `attempts`, counted up by each claim, so a worker that claims the run again after losing it does not
 * share a lease with its earlier claim). Events are stored only while it is still the run's lease.
 */
export interface RunLease {
  owner: string;
  attempt: number;
}

/** Thrown (from a writer's flush) when the run's lease was no longer this writer's: nothing was stored. */
export class LeaseLostError extends Error {
  constructor(readonly runId: string) {
    super(`Run ${runId}: its lease is held by another worker now; events were not stored`);
    this.name = 'LeaseLostError';
  }
}

/** Errors of a statement that never reached the database, or whose connection it closed: a restart, a failover. */
function lostConnection(err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', '57P01', '57P02', '57P03'].includes(code) || code.startsWith('08'))) return true;
  return typeof message === 'string' && message.startsWith('Connection terminated');
}

/**
 * `query`, sending a statement again (for up to UNREACHABLE_WINDOW_MS) when it could not reach the database,
 * so that a restart of PostgreSQL does not cost the runs in progress their events, and their worker its
 * runs (which would start over, and pay again, once their leases lapsed). Sending an event statement twice
 * never stores anything twice: should the first have committed after all (its reply lost with the
 * connection), the group write fails on the unique key of (runId, seq), which the run's writer reports as
 * any failed write, and a final update finds its run no longer RUNNING; the lease fences a worker the run
 * has left. (Skipping stored seqs instead would hide a writer that is wrong about its run's seq.)
 */
function retriedWhileUnreachable(query: SqlQuery): SqlQuery {
  return <T>(text: string, params?: unknown[]) => whileUnreachable(() => query<T>(text, params), lostConnection);
}

/** One run's batch on its way to the database. */
interface StoredBatch {
  runId: string;
  lease: RunLease;
  events: RunEventRecord[];
  /** Sent after the batch is stored: the run's hint first, then the announcements. */
  messages: Announcement[];
}

/**
 * Stores run events for the whole process. Group commit across runs: while statements are in flight,
 * the batches of every run that arrive wait and then go together in the next statement: their rows, each
 * run's `lastSeq` and, on PostgreSQL, their notifications (delivered once the statement has committed).
 * Fifty streaming runs then cost a handful of statements per second instead of one per run per token.
 * Up to `maxInFlight` statements run at once (on PostgreSQL, on separate connections), so a run's first
 * token does not wait behind another run's write; each run's own batches still go one after the other
 * (its RunEventWriter waits for one to be stored before it sends the next).
 *
 * A batch that is not urgent (a run's later tokens) may wait up to `holdMs` for others to share its
 * statement, when no statement would otherwise take it sooner and another run streams too: streaming
 * runs whose tokens are spread out then share statements. A lone run's tokens are not held (nothing would
 * share their statement, and a process delivering them to many subscribers would wait for the timer behind
 * each delivery). An urgent batch (a status change, a run's first token, a flush) goes at once and takes
 * every waiting batch with it.
 */
export class EventLog {
  private waiting: { batch: StoredBatch; done: (err?: unknown) => void }[] = [];
  private inFlight = 0;
  /** Whether the waiting batches are due: one of them is urgent, or their hold is over. */
  private due = false;
  private hold: NodeJS.Timeout | null = null;
  /** The last two runs that stored events, newest first, and when (performance.now()). */
  private readonly recent: ({ runId: string; at: number } | null)[] = [null, null];

  /** Runs the log's statements: one that could not reach the database is sent again for a while (see `retriedWhileUnreachable`). */
  readonly query: SqlQuery;

  constructor(
    query: SqlQuery,
    readonly bus: EventBus,
    private readonly maxInFlight = 1,
    private readonly holdMs = 0,
  ) {
    this.query = retriedWhileUnreachable(query);
  }

  /** Resolves once the batch is stored and its messages are sent; rejects with LeaseLostError if the lease was not. */
  store(batch: StoredBatch, urgent = true): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ batch, done: (err) => (err ? reject(err) : resolve()) });
      const others = batch.events.length > 0 && this.othersStreaming(batch.runId);
      if (urgent || this.holdMs <= 0 || !others) this.due = true;
      this.next();
    });
  }

  /** Whether a run other than `runId` stored events lately; notes that `runId` does. */
  private othersStreaming(runId: string): boolean {
    const now = performance.now();
    const others = this.recent.some((r) => r !== null && r.runId !== runId && now - r.at < STREAMING_WINDOW_MS);
    if (this.recent[0]?.runId === runId) {
      this.recent[0].at = now;
    } else {
      this.recent[1] = this.recent[0] ?? null;
      this.recent[0] = { runId, at: now };
    }
    return others;
  }

  /** The run has ended: it no longer counts as streaming. */
  ended(runId: string): void {
    for (let i = 0; i < this.recent.length; i++) if (this.recent[i]?.runId === runId) this.recent[i] = null;
  }

  /** Sends whatever waits now, without its hold (a run that must be fully stored, e.g. before it ends). */
  expedite(): void {
    if (this.waiting.length === 0) return;
    this.due = true;
    this.next();
  }

  /** Starts a statement for the waiting batches when they are due and a slot is free, or their hold. */
  private next() {
    if (this.waiting.length === 0 || this.inFlight >= this.maxInFlight) return;
    if (this.due) {
      if (this.hold) clearTimeout(this.hold);
      this.hold = null;
      void this.run();
    } else {
      this.hold ??= setTimeout(() => {
        this.hold = null;
        this.expedite();
      }, this.holdMs);
    }
  }

  private async run() {
    this.inFlight++;
    // Let batches appended in the same tick join the first statement.
    await Promise.resolve();
    try {
      while (this.waiting.length > 0 && this.due) {
        const group = this.waiting;
        this.waiting = [];
        this.due = false;
        const settle = (g: (typeof group)[number], kept: ReadonlySet<string>) =>
          g.done(kept.has(g.batch.runId) ? undefined : new LeaseLostError(g.batch.runId));
        try {
          const kept = await this.write(group.map((g) => g.batch));
          for (const g of group) settle(g, kept);
        } catch (err) {
          if (group.length === 1) {
            group[0]!.done(err);
            continue;
          }
          // One run's failure (say, a run deleted meanwhile) must not fail the others: write them one by one.
          for (const g of group) await this.write([g.batch]).then((kept) => settle(g, kept), (e: unknown) => g.done(e));
        }
      }
    } finally {
      this.inFlight--;
      this.next(); // batches held meanwhile start their hold
    }
  }

  /**
   * Stores the batches in one statement and returns the runs whose batch was stored: those whose lease is
   * still the batch's. The lease is checked by the UPDATE of the run's row, which waits for a claim of the
   * same row in flight and then sees the claim's outcome; a run it does not update gets no rows and no
   * notification. Each run has at most one batch here (its writer sends the next once this one is stored).
   */
  private async write(batches: StoredBatch[]): Promise<ReadonlySet<string>> {
    const rows = batches.flatMap((b) =>
      b.events.map((e) => ({ runId: e.runId, seq: e.seq, type: e.type, payload: e.payload, createdAt: utcWall(e.createdAt) })),
    );
    const messages = batches.flatMap((b) => b.messages);
    const p = new SqlParams();
    if (rows.length === 0) {
      // Announcements only: nothing is stored, so there is no lease to check.
      const notes = statementNotifications(this.bus, messages, p);
      if (this.bus.encode) await this.query(`SELECT ${notes.sql}`, p.values);
      await notes.publishAfter();
      return new Set(batches.map((b) => b.runId));
    }
    const stored = batches.filter((b) => b.events.length > 0);
    const runs = `unnest(${p.add(stored.map((b) => b.runId))}::uuid[], ${p.add(stored.map((b) => b.lease.owner))}::text[],
                        ${p.add(stored.map((b) => b.lease.attempt))}::int[], ${p.add(stored.map((b) => b.events.at(-1)!.seq))}::int[])
                   AS l(id, owner, attempt, last)`;
    const eventRows = `jsonb_to_recordset(${p.add(JSON.stringify(rows))}::jsonb)
                   AS x("runId" uuid, seq int, type "RunEventType", payload jsonb, "createdAt" timestamp(3))`;
    // A batch without events (announcements only) is sent whatever happens to the others.
    const notes = statementNotifications(this.bus, messages, p, {
      keys: batches.flatMap((b) => b.messages.map(() => (b.events.length > 0 ? b.runId : null))),
      kept: 'SELECT id::text FROM upd',
    });
    // The runs' rows are updated in whatever order the plan takes them: no other statement waits for one
    // run's row while holding another's (the lease renewal skips the rows it cannot lock at once), so two
    // statements cannot deadlock over them.
    const [result] = await this.query<{ kept: string[] }>(
      `WITH upd AS (
         UPDATE "AgentRun" r SET "lastSeq" = l.last FROM ${runs}
          WHERE r.id = l.id AND r."leaseOwner" = l.owner AND r.attempts = l.attempt
          RETURNING r.id),
       ins AS (
         INSERT INTO "RunEvent" ("runId", seq, type, payload, "createdAt")
         SELECT x."runId", x.seq, x.type, x.payload, x."createdAt" FROM ${eventRows} JOIN upd ON upd.id = x."runId")
       SELECT ARRAY(SELECT id::text FROM upd) AS kept, ${notes.sql} AS sent`,
      p.values,
    );
    const kept = new Set(result!.kept);
    await notes.publishAfter(kept);
    for (const b of batches) if (b.events.length === 0) kept.add(b.runId);
    return kept;
  }
}

/**
 * Appends one run's events: persisted first, then announced. Group commit: the first event goes out at
 * once; events arriving while a write is in flight are batched into the next write, and consecutive
 * TOKEN deltas merge into one row. Batches go through the process's EventLog, which stores the batches of
 * all runs together.
 */
export class RunEventWriter {
  private pending: { type: RunEventType; payload: Record<string, unknown> }[] = [];
  private announcements: Announcement[] = [];
  private inFlight: Promise<void> | null = null;
  private failed: unknown = null;
  /** Whether a TOKEN of this run is stored: its first one is urgent, later ones may be held. */
  private tokenStored = false;
  private flushing = 0;

  constructor(
    private readonly log: EventLog,
    readonly runId: string,
    /** Highest seq already stored for the run (AgentRun.lastSeq). */
    private seq: number,
    /**
     * The lease appended events are stored under (a writer without one only writes `finish`, whose update
     * carries its own condition). `onLost` is called once if a batch finds the lease gone.
     */
    private readonly lease?: RunLease & { onLost?: () => void },
  ) {}

  get lastSeq() {
    return this.seq + this.pending.length;
  }

  /**
   * Queues an event. A `deferred` one takes its seq now but starts no statement of its own: it is stored with
   * the next event that does (or by `flush`/`finish`), so a note written just before a provider request (which
   * attempt starts, on which model) neither delays the request nor costs a statement.
   */
  append(type: RunEventType, payload: Record<string, unknown>, opts: { deferred?: boolean } = {}): void {
    if (!this.lease) throw new Error('Only the worker holding a run\'s lease appends its events');
    if (this.failed) return; // refused (its flush says why): nothing more is sent
    const last = this.pending.at(-1);
    if (type === 'TOKEN' && last?.type === 'TOKEN') {
      last.payload = { text: String(last.payload.text) + String(payload.text) };
    } else {
      this.pending.push({ type, payload });
    }
    if (!this.inFlight && !opts.deferred) this.inFlight = this.drain();
  }

  /** Sends `payload` on `channel` together with the next batch of events (after they are stored). */
  announce(channel: string, payload: unknown): void {
    if (this.failed) return;
    this.announcements.push([channel, payload]);
    if (!this.inFlight) this.inFlight = this.drain();
  }

  /** Resolves once every appended event is stored and announced; rethrows a storage failure. */
  async flush(): Promise<void> {
    this.flushing++;
    try {
      // Deferred events wait for a statement: this is it.
      if (!this.inFlight && this.pending.length > 0 && !this.failed) this.inFlight = this.drain();
      if (this.inFlight) this.log.expedite();
      while (this.inFlight) await this.inFlight;
    } finally {
      this.flushing--;
    }
    if (this.failed) throw this.failed;
  }

  /**
   * Stores a final event and the run's own row change in ONE statement, so a subscriber who sees the
   * terminal event always finds the run finished. `update` builds an `UPDATE "AgentRun" … RETURNING id`
   * whose WHERE decides whether it applies (e.g. the lease is still ours); when it matches no row, nothing
   * is written or announced and this returns false. `announce` goes out only when it applied.
   */
  async finish(
    type: RunEventType,
    payload: Record<string, unknown>,
    update: (p: SqlParams, seq: number) => string,
    announce: Announcement[] = [],
  ): Promise<boolean> {
    const done = await this.finishWithin(this.log.query, type, payload, update, announce);
    if (done.applied) await done.publish();
    return done.applied;
  }

  /**
   * `finish` on `query`, e.g. a transaction's, that publishes only when told: call `publish` once the
   * statement has committed (PostgreSQL's own notifications wait for the commit by themselves).
   */
  async finishWithin(
    query: SqlQuery,
    type: RunEventType,
    payload: Record<string, unknown>,
    update: (p: SqlParams, seq: number) => string,
    announce: Announcement[] = [],
  ): Promise<{ applied: boolean; publish: () => Promise<void> }> {
    const refused = { applied: false, publish: async () => {} };
    try {
      await this.flush();
    } catch (err) {
      if (err instanceof LeaseLostError) return refused; // the update's condition would not hold either
      throw err;
    }
    const seq = this.seq + 1;
    const createdAt = new Date();
    const event: RunEventRecord = { runId: this.runId, seq, type, payload, createdAt };
    const p = new SqlParams();
    const updateSql = update(p, seq);
    // A long final event (say, a provider's error page) is not inlined: subscribers read it from the database.
    const hint: RunEventHint = Buffer.byteLength(JSON.stringify(payload)) < INLINE_LIMIT_BYTES ? { seq, events: [event] } : { seq };
    const notes = statementNotifications(this.log.bus, [[runChannel(this.runId), hint], ...announce], p);
    const rows = await query(
      `WITH upd AS (${updateSql}),
       ev AS (INSERT INTO "RunEvent" ("runId", "seq", "type", "payload", "createdAt")
              SELECT upd.id, ${p.add(seq)}, ${p.add(type)}::"RunEventType", ${p.add(JSON.stringify(payload))}::jsonb, ${p.add(utcWall(createdAt))}::timestamp(3)
              FROM upd RETURNING 1)
       SELECT 1 AS applied, ${notes.sql} FROM ev`,
      p.values,
    );
    if (rows.length === 0) return refused;
    this.seq = seq;
    this.log.ended(this.runId);
    return { applied: true, publish: () => notes.publishAfter() };
  }

  private async drain(): Promise<void> {
    // Let whatever the caller appends or announces in the same tick join the first batch.
    await Promise.resolve();
    try {
      while (this.pending.length > 0 || this.announcements.length > 0) {
        const batch = this.pending;
        const announcements = this.announcements;
        this.pending = [];
        this.announcements = [];
        const first = this.seq + 1;
        const lastSeq = first + batch.length - 1;
        const createdAt = new Date();
        const events: RunEventRecord[] = batch.map((e, i) => ({ runId: this.runId, seq: first + i, type: e.type, payload: e.payload, createdAt }));
        const hint: RunEventHint = { seq: lastSeq };
        if (events.length > 0 && Buffer.byteLength(JSON.stringify(batch)) < INLINE_LIMIT_BYTES) hint.events = events;
        const urgent = this.flushing > 0 || announcements.length > 0 || !this.tokenStored || batch.some((e) => e.type !== 'TOKEN');
        const messages: Announcement[] = events.length > 0 ? [[runChannel(this.runId), hint], ...announcements] : announcements;
        await this.log.store({ runId: this.runId, lease: this.lease!, events, messages }, urgent);
        this.seq = lastSeq;
        if (batch.some((e) => e.type === 'TOKEN')) this.tokenStored = true;
      }
    } catch (err) {
      this.failed = err;
      // Whatever comes later is refused too: drop it rather than send it.
      this.pending = [];
      this.announcements = [];
      if (err instanceof LeaseLostError) this.lease?.onLost?.();
    } finally {
      this.inFlight = null;
    }
  }
}
