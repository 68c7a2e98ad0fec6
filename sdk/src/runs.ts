import {
  CancelRunDocument,
  ProjectRunUpdatesDocument,
  ProjectRunsDocument,
  RetryRunDocument,
  RunDocument,
  RunProgressDocument,
  RunEventPageDocument,
  RunEventsDocument,
  StartRunDocument,
  type ProjectRunUpdatesSubscription,
  type Provider,
  type RunEventFragment,
  type RunEventType,
  type RunFilter,
  type RunFragment,
  type RunStatus,
  type StartRunInput,
} from './_generated/graphql.js';
import { BudgetExceededError, NetworkError, NotFoundError, RateLimitedError, unwrap } from './errors.js';
import { paginate, toPage, type Paginated } from './pagination.js';
import type { RequestOptions, Transport } from './transport.js';

export type Run = RunFragment;

/** What every run event has, whatever its type. */
interface RunEventBase<T extends RunEventType> {
  __typename: 'RunEvent';
  /** Starts at 1, with no gaps. */
  seq: number;
  type: T;
  createdAt: string;
}

/** A status change. RUNNING carries the claim number (`attempt` > 1: the run starts over, see `startsOver`). */
export interface RunStatusEvent extends RunEventBase<'STATUS'> {
  status: RunStatus;
  text: null;
  payload: {
    status: RunStatus;
    /** RUNNING: which claim of the run this is (1, then 2 or 3 after its worker stopped responding). */
    attempt?: number;
    /** RUNNING: the worker that claimed it. */
    worker?: string;
    /** QUEUED again: why (e.g. its worker shut down). */
    reason?: string;
    /** FAILED, CANCELLED, BLOCKED: what ended it, as the run's `error` and `errorCode`. */
    error?: string;
    errorCode?: string;
  };
}

/** Streamed output text. */
export interface RunTokenEvent extends RunEventBase<'TOKEN'> {
  text: string;
  status: null;
  payload: { text: string };
}

/** The usage of the run's last provider attempt, stored as the run ends. */
export interface RunUsageEvent extends RunEventBase<'USAGE'> {
  text: null;
  status: null;
  payload: {
    provider: Provider;
    model: string;
    inputTokens: number;
    cachedInputTokens: number;
    outputTokens: number;
    /** Micro-dollars. */
    costMicros: string;
    /** Provider attempts the run made. */
    attempts: number;
    /** True when the provider sent no usage report (the run was cut short): the figures are an estimate. */
    estimated: boolean;
  };
}

/** A failed provider attempt (with `kind`), or what blocked the run (with `code`). */
export interface RunErrorEvent extends RunEventBase<'ERROR'> {
  text: null;
  status: null;
  payload:
    | {
        message: string;
        kind: 'retryable' | 'fatal' | 'unconfigured' | 'aborted' | 'circuit_open';
        provider: Provider;
        model: string;
        attempt: number;
        /** 0 for the agent's own provider, n for its nth fallback. */
        chainIndex: number;
      }
    | {
        message: string;
        code: 'BUDGET_EXCEEDED';
        // The budget that refused, when one did (a model without a known price is refused without one).
        budgetId?: string;
        projectId?: string | null;
        period?: 'DAILY' | 'MONTHLY';
        limitMicros?: string;
        spentMicros?: string;
        reservedMicros?: string;
        requestedMicros?: string;
        resetsAt?: string;
      };
}

/** The run's provider story: an attempt starts, or an entry of the fallback chain is skipped. */
export interface RunLogEvent extends RunEventBase<'LOG'> {
  text: null;
  status: null;
  payload:
    | {
        kind: 'attempt';
        /** Readable, e.g. "Attempt 1: Offline offline-small (primary)". */
        message: string;
        provider: Provider;
        model: string;
        chainIndex: number;
        /** Counts every attempt of the run. */
        attempt: number;
        /** Counts the attempts on this chain entry (2 and up: retries). */
        attemptForEntry: number;
      }
    | {
        kind: 'skip';
        message: string;
        provider: Provider;
        model: string;
        chainIndex: number;
        reason: 'unconfigured' | 'circuit_open';
        detail: string;
      };
}

/** Reserved by the API for hand-overs between agents; it stores none yet. */
export interface RunHandoffEvent extends RunEventBase<'HANDOFF'> {
  text: null;
  status: null;
  payload: Record<string, unknown>;
}

/**
 * One entry of a run's event log, narrowed by `type`: after `event.type === 'TOKEN'`, `event.text` is a
 * string; after `'STATUS'`, `event.status` is the run's status; `payload` has each type's own fields.
 */
export type RunEvent = RunStatusEvent | RunTokenEvent | RunUsageEvent | RunErrorEvent | RunLogEvent | RunHandoffEvent;

/** The API's event as the SDK types it: the same object, its fields described by its `type`. */
const typed = (event: RunEventFragment) => event as RunEvent;
export type RunUpdate = ProjectRunUpdatesSubscription['projectRunUpdates'];

/** Statuses a run never leaves; its event log ends with a STATUS event carrying one of them. */
export const TERMINAL_RUN_STATUSES: readonly RunStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'BLOCKED'];

export const isTerminalEvent = (event: Pick<RunEvent, 'type' | 'status'>) =>
  event.type === 'STATUS' && event.status != null && TERMINAL_RUN_STATUSES.includes(event.status);

/**
 * True for the event where a run starts over: the RUNNING status of a claim after the first (its worker
 * stopped responding, the run was queued again and another claim took it). That claim streams the output
 * from the start, so TOKEN text before this event is not part of the run's output: drop it.
 */
export const startsOver = (event: Pick<RunEvent, 'type' | 'status' | 'payload'>) =>
  event.type === 'STATUS' && event.status === 'RUNNING' && Number((event.payload as { attempt?: unknown } | null)?.attempt) > 1;

export interface ReconnectOptions {
  /**
   * Consecutive failed reconnects before giving up (the count resets whenever an event arrives). Default 10:
   * with the default delays, between 16 and 33 seconds of trying, enough to outlast a restart of the API
   * (its runs get SHUTDOWN_GRACE_MS, 10 s by default, to finish before the new process starts).
   */
  attempts?: number | undefined;
  /** First backoff delay; it doubles on each failure, with jitter. Default 250 ms. */
  minDelayMs?: number | undefined;
  /** Default 5000 ms. */
  maxDelayMs?: number | undefined;
}

export interface StreamOptions {
  /** Resume after this seq (the last one you processed). Default 0: the whole log. */
  afterSeq?: number | undefined;
  /** Stops the stream, and the requests it makes: it then throws the signal's reason. */
  signal?: AbortSignal | undefined;
  reconnect?: ReconnectOptions | undefined;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Events per page of `runs.events` (the API's most per call). */
const EVENT_PAGE = 500;

export function runsApi(t: Transport) {
  async function get(id: string, options?: RequestOptions): Promise<Run> {
    const { run } = await t.request(RunDocument, { id }, options);
    if (!run) throw new NotFoundError('Run not found');
    return run;
  }

  /** True when the run is over and its log holds nothing after `seq`. */
  async function finishedBy(runId: string, seq: number, signal: AbortSignal | undefined): Promise<boolean> {
    const { run } = await t.request(RunProgressDocument, { id: runId }, { signal });
    if (!run) throw new NotFoundError('Run not found');
    return TERMINAL_RUN_STATUSES.includes(run.status) && run.lastSeq <= seq;
  }

  /**
   * The run's events in seq order, each exactly once, ending after the terminal STATUS event. When the
   * socket drops it reconnects with backoff and resumes after the last seq it yielded.
   */
  async function* stream(runId: string, { afterSeq = 0, signal, reconnect = {} }: StreamOptions = {}): AsyncGenerator<RunEvent> {
    const { attempts = 10, minDelayMs = 250, maxDelayMs = 5_000 } = reconnect;
    // Resuming a finished run at or past its end: nothing is left, so no socket is opened for it.
    if (afterSeq > 0 && (await finishedBy(runId, afterSeq, signal))) return;
    // Seqs start at 1: as for the API, a negative afterSeq is the start of the log (else event 1 would look like a gap).
    let last = Math.max(0, afterSeq);
    let failures = 0;
    for (;;) {
      let cause: NetworkError | RateLimitedError | undefined;
      try {
        let gap = false;
        for await (const { runEvents: event } of t.subscribe(RunEventsDocument, { runId, afterSeq: last }, { signal })) {
          if (event.seq <= last) continue;
          // The API promises no gaps; if one ever shows, resubscribing replays it from the stored log.
          if (event.seq !== last + 1) {
            gap = true;
            break;
          }
          last = event.seq;
          failures = 0;
          yield typed(event);
          if (isTerminalEvent(event)) return;
        }
        // The API ended the subscription before the run's end came: it does so while shutting down, and once a
        // run whose log ends at or before `last` finishes (an afterSeq past its end). Only the latter is over.
        if (!gap && (await finishedBy(runId, last, signal))) return;
      } catch (err) {
        // Reconnecting spends the caller's request budget like any call: a refusal for that is waited out too.
        if (!(err instanceof NetworkError || err instanceof RateLimitedError)) throw err;
        cause = err;
      }
      // Here the socket dropped, the server ended the subscription early (e.g. while shutting down), or it asked to slow down.
      if (++failures > attempts) {
        if (cause instanceof RateLimitedError) throw cause;
        throw new NetworkError(`Lost the event stream of run ${runId} after ${attempts} reconnect attempts`, cause?.closeCode, { cause });
      }
      const backoff = Math.min(maxDelayMs, minDelayMs * 2 ** (failures - 1));
      const delay = backoff / 2 + Math.random() * (backoff / 2);
      await sleep(cause instanceof RateLimitedError ? Math.max(delay, cause.retryAfterSeconds * 1000) : delay, signal);
    }
  }

  return {
    /**
     * Queues a run. With an `idempotencyKey`, starting again with the same key returns the same run; keys are
     * unique within the organization, so a key reused with another agent or input returns that first run too.
     * A start that failed with a NetworkError or TimeoutError (or was aborted) may have started the run all
     * the same: give it an `idempotencyKey`, and start again with that key to get the run without a second one.
     */
    async start(input: StartRunInput, options?: RequestOptions): Promise<Run> {
      return unwrap((await t.request(StartRunDocument, { input }, options)).startRun).run;
    },
    /** Cancels a queued run at once, or asks the worker to stop a running one. */
    async cancel(id: string, options?: RequestOptions): Promise<Run> {
      return unwrap((await t.request(CancelRunDocument, { input: { id } }, options)).cancelRun).run;
    },
    /**
     * Starts a new run of the same agent and input; the new run's `retryOf` is the original, and the original's
     * `retriedAs` the new run. A run is retried once: calling this again (say after a lost answer) returns that
     * same retry; to try again after it, retry it.
     */
    async retry(id: string, options?: RequestOptions): Promise<Run> {
      return unwrap((await t.request(RetryRunDocument, { input: { id } }, options)).retryRun).run;
    },
    get,
    /** Runs of a project, newest first, optionally filtered by status or agent; `options` apply to each page's request. */
    list(projectId: string, filter?: RunFilter, options?: RequestOptions): Paginated<Run> {
      return paginate(async (page) => {
        const { project } = await t.request(ProjectRunsDocument, { projectId, filter, ...page }, options);
        if (!project) throw new NotFoundError('Project not found');
        return toPage(project.runs);
      }, options?.signal);
    },
    stream,
    /**
     * The run's stored events after `afterSeq`, oldest first, only those of `types` when given (say
     * `['STATUS', 'ERROR']`: what happened to a run, without its tokens). Reads 500 at a time and ends at
     * the last event stored; `stream` follows a run live instead.
     */
    async *events(
      runId: string,
      { afterSeq = 0, types, ...options }: { afterSeq?: number | undefined; types?: RunEventType[] | undefined } & RequestOptions = {},
    ): AsyncGenerator<RunEvent> {
      for (let after = afterSeq; ; ) {
        const { run } = await t.request(RunEventPageDocument, { id: runId, afterSeq: after, types }, options);
        if (!run) throw new NotFoundError('Run not found');
        for (const event of run.events) {
          // An abort stops the events of a page already read too, as it does a list's items.
          options.signal?.throwIfAborted();
          yield typed(event);
        }
        if (run.events.length < EVENT_PAGE) return;
        after = run.events.at(-1)!.seq;
      }
    },
    /**
     * Resolves with the run once it is finished (SUCCEEDED, FAILED or CANCELLED). A run that a budget
     * BLOCKED rejects with BudgetExceededError, carrying the period, limit, spend and reset time.
     */
    async wait(runId: string, options: Omit<StreamOptions, 'afterSeq'> = {}): Promise<Run> {
      const { signal } = options;
      let run = await get(runId, { signal });
      if (!TERMINAL_RUN_STATUSES.includes(run.status)) {
        // Only events after what the run already reports are needed to see it finish.
        const events = stream(runId, { ...options, afterSeq: run.lastSeq });
        while (!(await events.next()).done);
        run = await get(runId, { signal });
      }
      if (run.status === 'BLOCKED' && run.budgetError) throw BudgetExceededError.fromResult(run.budgetError);
      return run;
    },
    /** Status changes of every run in a project, live. Not resumable: a dropped socket ends it with a NetworkError. */
    async *updates(projectId: string, options: { signal?: AbortSignal | undefined } = {}): AsyncGenerator<RunUpdate> {
      for await (const { projectRunUpdates } of t.subscribe(ProjectRunUpdatesDocument, { projectId }, options)) yield projectRunUpdates;
    },
  };
}
