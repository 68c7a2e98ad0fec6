import type { Database } from '../lib/db.js';
import { costMicros, cutShortUsage, estimateInputTokens, hasPrice, type ProviderId } from '../providers/index.js';
import { runPrompt, type LapsedAttempt } from './run-executor.js';

/** A RUNNING run whose lease lapsed, as the recovery sweep read it. */
export interface LapsedRun {
  id: string;
  organizationId: string;
  projectId: string;
  agentId: string;
  input: string;
  /** Its claim: the worker that died holds the run's `attempts`-th claim. */
  attempts: number;
  lastSeq: number;
  /** When that claim was made (the claiming process's clock, as its ledger rows' createdAt). */
  startedAt: Date | null;
}

type Payload = Record<string, unknown>;

/**
 * The provider attempt a dead worker's claim may have been billed for and did not settle, estimated as an
 * attempt cut short is (`cutShortUsage`): the prompt's bound and the text the claim stored, priced with the
 * model its attempt note names. Read from the events up to the run's `lastSeq`, which the takeover checks.
 *
 * At most one: a claim's attempts run one after the other, and each is settled (its ledger row committed)
 * before its ERROR event is stored and before the next attempt starts. So what may be unsettled is the
 * claim's last attempt, unless the claim stored an ERROR for it, or its USAGE event (the run's end), or
 * its worker's ledger row for it is there (settled, then the worker died before storing the event).
 *
 * A claim that stored no attempt note (nothing, or only its RUNNING event) is charged its first attempt at
 * the prompt's bound with no output, on the agent's primary model: the request goes out right after the
 * claim commits and the budget admits it, without waiting for any event (the first attempt's note is stored with its first
 * token), so a worker that died before its first token may well have had its prompt billed. It is never
 * more than the hold the attempt took (see hub_budget_charge).
 */
export async function lapsedAttempts(db: Pick<Database, 'prisma'>, run: LapsedRun): Promise<LapsedAttempt[]> {
  const { prisma } = db;
  // Everything the claim stored follows its RUNNING event, the run's last STATUS event (the claim's, or the
  // previous one's QUEUED when it stored nothing).
  const start = await prisma.runEvent.findFirst({ where: { runId: run.id, type: 'STATUS' }, orderBy: { seq: 'desc' }, select: { seq: true } });
  const events = await prisma.runEvent.findMany({
    where: { runId: run.id, seq: { gt: start?.seq ?? 0, lte: run.lastSeq } },
    orderBy: { seq: 'asc' },
    select: { seq: true, type: true, payload: true },
  });
  const payload = (e: (typeof events)[number]) => (e.payload ?? {}) as Payload;
  // The run's end was under way (every attempt settled), or the budget refused the attempt before it was sent.
  if (events.some((e) => e.type === 'USAGE' || (e.type === 'ERROR' && payload(e).code === 'BUDGET_EXCEEDED'))) return [];
  const note = events.findLast((e) => e.type === 'LOG' && payload(e).kind === 'attempt');
  const attempt = note ? Number(payload(note).attempt) : 1;
  if (note && events.some((e) => e.type === 'ERROR' && payload(e).attempt === attempt)) return [];

  const agent = await prisma.agent.findUnique({ where: { id: run.agentId }, select: { provider: true, model: true, systemPrompt: true, maxOutputTokens: true } });
  if (!agent) return [];
  const provider = note ? (String(payload(note).provider) as ProviderId) : agent.provider;
  const model = note ? String(payload(note).model) : agent.model;
  // No price known: the budget refuses such an attempt, so it was never sent.
  if (!hasPrice(provider, model)) return [];
  const settled = await prisma.usageRecord.count({ where: { runId: run.id, attempt, createdAt: { gte: run.startedAt ?? new Date(0) } } });
  if (settled > 0) return [];

  const text = note
    ? events
        .filter((e) => e.type === 'TOKEN' && e.seq > note.seq)
        .map((e) => String(payload(e).text ?? ''))
        .join('')
    : '';
  const usage = cutShortUsage({ provider, model }, estimateInputTokens(runPrompt(run.input, agent)), text, agent.maxOutputTokens);
  return [
    {
      organizationId: run.organizationId,
      projectId: run.projectId,
      agentId: run.agentId,
      runId: run.id,
      claim: run.attempts,
      attempt,
      provider,
      model,
      ...usage,
      costMicros: costMicros(provider, model, usage).toString(),
    },
  ];
}
