import type { Prisma } from '../_generated/prisma/client.js';
import type { RunEventType } from '../_generated/prisma/enums.js';
import type { PrismaClient } from '../lib/db.js';
import type { EventBus } from '../lib/pubsub.js';

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

/**
 * Appends one run's events: persisted first, then announced. Group commit: the first event goes out at
 * once; events arriving while a write is in flight are batched into the next write, and consecutive
 * TOKEN deltas merge into one row, so the database sees one insert per batch, not one per token.
 */
export class RunEventWriter {
  private pending: { type: RunEventType; payload: Record<string, unknown> }[] = [];
  private inFlight: Promise<void> | null = null;
  private failed: unknown = null;

  constructor(
    private readonly prisma: PrismaClient,
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

  /** Resolves once every appended event is stored and announced; rethrows a storage failure. */
  async flush(): Promise<void> {
    while (this.inFlight) await this.inFlight;
    if (this.failed) throw this.failed;
  }

  /**
   * Stores a final event together with the run's own row change, in one transaction, so a subscriber who
   * sees the terminal event always finds the run finished. `update` returns false to abandon (e.g. the
   * lease was lost), in which case nothing is written.
   */
  async finish(
    type: RunEventType,
    payload: Record<string, unknown>,
    update: (tx: Prisma.TransactionClient, seq: number) => Promise<boolean>,
  ): Promise<boolean> {
    await this.flush();
    const seq = this.seq + 1;
    const createdAt = new Date();
    const applied = await this.prisma.$transaction(async (tx) => {
      if (!(await update(tx, seq))) return false;
      await tx.runEvent.create({ data: { runId: this.runId, seq, type, payload: payload as Prisma.InputJsonValue, createdAt } });
      return true;
    });
    if (!applied) return false;
    this.seq = seq;
    await this.bus.publish(runChannel(this.runId), { seq, events: [{ runId: this.runId, seq, type, payload, createdAt }] } satisfies RunEventHint);
    return true;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        const first = this.seq + 1;
        const createdAt = new Date();
        const rows = batch.map((e, i) => ({
          runId: this.runId,
          seq: first + i,
          type: e.type,
          payload: e.payload as Prisma.InputJsonValue,
          createdAt,
        }));
        const lastSeq = first + batch.length - 1;
        await this.prisma.$transaction([
          this.prisma.runEvent.createMany({ data: rows }),
          this.prisma.agentRun.update({ where: { id: this.runId }, data: { lastSeq } }),
        ]);
        this.seq = lastSeq;
        const events = rows.map((r) => ({ ...r, payload: r.payload as Record<string, unknown> }));
        const hint: RunEventHint = { seq: lastSeq };
        if (JSON.stringify(events).length < INLINE_LIMIT_BYTES) hint.events = events;
        await this.bus.publish(runChannel(this.runId), hint);
      }
    } catch (err) {
      this.failed = err;
    } finally {
      this.inFlight = null;
    }
  }
}
