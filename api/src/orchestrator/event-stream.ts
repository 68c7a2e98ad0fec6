import type { PrismaClient } from '../lib/db.js';
import type { EventBus } from '../lib/pubsub.js';
import { runChannel, type RunEventHint, type RunEventRecord } from './events.js';

export async function readRunEvents(prisma: PrismaClient, runId: string, afterSeq: number, limit = 500) {
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
 * Every event of a run with seq > afterSeq, exactly once and in order: stored ones first, then live ones,
 * with no gap between the two (the bus subscription opens before the first read, and any hole in what
 * the bus delivers is filled from the database). Ends after the run's terminal status event.
 */
export async function* streamRunEvents(
  prisma: PrismaClient,
  bus: EventBus,
  runId: string,
  afterSeq: number,
  signal?: AbortSignal,
): AsyncGenerator<RunEventRecord> {
  let delivered = afterSeq;
  let mustRead = true; // replay first
  let inbox: RunEventRecord[] = [];
  let wake: (() => void) | null = null;
  let dirty = false; // something arrived since the loop last looked
  const unsubscribe = await bus.subscribe(runChannel(runId), (raw) => {
    const hint = raw as RunEventHint | null;
    dirty = true;
    if (hint?.events) inbox.push(...hint.events.map((e) => ({ ...e, createdAt: new Date(e.createdAt) })));
    // No events inline, or a bus reconnect (null): what we missed is in the database.
    else mustRead = true;
    wake?.();
  });
  const onAbort = () => wake?.();
  signal?.addEventListener('abort', onAbort);
  try {
    while (!signal?.aborted) {
      dirty = false;
      inbox = inbox.filter((e) => e.seq > delivered);
      let batch: RunEventRecord[] = [];
      if (inbox[0]?.seq === delivered + 1) {
        inbox.sort((a, b) => a.seq - b.seq);
        batch = inbox;
        inbox = [];
      } else if (mustRead || inbox.length > 0) {
        // Either asked to, or the inbox starts after a hole: read the missing range.
        mustRead = false;
        batch = await readRunEvents(prisma, runId, delivered);
        if (batch.length === 500) mustRead = true;
      }
      for (const e of batch) {
        if (e.seq !== delivered + 1) break;
        delivered = e.seq;
        yield e;
        if (isTerminalEvent(e)) return;
      }
      if (batch.length === 0) {
        // Resuming at (or past) the end of a finished run: nothing more will ever come.
        const run = await prisma.agentRun.findUnique({ where: { id: runId }, select: { status: true, lastSeq: true } });
        if (!run || (TERMINAL_STATUSES.includes(run.status) && run.lastSeq <= delivered)) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (dirty || mustRead || signal?.aborted) resolve();
        });
        wake = null;
      }
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await unsubscribe();
  }
}
