import type { RunEventType } from '../_generated/prisma/enums.js';
import type { SqlQuery } from '../lib/db.js';
import { statementNotifications, type EventBus, type StatementNotifications } from '../lib/pubsub.js';
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

/** A message for another channel that goes out with the run's next stored batch (e.g. a project's status feed). */
export type Announcement = [channel: string, payload: unknown];

/**
 * Appends one run's events: persisted first, then announced. Group commit: the first event goes out at
 * once; events arriving while a write is in flight are batched into the next write, and consecutive
 * TOKEN deltas merge into one row. Each batch is ONE statement: the rows, the run's `lastSeq` and, on
 * PostgreSQL, the notifications (delivered by PostgreSQL only once the statement has committed).
 */
export class RunEventWriter {
  private pending: { type: RunEventType; payload: Record<string, unknown> }[] = [];
  private announcements: Announcement[] = [];
  private inFlight: Promise<void> | null = null;
  private failed: unknown = null;

  constructor(
    private readonly query: SqlQuery,
    private readonly bus: EventBus,
    readonly runId: string,
    /** Highest seq already stored for the run (AgentRun.lastSeq). */
    private seq: number,
  ) {}

  get lastSeq() {
    return this.seq + this.pending.length;
  }

  append(type: RunEventType, payload: Record<string, unknown>): void {
    const last = this.pending.at(-1);
    if (type === 'TOKEN' && last?.type === 'TOKEN') {
      last.payload = { text: String(last.payload.text) + String(payload.text) };
    } else {
      this.pending.push({ type, payload });
    }
    if (!this.inFlight) this.inFlight = this.drain();
  }

  /** Sends `payload` on `channel` together with the next batch of events (after they are stored). */
  announce(channel: string, payload: unknown): void {
    this.announcements.push([channel, payload]);
    if (!this.inFlight) this.inFlight = this.drain();
  }

  /** Resolves once every appended event is stored and announced; rethrows a storage failure. */
  async flush(): Promise<void> {
    while (this.inFlight) await this.inFlight;
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
    await this.flush();
    const seq = this.seq + 1;
    const createdAt = new Date();
    const event: RunEventRecord = { runId: this.runId, seq, type, payload, createdAt };
    const p = new SqlParams();
    const updateSql = update(p, seq);
    const notes = statementNotifications(this.bus, [[runChannel(this.runId), { seq, events: [event] } satisfies RunEventHint], ...announce], p);
    const rows = await this.query(
      `WITH upd AS (${updateSql}),
       ev AS (INSERT INTO "RunEvent" ("runId", "seq", "type", "payload", "createdAt")
              SELECT upd.id, ${p.add(seq)}, ${p.add(type)}::"RunEventType", ${p.add(JSON.stringify(payload))}::jsonb, ${p.add(utcWall(createdAt))}::timestamp(3)
              FROM upd RETURNING 1)
       SELECT ${['1 AS applied', ...notes.sql].join(', ')} FROM ev`,
      p.values,
    );
    if (rows.length === 0) return false;
    this.seq = seq;
    await notes.publishAfter();
    return true;
  }

  private async drain(): Promise<void> {
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
        const inline = JSON.stringify(batch);
        if (inline.length < INLINE_LIMIT_BYTES) hint.events = events;
        const p = new SqlParams();
        let notes: StatementNotifications;
        if (batch.length > 0) {
          const runId = p.add(this.runId);
          const statement = `WITH ins AS (
               INSERT INTO "RunEvent" ("runId", "seq", "type", "payload", "createdAt")
               SELECT ${runId}::uuid, ${p.add(first)}::int + e.o::int - 1, (e.v->>'type')::"RunEventType", e.v->'payload', ${p.add(utcWall(createdAt))}::timestamp(3)
               FROM jsonb_array_elements(${p.add(inline)}::jsonb) WITH ORDINALITY AS e(v, o)),
             upd AS (UPDATE "AgentRun" SET "lastSeq" = ${p.add(lastSeq)} WHERE id = ${runId}::uuid)`;
          notes = statementNotifications(this.bus, [[runChannel(this.runId), hint], ...announcements], p);
          await this.query(`${statement} SELECT ${['1', ...notes.sql].join(', ')}`, p.values);
          this.seq = lastSeq;
        } else {
          notes = statementNotifications(this.bus, announcements, p);
          if (notes.sql.length > 0) await this.query(`SELECT ${notes.sql.join(', ')}`, p.values);
        }
        await notes.publishAfter();
      }
    } catch (err) {
      this.failed = err;
    } finally {
      this.inFlight = null;
    }
  }
}
