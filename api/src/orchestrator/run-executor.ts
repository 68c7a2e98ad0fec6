import type { Prisma } from '../_generated/prisma/client.js';
import type { RunStatus } from '../_generated/prisma/enums.js';
import type { Database, SqlQuery } from '../lib/db.js';
import type { Logger } from '../lib/logger.js';
import type { EventBus } from '../lib/pubsub.js';
import { utcWall, type SqlParams } from '../lib/sql.js';
import {
  executeCompletion,
  prepareAttempt,
  ProviderError,
  apiKeyVariable,
  type CompletionRequest,
  type PreparedAttempt,
  type AttemptInfo,
  type AttemptOutcome,
  type AttemptRecord,
  type ChainEntry,
  type CircuitBreaker,
  type ExecuteResult,
  type ProviderId,
  type ProviderRegistry,
  type RetryPolicy,
  type TokenUsage,
} from '../providers/index.js';
import { projectChannel, RunEventWriter, type Announcement, type EventLog } from './events.js';
import type { JobOutcome, RunQueue } from './queue.js';

/** A worker renews its lease every third of it; a lease that lapses means the worker is gone. */
export const DEFAULT_LEASE_MS = 30_000;
/**
 * How long a worker has to end a run its user cancelled: cancelRun shortens the run's lease to this, so a
 * run whose worker is dead (or never heard the request) is ended CANCELLED by the next recovery sweep rather
 * than after its whole lease. A live worker ends it within milliseconds, and its renewals extend the lease.
 */
export const CANCEL_GRACE_MS = 2_000;
export const cancelChannel = (runId: string) => `cancel:${runId}`;

/** Budget admission for each provider attempt (see modules/budgets). Throwing RunBlockedError blocks the run. */
export interface AttemptBudget {
  /**
   * Names the allowance this process leases for its attempts' holds; the process's worker takes it as its id,
   * so a run's `leaseOwner` names the lease its attempts were held in (see `chargeLapsed`).
   */
  readonly holder: string;
  /** Holds the attempt's worst-case cost; returns an opaque handle for settle. */
  reserve(run: RunContext, attempt: AttemptInfo): Promise<unknown>;
  /** Records the attempt in the usage ledger and settles its hold to the actual cost. */
  settle(handle: unknown, run: RunContext, attempt: AttemptInfo, outcome: AttemptOutcome): Promise<void>;
  /** Keeps a live run's holds alive (called with the lease heartbeat). */
  extend(runId: string): Promise<void>;
  /** Frees holds of runs whose worker died, or that expired. */
  releaseHolds(where: { runId?: string; expiredBefore?: Date }): Promise<number>;
  /**
   * Records, on `query` (the transaction that takes a lapsed run back), the attempts its dead worker did not
   * settle, charged to the budgets out of `holder`'s lease, which still holds them; a row already recorded
   * for the run, claim and attempt adds nothing. Returns the cost recorded.
   */
  chargeLapsed(query: SqlQuery, holder: string, attempts: LapsedAttempt[]): Promise<bigint>;
}

/** An attempt of a claim whose worker died before settling it, as the recovery sweep records it (estimated). */
export interface LapsedAttempt {
  organizationId: string;
  projectId: string;
  agentId: string;
  runId: string;
  /** The claim that made it: the run's `attempts` when its worker died. */
  claim: number;
  attempt: number;
  provider: ProviderId;
  model: string;
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
  costMicros: string;
}

/** Thrown by an AttemptBudget to end a run as BLOCKED rather than FAILED. */
export class RunBlockedError extends Error {
  constructor(
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'RunBlockedError';
  }
}

export interface RunContext {
  runId: string;
  organizationId: string;
  projectId: string;
  agentId: string;
  /**
   * The claim executing it (the run's `attempts` then). Its settlements name it, so that a worker stalled past
   * its lease, whose attempt the recovery sweep has estimated meanwhile, replaces the estimate instead of
   * adding to it. Absent for attempts outside a claimed run (benchmarks and tests of the guard alone).
   */
  claim?: number;
}

export interface ExecutorDeps {
  db: Pick<Database, 'prisma' | 'query' | 'transaction'>;
  events: EventLog;
  bus: EventBus;
  logger: Logger;
  providers: ProviderRegistry;
  breaker: CircuitBreaker;
  retry: RetryPolicy;
  budget: AttemptBudget;
  workerId: string;
  /** Most RUNNING runs one organization may have, across every process. */
  perOrgCap: number;
  leaseMs?: number;
  /** Renews the leases of the runs this worker executes. */
  leases: LeaseKeeper;
  /** Where a run goes back to when this worker hands it over (see `stopping`). */
  queue: RunQueue;
  /**
   * Aborted when this worker shuts down and hands over the runs it still executes: each stops its provider
   * request and goes back to the queue at once, to start over on another worker, instead of waiting for
   * its lease to lapse.
   */
  stopping?: AbortSignal;
}

/**
 * Keeps this worker's leases alive: every third of the lease, one statement renews the lease of every run
 * the worker is executing (not one statement per run), and their budget holds are kept alive with them.
 * A run another worker took over (its lease had lapsed: the database was out of reach, the process stalled)
 * is not renewed, since the statement matches the owner: its `onLost` is called, so that its provider
 * request stops rather than paying for output the run's new worker is producing again. A run whose row is
 * busy (its events being stored) is renewed again a few milliseconds later rather than waited for.
 */
export class LeaseKeeper {
  /** Runs held, with what to do if their lease turns out lost. */
  private readonly runs = new Map<string, () => void>();
  private timer: NodeJS.Timeout | null = null;
  private renewing: Promise<void> | null = null;

  constructor(
    private readonly deps: Pick<ExecutorDeps, 'budget' | 'logger' | 'workerId'> & { db: Pick<Database, 'query'> },
    private readonly leaseMs = DEFAULT_LEASE_MS,
  ) {}

  /** Renews the run's lease until the returned function is called. */
  hold(runId: string, onLost: () => void = () => {}): () => void {
    this.runs.set(runId, onLost);
    if (!this.timer) {
      this.timer = setInterval(() => void this.renew(), this.leaseMs / 3);
      this.timer.unref();
    }
    return () => {
      this.runs.delete(runId);
      if (this.runs.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    };
  }

  /** Renews every held lease now (a renewal still on its way is not started twice). */
  renew(): Promise<void> {
    if (this.renewing || this.runs.size === 0) return this.renewing ?? Promise.resolve();
    const ids = [...this.runs.keys()];
    this.renewing = (async () => {
      try {
        await Promise.all(ids.map((id) => this.deps.budget.extend(id)));
        let pending = ids;
        for (let round = 0; pending.length > 0; round++) {
          const [row] = await this.deps.db.query<{ renewed: string[] | null; busy: string[] | null }>(RENEW_LEASES, [
            utcWall(new Date(Date.now() + this.leaseMs)),
            pending,
            this.deps.workerId,
          ]);
          const renewed = new Set(row!.renewed ?? []);
          const busy = new Set(row!.busy ?? []);
          for (const id of pending) {
            // Still held (a run that ended meanwhile has let go of its lease, and is no longer here).
            const onLost = renewed.has(id) || busy.has(id) ? undefined : this.runs.get(id);
            if (!onLost) continue;
            this.runs.delete(id);
            this.deps.logger.warn({ runId: id }, 'lease lost: another worker took the run over; stopping it here');
            onLost();
          }
          // A run whose row a statement holds right now (its events being stored): again in a moment.
          pending = pending.filter((id) => busy.has(id) && this.runs.has(id));
          if (pending.length > 0 && round >= BUSY_RETRIES) {
            this.deps.logger.warn({ runs: pending.length }, 'lease renewal: runs still busy, left for the next renewal');
            break;
          }
          if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 5 * 2 ** round));
        }
      } catch (err) {
        this.deps.logger.warn({ err, runs: ids.length }, 'lease renewal failed');
      } finally {
        this.renewing = null;
      }
    })();
    return this.renewing;
  }
}

/** Rounds of renewal for runs whose rows stay busy (5 ms, then twice as long each time: about 5 s in all). */
const BUSY_RETRIES = 10;

/**
 * Renews the leases of the worker's runs it can lock at once, and names those it cannot (`busy`: still the
 * worker's, but a statement holds the row, say the one storing the run's events). It never waits for a row,
 * so it cannot deadlock with a statement that holds one run's row and waits for another's. Runs in neither
 * list are no longer the worker's.
 */
const RENEW_LEASES = `WITH mine AS (
     SELECT id FROM "AgentRun" WHERE id = ANY($2::uuid[]) AND "leaseOwner" = $3 FOR NO KEY UPDATE SKIP LOCKED),
   upd AS (
     UPDATE "AgentRun" r SET "leaseExpiresAt" = $1::timestamp(3) FROM mine WHERE r.id = mine.id RETURNING r.id)
   SELECT (SELECT array_agg(id::text) FROM upd) AS renewed,
          (SELECT array_agg(id::text) FROM "AgentRun"
            WHERE id = ANY($2::uuid[]) AND "leaseOwner" = $3 AND id NOT IN (SELECT id FROM upd)) AS busy`;

/** What a claim returns about the run and its agent: everything the executor needs, in the same round trip. */
export interface ClaimedRun {
  run: { id: string; organizationId: string; projectId: string; agentId: string; input: string; attempts: number; lastSeq: number; cancelRequested: boolean };
  agent: { provider: ProviderId; model: string; systemPrompt: string; temperature: number | null; maxOutputTokens: number; fallbackChain: Prisma.JsonValue };
  /** The claim stored the run's RUNNING event (and its statement announced it): hub_start_run does. */
  runningStored?: boolean;
}

export type ClaimOutcome = { outcome: 'gone' | 'busy' } | ({ outcome: 'claimed' } & ClaimedRun);

/**
 * QUEUED → RUNNING under a per-organization advisory lock, so N processes together never exceed the
 * organization's cap (each process's queue also caps itself; this is the cross-process guarantee). One
 * round trip: the `hub_claim_run` function (see its migration) locks, counts, claims and returns the run.
 */
async function claimRun(query: SqlQuery, runId: string, workerId: string, perOrgCap: number, leaseMs: number, now = new Date()): Promise<ClaimOutcome> {
  const [row] = await query<{ claim: ClaimOutcome }>('SELECT hub_claim_run($1::uuid, $2, $3::int, $4::int, $5::timestamp(3)) AS claim', [
    runId,
    workerId,
    perOrgCap,
    leaseMs,
    utcWall(now),
  ]);
  return row!.claim;
}

/** A subscription to a run's cancel requests, taken before its claim: one requested earlier is in the claimed row, a later one arrives here. */
export interface CancelListener {
  signal: AbortSignal;
  /** Cancels from within (the claimed row says a cancel was requested). */
  abort(): void;
  stop(): Promise<void>;
}

export async function listenForCancel(bus: EventBus, query: SqlQuery, runId: string): Promise<CancelListener> {
  const abort = new AbortController();
  const stop = await bus.subscribe(cancelChannel(runId), (message) => {
    if (message !== null) return abort.abort();
    // The bus reconnected (a database restart, say) and may have missed a request: the run's row says.
    void query<{ cancelRequested: boolean }>('SELECT "cancelRequested" FROM "AgentRun" WHERE id = $1::uuid', [runId]).then(
      ([row]) => row?.cancelRequested && abort.abort(),
      () => {}, // out of reach still: the run's next claim reads the flag
    );
  });
  return { signal: abort.signal, abort: () => abort.abort(), stop };
}

export function parseChain(provider: ProviderId, model: string, fallback: Prisma.JsonValue): ChainEntry[] {
  const rest = Array.isArray(fallback)
    ? fallback.flatMap((f) =>
        f && typeof f === 'object' && 'provider' in f && 'model' in f ? [{ provider: f.provider as ProviderId, model: String(f.model) }] : [],
      )
    : [];
  return [{ provider, model }, ...rest];
}

/** The prompt a run sends its agent's providers. */
export function runPrompt(input: string, agent: Pick<ClaimedRun['agent'], 'systemPrompt'>): Pick<CompletionRequest, 'system' | 'messages'> {
  return { system: agent.systemPrompt || undefined, messages: [{ role: 'user', content: input }] };
}

/** What a run asks of its agent's providers (each chain entry adds its model). */
function completionRequest(input: string, agent: ClaimedRun['agent'], signal: AbortSignal): Omit<CompletionRequest, 'model'> {
  return {
    ...runPrompt(input, agent),
    temperature: agent.temperature ?? undefined,
    maxOutputTokens: agent.maxOutputTokens,
    signal,
  };
}

/** A run's first provider request, built from the agent as last seen while the run's claim is on its way. */
export interface EarlyAttempt {
  agent: ClaimedRun['agent'];
  attempt: PreparedAttempt;
}

export function prepareEarly(providers: ProviderRegistry, agent: ClaimedRun['agent'], input: string, cancel: CancelListener): EarlyAttempt | null {
  const attempt = prepareAttempt(providers, { provider: agent.provider, model: agent.model }, completionRequest(input, agent, cancel.signal));
  return attempt && { agent, attempt };
}

/** Whether two versions of an agent make the same first request (its fallbacks do not matter to it). */
function sameFirstRequest(a: ClaimedRun['agent'], b: ClaimedRun['agent']): boolean {
  return (
    a.provider === b.provider &&
    a.model === b.model &&
    a.systemPrompt === b.systemPrompt &&
    a.temperature === b.temperature &&
    a.maxOutputTokens === b.maxOutputTokens
  );
}

/** A status change for dashboards watching the project, sent with the write that makes it true. */
export const statusAnnouncement = (projectId: string, runId: string, status: RunStatus): Announcement => [projectChannel(projectId), { runId, status }];

/** The provider attempt a run's row reports: the provider and model it ran on and the usage settled for it. */
interface ReportedAttempt {
  provider: ProviderId;
  model: string;
  usage: TokenUsage;
  /** `usage` is our estimate: the provider sent no usage report. */
  estimated?: boolean;
}

type FinalState = {
  status: RunStatus;
  error?: string;
  errorCode?: string;
  output?: string;
  details?: Record<string, unknown>;
  result?: ExecuteResult;
  /** For a run that did not succeed: its last provider attempt, if it made one. */
  lastAttempt?: ReportedAttempt;
};

/** Why a chain entry was skipped, in words (after "skipped: "). */
function skipDetail(skip: AttemptRecord): string {
  if (skip.skipReason === 'circuit_open') return 'circuit open after repeated failures';
  return skip.provider === 'OFFLINE' ? 'not configured' : `not configured (no ${apiKeyVariable(skip.provider)})`;
}

/** A chain entry's place, in words: the agent's own provider, or its nth fallback. */
const chainPlace = (chainIndex: number) => (chainIndex === 0 ? 'primary' : `fallback ${chainIndex}`);

/**
 * Runs one queued run to its end. Only the worker holding the run's lease writes to it; every final
 * update is conditional on still holding it, so a run recovered from a dead worker is never finished twice.
 * Returns 'busy' when the organization is at its cap, 'done' otherwise (also when the run was not
 * claimable: already taken, cancelled or finished).
 */
export async function executeRun(deps: ExecutorDeps, runId: string): Promise<JobOutcome> {
  const cancel = await listenForCancel(deps.bus, deps.db.query, runId);
  let claim: ClaimOutcome;
  try {
    claim = await claimRun(deps.db.query, runId, deps.workerId, deps.perOrgCap, deps.leaseMs ?? DEFAULT_LEASE_MS);
  } catch (err) {
    await cancel.stop();
    throw err;
  }
  if (claim.outcome !== 'claimed') {
    await cancel.stop();
    return claim.outcome === 'busy' ? 'busy' : 'done';
  }
  await executeClaimed(deps, claim, cancel);
  return 'done';
}

/**
 * Runs a run this worker has claimed (its lease is held) to its end; stops `cancel` when done. `early`, a
 * first request built before the claim came back, is sent if the claimed agent makes the same request
 * (and its budget allows it); otherwise it is dropped unsent.
 */
export async function executeClaimed(deps: ExecutorDeps, claim: ClaimedRun, cancel: CancelListener, early?: EarlyAttempt | null): Promise<void> {
  const { logger, workerId } = deps;
  const runId = claim.run.id;
  const { run, agent } = claim;
  if (run.cancelRequested) cancel.abort();
  const prepared = early && sameFirstRequest(early.agent, agent) ? early.attempt : undefined;
  if (!prepared) early?.attempt.discard();
  const rc: RunContext = { runId, organizationId: run.organizationId, projectId: run.projectId, agentId: run.agentId, claim: run.attempts };
  // Events are stored only under this claim's lease: once another worker holds the run, the next batch is
  // refused and the provider request stops (as when a renewal finds the lease gone, only sooner).
  const writer = new RunEventWriter(deps.events, runId, run.lastSeq, { owner: workerId, attempt: run.attempts, onLost: () => cancel.abort() });
  if (!claim.runningStored) {
    writer.append('STATUS', { status: 'RUNNING', attempt: run.attempts, worker: workerId });
    writer.announce(...statusAnnouncement(run.projectId, runId, 'RUNNING'));
  }

  // Another worker took the run over: stop the provider request (what it produced stays in the ledger);
  // the final update below then finds the lease gone and writes nothing.
  const releaseLease = deps.leases.hold(runId, () => cancel.abort());
  // This worker is shutting down: stop the provider request, and queue the run again below.
  let handedOver = false;
  const handOver = () => {
    handedOver = true;
    cancel.abort();
  };
  deps.stopping?.addEventListener('abort', handOver, { once: true });

  let output = '';
  let firstTokenAt: Date | null = null;
  let final: FinalState = { status: 'FAILED' };
  const holds = new Map<number, unknown>();
  /** The last provider attempt that ended, with its outcome: what a run that does not succeed reports. */
  let lastAttempt: { info: AttemptInfo; outcome: AttemptOutcome } | undefined;
  // Short names ("Offline", not "Offline (local, deterministic)") for the story's messages.
  const label = (provider: ProviderId) => deps.providers.get(provider).label.split(' (')[0];
  try {
    const result = await executeCompletion({
      chain: parseChain(agent.provider, agent.model, agent.fallbackChain),
      request: completionRequest(run.input, agent, cancel.signal),
      prepared,
      registry: deps.providers,
      retry: deps.retry,
      breaker: deps.breaker,
      onSkip: (skip) => {
        const detail = skipDetail(skip);
        writer.append('LOG', {
          kind: 'skip',
          provider: skip.provider,
          model: skip.model,
          chainIndex: skip.chainIndex,
          reason: skip.skipReason,
          detail,
          message: `${label(skip.provider)} ${skip.model} (${chainPlace(skip.chainIndex)}) skipped: ${detail}`,
        }, { deferred: true });
      },
      onAttemptStart: async (attempt) => {
        holds.set(attempt.number, await deps.budget.reserve(rc, attempt));
        // Once the budget admitted the attempt: the provider and model that stream from here on. The first
        // attempt's is deferred, so that it rides with its first token (or its error) instead of costing a
        // statement of its own on every run; should its worker die before that, the recovery sweep bills the
        // first attempt anyway. A retry's (rare) is stored at once: it tells the sweep that this attempt, on
        // this model, was sent, had its worker died before its first token.
        writer.append('LOG', {
          kind: 'attempt',
          provider: attempt.provider,
          model: attempt.model,
          chainIndex: attempt.chainIndex,
          attempt: attempt.number,
          attemptForEntry: attempt.attemptForEntry,
          message: `Attempt ${attempt.number}: ${label(attempt.provider)} ${attempt.model} (${chainPlace(attempt.chainIndex)}${attempt.attemptForEntry > 1 ? `, retry ${attempt.attemptForEntry - 1}` : ''})`,
        }, { deferred: attempt.number === 1 });
      },
      onAttemptEnd: async (attempt, outcome) => {
        lastAttempt = { info: attempt, outcome };
        await deps.budget.settle(holds.get(attempt.number) ?? null, rc, attempt, outcome);
        if (outcome.error && outcome.status === 'failed') {
          writer.append('ERROR', {
            message: outcome.error.message,
            kind: outcome.error.kind,
            provider: attempt.provider,
            model: attempt.model,
            attempt: attempt.number,
            chainIndex: attempt.chainIndex,
          });
        }
      },
      onDelta: (text) => {
        if (!firstTokenAt) firstTokenAt = new Date();
        output += text;
        writer.append('TOKEN', { text });
      },
    });
    writer.append('USAGE', {
      provider: result.provider,
      model: result.model,
      inputTokens: result.usage.inputTokens,
      cachedInputTokens: result.usage.cachedInputTokens,
      outputTokens: result.usage.outputTokens,
      costMicros: String(result.costMicros ?? 0n),
      attempts: result.attempts.filter((a) => a.number !== null).length,
      estimated: result.usageEstimated,
    });
    final = { status: 'SUCCEEDED', output: result.text, result };
  } catch (err) {
    if (handedOver) {
      final = { status: 'QUEUED' };
    } else if (err instanceof RunBlockedError) {
      final = { status: 'BLOCKED', error: err.message, errorCode: 'BUDGET_EXCEEDED', output, details: err.details };
      writer.append('ERROR', { message: err.message, code: 'BUDGET_EXCEEDED', ...err.details });
    } else if (cancel.signal.aborted || (err instanceof ProviderError && err.kind === 'aborted')) {
      final = { status: 'CANCELLED', error: 'Cancelled by a user', errorCode: 'CANCELLED', output };
    } else if (err instanceof ProviderError) {
      final = { status: 'FAILED', error: err.message, errorCode: `PROVIDER_${err.kind.toUpperCase()}`, output };
    } else {
      logger.error({ err, runId }, 'run crashed');
      final = { status: 'FAILED', error: 'Internal error while running the agent', errorCode: 'INTERNAL', output };
    }
  } finally {
    deps.stopping?.removeEventListener('abort', handOver);
    releaseLease();
    await cancel.stop();
  }

  if (final.status === 'QUEUED') {
    // Not a run its user cancelled meanwhile: that one ends CANCELLED here, as it would have anyway.
    const requeued = await requeueRun(
      deps,
      writer,
      run,
      `Worker ${workerId} shut down; retrying`,
      (p) => `"leaseOwner" = ${p.add(workerId)} AND attempts = ${p.add(run.attempts)} AND NOT "cancelRequested"`,
      { handover: true },
    );
    if (requeued) return;
    final = { status: 'CANCELLED', error: 'Cancelled by a user', errorCode: 'CANCELLED', output };
  }
  if (final.status !== 'SUCCEEDED' && final.errorCode !== 'INTERNAL' && lastAttempt) {
    // A run cut short still reports its last attempt: the provider it ran on and the usage settled for it,
    // which, with no usage report from the provider (say, it was cancelled while streaming), is our estimate.
    const { info, outcome } = lastAttempt;
    final.lastAttempt = { provider: info.provider, model: info.model, usage: outcome.usage, estimated: !outcome.usageReported };
    writer.append('USAGE', {
      provider: info.provider,
      model: info.model,
      inputTokens: outcome.usage.inputTokens,
      cachedInputTokens: outcome.usage.cachedInputTokens,
      outputTokens: outcome.usage.outputTokens,
      costMicros: String(outcome.costMicros ?? 0n),
      attempts: info.number,
      estimated: !outcome.usageReported,
    });
  }
  const finished = await writer.finish(
    'STATUS',
    { status: final.status, ...(final.error ? { error: final.error, errorCode: final.errorCode } : {}) },
    (p, seq) => finalUpdate(p, seq, runId, workerId, final, firstTokenAt),
    [statusAnnouncement(run.projectId, runId, final.status)],
  );
  if (!finished) logger.warn({ runId }, 'lease lost before the run finished; another worker owns it now');
}

/**
 * Puts a RUNNING run back in the queue, to start over on its next claim: its QUEUED event (with `reason`)
 * and row change, where `condition` (SQL over the run's row; `at` is the time as SQL) still holds, commit
 * together with its queue job, so the run is never left QUEUED without a job. Returns false, with nothing
 * written, when the condition did not hold. (The in-process queue keeps no jobs in the database: it is
 * given the job after the commit, and re-reads QUEUED runs when the process starts.)
 */
export async function requeueRun(
  deps: { db: Pick<Database, 'query' | 'transaction'>; queue: RunQueue },
  writer: RunEventWriter,
  run: { id: string; organizationId: string; projectId: string },
  reason: string,
  condition: (p: SqlParams, at: string) => string,
  {
    now = new Date(),
    beforeQueued = async () => {},
    fence,
    handover = false,
  }: {
    now?: Date;
    /** Runs once the run is QUEUED and before its job can be taken (e.g. to free a dead worker's holds). */
    beforeQueued?: () => Promise<unknown>;
    /**
     * Runs first, in the same transaction: false leaves the run as it is, with nothing written. (The recovery
     * sweep locks the run's row under its lapsed lease and records what the dead worker's attempt cost.)
     */
    fence?: (query: SqlQuery) => Promise<boolean>;
    /** Its worker hands it back as it shuts down: counted in `handovers`, not as a lost worker. */
    handover?: boolean;
  } = {},
): Promise<boolean> {
  const finish = (query: SqlQuery) =>
    writer.finishWithin(
      query,
      'STATUS',
      { status: 'QUEUED', reason },
      (p, seq) => {
        const at = `${p.add(utcWall(now))}::timestamp(3)`;
        return `UPDATE "AgentRun" SET status = 'QUEUED', "queuedAt" = ${at}, "leaseOwner" = NULL, "leaseExpiresAt" = NULL, "lastSeq" = ${p.add(seq)}${handover ? ', handovers = handovers + 1' : ''}
                WHERE id = ${p.add(run.id)}::uuid AND status = 'RUNNING' AND ${condition(p, at)}
                RETURNING id`;
      },
      [statusAnnouncement(run.projectId, run.id, 'QUEUED')],
    );
  const job = { runId: run.id, organizationId: run.organizationId };
  const { queue } = deps;
  const done =
    queue.durable || fence
      ? await deps.db.transaction(async (query) => {
          if (fence && !(await fence(query))) return { applied: false, publish: async () => {} };
          const d = await finish(query);
          if (d.applied && queue.durable) {
            await beforeQueued();
            await queue.enqueue(job, query);
          }
          return d;
        })
      : await finish(deps.db.query);
  if (!done.applied) return false;
  await done.publish();
  if (queue.durable) {
    queue.poke?.();
  } else {
    await beforeQueued();
    await queue.enqueue(job);
  }
  return true;
}

/**
 * The run's final row, written only while this worker still holds the lease. Its cost is the sum of its
 * ledger rows (every attempt, fallbacks and failures included), computed in the same statement.
 */
function finalUpdate(p: SqlParams, seq: number, runId: string, workerId: string, final: FinalState, firstTokenAt: Date | null) {
  const r: ReportedAttempt | undefined = final.result ? { ...final.result, estimated: final.result.usageEstimated } : final.lastAttempt;
  const id = p.add(runId);
  const set = [
    `status = ${p.add(final.status)}::"RunStatus"`,
    `output = ${p.add(final.output ?? null)}`,
    `error = ${p.add(final.error ?? null)}`,
    `"errorCode" = ${p.add(final.errorCode ?? null)}`,
    `"errorDetails" = ${p.add(final.details ? JSON.stringify(final.details) : null)}::jsonb`,
    `"firstTokenAt" = ${p.add(firstTokenAt ? utcWall(firstTokenAt) : null)}::timestamp(3)`,
    `"finishedAt" = ${p.add(utcWall(new Date()))}::timestamp(3)`,
    `"leaseOwner" = NULL`,
    `"leaseExpiresAt" = NULL`,
    `"lastSeq" = ${p.add(seq)}`,
    // An internal crash keeps whatever cost was recorded so far out of the run row, as before.
    ...(final.errorCode === 'INTERNAL' ? [] : [`"costMicros" = (SELECT coalesce(sum(u."costMicros"), 0) FROM "UsageRecord" u WHERE u."runId" = ${id}::uuid)`]),
    ...(r
      ? [
          `provider = ${p.add(r.provider)}::"Provider"`,
          `model = ${p.add(r.model)}`,
          `"inputTokens" = ${p.add(r.usage.inputTokens)}`,
          `"cachedInputTokens" = ${p.add(r.usage.cachedInputTokens)}`,
          `"outputTokens" = ${p.add(r.usage.outputTokens)}`,
          `"usageEstimated" = ${p.add(r.estimated === true)}`,
        ]
      : []),
  ];
  return `UPDATE "AgentRun" SET ${set.join(', ')}
          WHERE id = ${id}::uuid AND "leaseOwner" = ${p.add(workerId)} AND status = 'RUNNING' RETURNING id`;
}
