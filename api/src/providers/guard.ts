import { abortedError, classifyError, timeoutError, type ProviderError } from './errors.js';
import type { ProviderId } from './types.js';

export interface StreamTimeouts {
  /** Max wait for the response to start (its status and headers). */
  requestTimeoutMs: number;
  /** Max silence once the response has started: until the first stream event, and between two events. */
  idleTimeoutMs: number;
}

export const DEFAULT_TIMEOUTS: StreamTimeouts = { requestTimeoutMs: 60_000, idleTimeoutMs: 180_000 };

/**
 * Per-attempt abort controller for an SDK call: follows the caller's signal and adds our own
 * first-byte / idle timers, so a stalled stream (which SDK timeouts do not cover once headers
 * arrived) is cut and reported as a retryable 'timeout' instead of hanging forever.
 */
export class RequestGuard {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  /** The delay `timer` was set with. */
  private armedMs = 0;
  private timedOutAfterMs: number | undefined;
  /** touch() was called: the response has started, the request timeout is over. */
  private responded = false;
  /** Between pause() and the next touch(): the consumer has a chunk. */
  private paused = false;
  private disposed = false;
  private readonly onCallerAbort = () => this.controller.abort();

  /**
   * `sendAfter`: the request's send gate (see CompletionRequest.sendAfter). A prepared request can wait there
   * longer than the request timeout (its run's start statement, a budget hold); it is timed from when the gate
   * opens, when it is written, not from now.
   */
  constructor(
    private readonly provider: ProviderId,
    private readonly callerSignal: AbortSignal | undefined,
    private readonly timeouts: StreamTimeouts,
    sendAfter?: Promise<unknown>,
  ) {
    if (callerSignal?.aborted) this.controller.abort();
    else callerSignal?.addEventListener('abort', this.onCallerAbort, { once: true });
    if (!sendAfter) this.arm(timeouts.requestTimeoutMs);
    else {
      sendAfter.then(
        () => {
          if (!this.disposed && !this.responded) this.arm(timeouts.requestTimeoutMs);
        },
        () => {}, // dropped at the gate: never sent, nothing to time (the fetch fails with the reason)
      );
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get callerAborted(): boolean {
    return this.callerSignal?.aborted ?? false;
  }

  /** (Re)start the inactivity timer; call when the response starts and on every event received. */
  touch(): void {
    this.responded = true;
    this.paused = false;
    this.arm(this.timeouts.idleTimeoutMs);
  }

  /**
   * Bytes of the response arrived, maybe only a keep-alive the SDK drops (Anthropic's `ping` during a long
   * think): the connection is alive, so the idle timer restarts, as for an event. Not while paused (the
   * consumer's own time; touch() restarts it after) nor before the response has started.
   */
  readonly alive = (): void => {
    if (this.responded && !this.paused && !this.disposed) this.arm(this.timeouts.idleTimeoutMs);
  };

  /** Stop timing while the consumer handles a chunk, so a slow consumer isn't taken for a stalled server. */
  pause(): void {
    this.paused = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Map an error (or a silent stop when `err` is undefined) to the right ProviderError. */
  toError(err: unknown): ProviderError {
    if (this.callerAborted) return abortedError(this.provider, this.callerSignal?.reason);
    if (this.timedOutAfterMs !== undefined) {
      return timeoutError(this.provider, `No response from ${this.provider} within ${this.timedOutAfterMs} ms`);
    }
    return classifyError(this.provider, err ?? new Error('stream stopped'));
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.callerSignal?.removeEventListener('abort', this.onCallerAbort);
  }

  private arm(ms: number): void {
    // Restarted for every event and every piece of body: moving the pending timer costs no allocation.
    if (this.timer && this.armedMs === ms) {
      this.timer.refresh();
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!Number.isFinite(ms) || ms <= 0) return;
    this.armedMs = ms;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timedOutAfterMs = ms;
      this.controller.abort();
    }, ms);
  }
}

/** setTimeout as a promise that rejects with the provider's 'aborted' error when `signal` fires. */
export function sleep(ms: number, signal: AbortSignal | undefined, provider: ProviderId): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortedError(provider, signal.reason));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError(provider, signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
