import type { CircuitBreaker } from './circuit-breaker.js';
import { abortedError, classifyError, ProviderError, unconfiguredError, type ProviderErrorKind } from './errors.js';
import { sleep as abortableSleep } from './guard.js';
import { costMicros, estimateInputTokens, hasPrice, maxCostMicros, outputTokensBound } from './pricing.js';
import type { CompletionRequest, ProviderId, ProviderRegistry, StreamChunk, TokenUsage } from './types.js';

export interface ChainEntry {
  provider: ProviderId;
  model: string;
}

export interface RetryPolicy {
  /** Attempts per chain entry, the first one included (1 = no retry). */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Passed to the hooks; enough for a budget layer to reserve `maxCostMicros` before the call. */
export interface AttemptInfo {
  /** 1-based, across the whole execution. */
  number: number;
  chainIndex: number;
  /** 1-based attempt number for this chain entry. */
  attemptForEntry: number;
  provider: ProviderId;
  model: string;
  inputTokensEstimate: number;
  maxOutputTokens: number;
  /** Worst-case cost of this attempt; null when the model has no known price. */
  maxCostMicros: bigint | null;
}

export type AttemptStatus = 'succeeded' | 'failed' | 'aborted';

export interface AttemptOutcome {
  status: AttemptStatus;
  /**
   * Usage to settle. The provider's report when it sent one; otherwise, if the provider may have billed
   * (text streamed, the attempt was aborted, timed out or failed after its response started), our bounds (the
   * prompt's, and the streamed text's capped at maxOutputTokens: see cutShortUsage); otherwise zero (an error
   * the provider answered with, or an attempt aborted before its request was sent, while onAttemptStart waited).
   */
  usage: TokenUsage;
  /** False when `usage` is our bound: no report, or the adapter's own in place of a missing one. */
  usageReported: boolean;
  costMicros: bigint | null;
  emittedText: boolean;
  text: string;
  durationMs: number;
  error?: ProviderError;
}

export interface AttemptErrorSummary {
  kind: ProviderErrorKind;
  message: string;
  status?: number;
  code?: string;
}

/** One row per attempt made or chain entry skipped; serialisable (bigint aside) for run events/logs. */
export interface AttemptRecord {
  number: number | null;
  chainIndex: number;
  provider: ProviderId;
  model: string;
  status: AttemptStatus | 'skipped';
  skipReason?: 'circuit_open' | 'unconfigured';
  error?: AttemptErrorSummary;
  emittedText: boolean;
  usage?: TokenUsage;
  costMicros?: bigint | null;
  durationMs: number;
  /** Backoff slept before the next attempt on the same entry, when there was one. */
  retryDelayMs?: number;
}

export interface ExecuteOptions {
  chain: ChainEntry[];
  /** The model comes from each chain entry. */
  request: Omit<CompletionRequest, 'model'>;
  registry: ProviderRegistry;
  retry: RetryPolicy;
  breaker?: CircuitBreaker;
  /** Runs before every attempt; if it throws (e.g. budget exceeded) execution stops with that error as-is. */
  onAttemptStart?: (attempt: AttemptInfo) => Promise<void>;
  /** Runs after every attempt that onAttemptStart allowed, whatever the outcome. */
  onAttemptEnd?: (attempt: AttemptInfo, outcome: AttemptOutcome) => Promise<void>;
  /** Runs when a chain entry is skipped (unconfigured provider, open circuit), before the next entry is tried. */
  onSkip?: (skipped: AttemptRecord) => void;
  onDelta: (text: string) => void | Promise<void>;
  /**
   * What to do when an attempt fails after some of its text was already delivered through onDelta.
   * false (default): no retry, no fallback; the error is thrown with `partial = true`, so delivered
   * text is never duplicated or silently mixed with a second answer.
   * true: deliver RESTART_MARKER through onDelta, then retry/fall back as usual; the returned
   * `text` holds only the successful attempt's text.
   */
  restartAfterPartial?: boolean;
  /** Injectable randomness for jitter, in [0, 1). */
  random?: () => number;
  /**
   * The first attempt's request, built ahead (see prepareAttempt). Sent once onAttemptStart has allowed
   * that attempt, if the attempt is for its provider and model; otherwise dropped unsent.
   */
  prepared?: PreparedAttempt;
}

/** An attempt's request, built and waiting to be sent. */
export interface PreparedAttempt {
  readonly entry: ChainEntry;
  /** The adapter's stream, to consume after send(). */
  readonly stream: AsyncIterable<StreamChunk>;
  /** Lets the request go to the provider. */
  send(): void;
  /** Drops it: the provider never sees it. A no-op once sent. */
  discard(): void;
}

/**
 * Starts an attempt's request up to the point of sending it (the provider SDK builds it; a connection is
 * taken when it is sent) while the caller still waits for the right to send it, e.g. for its run to be
 * committed. Nothing goes to the provider before send(). Null when the provider is not configured.
 */
export function prepareAttempt(registry: ProviderRegistry, entry: ChainEntry, request: Omit<CompletionRequest, 'model'>): PreparedAttempt | null {
  const adapter = registry.get(entry.provider);
  if (!adapter.configured) return null;
  let open!: () => void;
  let drop!: (reason: unknown) => void;
  const gate = new Promise<void>((resolve, reject) => {
    open = resolve;
    drop = reject;
  });
  const iterator = adapter.stream({ ...request, model: entry.model, sendAfter: gate })[Symbol.asyncIterator]();
  const first = iterator.next();
  first.catch(() => {}); // a dropped request fails here, unobserved
  let decided = false;
  return {
    entry,
    stream: continueFrom(first, iterator),
    send() {
      decided = true;
      open();
    },
    discard() {
      if (decided) return;
      decided = true;
      drop(abortedError(entry.provider, 'not sent'));
    },
  };
}

/** The rest of an iterator whose first step is already under way; closing it closes the iterator. */
async function* continueFrom<T>(first: Promise<IteratorResult<T>>, iterator: AsyncIterator<T>): AsyncGenerator<T> {
  let done = false;
  try {
    for (let step = await first; !step.done; step = await iterator.next()) yield step.value;
    done = true;
  } finally {
    if (!done) await iterator.return?.();
  }
}

/**
 * What an attempt cut short without a usage report may have been billed, at most: the prompt's bound (what
 * its hold reserved) and the text it streamed, capped at maxOutputTokens (all of maxOutputTokens for a model
 * that reasons unseen, see outputTokensBound). Also how the recovery sweep estimates the attempt of a worker
 * that died (from the text its run stored).
 */
export function cutShortUsage(entry: ChainEntry, inputTokensEstimate: number, text: string, maxOutputTokens: number): TokenUsage {
  return {
    inputTokens: inputTokensEstimate,
    cachedInputTokens: 0,
    outputTokens: outputTokensBound(entry.provider, entry.model, text, maxOutputTokens),
  };
}

export const RESTART_MARKER = '\n\n[response interrupted; restarting]\n\n';

export interface ExecuteResult {
  text: string;
  usage: TokenUsage;
  /** `usage` is our bound, not the provider's report (a compatible server that sent none). */
  usageEstimated: boolean;
  costMicros: bigint | null;
  provider: ProviderId;
  model: string;
  attempts: AttemptRecord[];
}

/**
 * Exponential backoff with full jitter: uniform in [0, min(maxDelay, base * 2^(n-1))], where n is
 * the number of failed attempts so far. A server's Retry-After is a floor; maxDelayMs caps both.
 */
export function backoffDelayMs(
  failedAttempts: number,
  policy: RetryPolicy,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, failedAttempts - 1));
  const jittered = Math.floor(random() * ceiling);
  return Math.min(policy.maxDelayMs, Math.max(jittered, retryAfterMs ?? 0));
}

function summarize(err: ProviderError): AttemptErrorSummary {
  return {
    kind: err.kind,
    message: err.message,
    ...(err.status !== undefined ? { status: err.status } : {}),
    ...(err.code !== undefined ? { code: err.code } : {}),
  };
}

function withAttempts(err: ProviderError, attempts: AttemptRecord[]): ProviderError {
  err.attempts = attempts;
  return err;
}

/** Thrown by onDelta: kept apart from provider failures so it propagates untouched. */
class ConsumerFailure {
  constructor(readonly error: unknown) {}
}

/**
 * Runs a completion over a provider chain: retries the current entry on retryable errors (backoff,
 * Retry-After honoured), falls back to the next entry on fatal errors or exhausted retries, skips
 * entries whose circuit is open or whose provider is unconfigured, and stops at once on abort.
 */
export async function executeCompletion(opts: ExecuteOptions): Promise<ExecuteResult> {
  try {
    return await execute(opts);
  } finally {
    opts.prepared?.discard(); // not used (say, the budget refused the attempt): never sent
  }
}

async function execute(opts: ExecuteOptions): Promise<ExecuteResult> {
  const { chain, request, registry, retry, breaker } = opts;
  let prepared = opts.prepared;
  if (chain.length === 0) throw new Error('executeCompletion: empty provider chain');
  if (!Number.isInteger(retry.maxAttempts) || retry.maxAttempts < 1) throw new RangeError('retry.maxAttempts must be >= 1');
  const random = opts.random ?? Math.random;
  const signal = request.signal;
  const inputTokensEstimate = estimateInputTokens(request);
  const attempts: AttemptRecord[] = [];
  let attemptNumber = 0;
  let lastAttemptError: ProviderError | undefined;
  let lastSkipError: ProviderError | undefined;
  const skipped = (record: AttemptRecord) => {
    attempts.push(record);
    opts.onSkip?.(record);
  };

  for (const [chainIndex, entry] of chain.entries()) {
    const { provider, model } = entry;
    const adapter = registry.get(provider);
    if (!adapter.configured) {
      lastSkipError = unconfiguredError(provider, adapter.label);
      skipped(skipRecord(chainIndex, entry, 'unconfigured', lastSkipError));
      continue;
    }

    for (let attemptForEntry = 1; attemptForEntry <= retry.maxAttempts; attemptForEntry++) {
      if (signal?.aborted) throw withAttempts(abortedError(provider, signal.reason), attempts);
      const permit = breaker?.tryAcquire(provider);
      if (permit === false) {
        lastSkipError = new ProviderError({
          kind: 'circuit_open',
          provider,
          message: `Circuit open for ${provider}: skipped after repeated failures`,
          code: 'circuit_open',
        });
        skipped(skipRecord(chainIndex, entry, 'circuit_open', lastSkipError));
        break;
      }

      const info: AttemptInfo = {
        number: ++attemptNumber,
        chainIndex,
        attemptForEntry,
        provider,
        model,
        inputTokensEstimate,
        maxOutputTokens: request.maxOutputTokens,
        maxCostMicros: hasPrice(provider, model)
          ? maxCostMicros(provider, model, inputTokensEstimate, request.maxOutputTokens)
          : null,
      };
      const ready = prepared?.entry.provider === provider && prepared.entry.model === model ? prepared : undefined;
      if (!ready) prepared?.discard();
      prepared = undefined;
      try {
        await opts.onAttemptStart?.(info);
      } catch (err) {
        if (permit) breaker?.release(provider, permit);
        throw err;
      }
      // Aborted while it waited for admission (near a budget's limit that can take about a second), by a
      // cancel or a shutdown: its request is not sent (a prepared one is dropped at its gate), so it costs nothing.
      const unsent = signal?.aborted === true;
      if (unsent) ready?.discard();
      else ready?.send();

      const started = Date.now();
      let text = '';
      let usage: TokenUsage | undefined;
      /** The adapter's usage chunk is its own bound, not the provider's report. */
      let usageEstimated = false;
      let error: ProviderError | undefined;
      let consumerFailure: ConsumerFailure | undefined;
      try {
        if (unsent) throw abortedError(provider, signal!.reason);
        for await (const chunk of ready?.stream ?? adapter.stream({ ...request, model })) {
          if (chunk.type === 'usage') {
            usage = chunk.usage;
            usageEstimated = chunk.estimated === true;
            continue;
          }
          text += chunk.text;
          try {
            await opts.onDelta(chunk.text);
          } catch (err) {
            consumerFailure = new ConsumerFailure(err);
            break; // leaving the loop closes the adapter's stream, which aborts the HTTP request
          }
        }
        if (!usage && !consumerFailure) {
          error = new ProviderError({ kind: 'fatal', provider, message: 'Stream ended without a usage report' });
        }
      } catch (err) {
        error = classifyError(provider, err);
      }
      // The caller's abort wins over whatever error the cut-off stream produced.
      if (signal?.aborted && error) {
        error = abortedError(provider, signal.reason);
      }

      const emittedText = text.length > 0;
      const status: AttemptStatus = consumerFailure || error?.kind === 'aborted' ? 'aborted' : error ? 'failed' : 'succeeded';
      // Without a usage report, an attempt that streamed text, was cut off by us (cancel, a failed consumer), timed
      // out, or failed once its response had started (a dropped stream, an error event) may have been billed for
      // its prompt: settled at the bounds it was reserved at. An error the provider answered with instead of a
      // response (4xx, 5xx), or a request never sent, costs nothing.
      const mayBeBilled = !unsent && (emittedText || status === 'aborted' || error?.code === 'timeout' || error?.responseStarted === true);
      const billed = usage !== undefined || mayBeBilled;
      const settledUsage =
        usage ?? (billed ? cutShortUsage(entry, inputTokensEstimate, text, request.maxOutputTokens) : { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0 });
      // A request the provider did not serve costs nothing, not even a per-request fee (Perplexity's).
      const cost = !hasPrice(provider, model) ? null : billed ? costMicros(provider, model, settledUsage) : 0n;
      const outcome: AttemptOutcome = {
        status,
        usage: settledUsage,
        usageReported: usage !== undefined && !usageEstimated,
        costMicros: cost,
        emittedText,
        text,
        durationMs: Date.now() - started,
        ...(error ? { error } : {}),
      };
      const record: AttemptRecord = {
        number: info.number,
        chainIndex,
        provider,
        model,
        status,
        emittedText,
        usage: settledUsage,
        costMicros: cost,
        durationMs: outcome.durationMs,
        ...(error ? { error: summarize(error) } : {}),
      };
      attempts.push(record);

      if (permit) {
        if (status === 'succeeded') breaker?.recordSuccess(provider, permit);
        else if (error?.kind === 'retryable') breaker?.recordFailure(provider, permit);
        else breaker?.release(provider, permit);
      }

      await opts.onAttemptEnd?.(info, outcome);

      if (consumerFailure) throw consumerFailure.error;
      if (!error) {
        return { text, usage: settledUsage, usageEstimated: !outcome.usageReported, costMicros: cost, provider, model, attempts };
      }
      if (error.kind === 'aborted') throw withAttempts(error, attempts);
      lastAttemptError = error;

      if (emittedText) {
        if (!opts.restartAfterPartial) {
          error.partial = true;
          throw withAttempts(error, attempts);
        }
        await opts.onDelta(RESTART_MARKER);
      }
      if (error.kind !== 'retryable' || attemptForEntry === retry.maxAttempts) break;

      const delay = backoffDelayMs(attemptForEntry, retry, error.retryAfterMs, random);
      record.retryDelayMs = delay;
      try {
        await abortableSleep(delay, signal, provider);
      } catch (err) {
        throw withAttempts(classifyError(provider, err), attempts);
      }
    }
  }

  const finalError = lastAttemptError ?? lastSkipError;
  if (!finalError) throw new Error('executeCompletion: no attempt made'); // unreachable with a non-empty chain
  throw withAttempts(finalError, attempts);
}

function skipRecord(
  chainIndex: number,
  entry: ChainEntry,
  reason: 'circuit_open' | 'unconfigured',
  error: ProviderError,
): AttemptRecord {
  return {
    number: null,
    chainIndex,
    provider: entry.provider,
    model: entry.model,
    status: 'skipped',
    skipReason: reason,
    error: summarize(error),
    emittedText: false,
    durationMs: 0,
  };
}
