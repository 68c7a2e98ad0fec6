import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAnthropicFake } from '../../test/fakes/anthropic-server.js';
import type { FakeProviderServer } from '../../test/fakes/fake-provider-server.js';
import { startOpenAIFake, startXAIFake } from '../../test/fakes/openai-server.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { ProviderError } from './errors.js';
import {
  backoffDelayMs,
  executeCompletion,
  prepareAttempt,
  RESTART_MARKER,
  type AttemptInfo,
  type AttemptOutcome,
  type ExecuteOptions,
  type RetryPolicy,
} from './executor.js';
import { costMicros, estimateInputTokens, maxCostMicros } from './pricing.js';
import { createProviders } from './registry.js';
import type { ProviderId, ProviderRegistry } from './types.js';

let openai: FakeProviderServer;
let anthropic: FakeProviderServer;
let registry: ProviderRegistry;

const RETRY: RetryPolicy = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5_000 };
const REQUEST = {
  system: 'Be brief.',
  messages: [{ role: 'user' as const, content: 'Summarise the plan.' }],
  maxOutputTokens: 100,
};

beforeAll(async () => {
  openai = await startOpenAIFake({ apiKey: 'sk-o' });
  anthropic = await startAnthropicFake({ apiKey: 'sk-a' });
  registry = createProviders({
    openai: { apiKey: 'sk-o', baseUrl: openai.url },
    anthropic: { apiKey: 'sk-a', baseUrl: anthropic.url },
    offline: { tokenDelayMs: 0 },
    timeouts: { requestTimeoutMs: 300, idleTimeoutMs: 300 },
  });
});

afterEach(() => {
  openai.reset();
  anthropic.reset();
});

afterAll(async () => {
  await openai.close();
  await anthropic.close();
});

/** executeCompletion with test defaults: jitter off (random = 0), deltas collected. */
function run(overrides: Partial<ExecuteOptions> & { deltas?: string[] } = {}) {
  const deltas = overrides.deltas ?? [];
  return executeCompletion({
    chain: [{ provider: 'OPENAI', model: 'gpt-4o-mini' }],
    request: REQUEST,
    registry,
    retry: RETRY,
    random: () => 0,
    onDelta: (text) => {
      deltas.push(text);
    },
    ...overrides,
  });
}

/** A call through the closed circuit fails: with a threshold of 1, it opens. */
function openCircuit(breaker: CircuitBreaker, provider: ProviderId) {
  const permit = breaker.tryAcquire(provider);
  if (!permit) throw new Error('the circuit is already open');
  breaker.recordFailure(provider, permit);
}

async function rejection(promise: Promise<unknown>): Promise<ProviderError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProviderError);
  return error as ProviderError;
}

describe('retries', () => {
  it('honours Retry-After (seconds) on 429, then succeeds', async () => {
    openai.enqueue({ kind: 'error', status: 429, retryAfter: 1 }, { kind: 'reply', text: 'ok after wait' });
    const started = performance.now();
    const result = await run();
    const elapsed = performance.now() - started;
    expect(result.text).toBe('ok after wait');
    expect(elapsed).toBeGreaterThanOrEqual(990);
    expect(openai.requests).toHaveLength(2);
    expect(openai.requests[1]!.receivedAt - openai.requests[0]!.receivedAt).toBeGreaterThanOrEqual(990);
    expect(result.attempts.map((a) => [a.status, a.error?.status, a.retryDelayMs])).toEqual([
      ['failed', 429, 1000],
      ['succeeded', undefined, undefined],
    ]);
  });

  it('honours retry-after-ms and caps any delay at maxDelayMs', async () => {
    openai.enqueue(
      { kind: 'error', status: 429, retryAfterMs: 120 },
      { kind: 'error', status: 429, retryAfter: 3600 },
      { kind: 'reply', text: 'done' },
    );
    const result = await run({ retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 150 } });
    expect(result.text).toBe('done');
    expect(result.attempts.map((a) => a.retryDelayMs)).toEqual([120, 150, undefined]);
  });

  it('retries a 500 and reports every attempt through the hooks', async () => {
    openai.enqueue(
      { kind: 'error', status: 500 },
      { kind: 'reply', text: 'recovered', usage: { inputTokens: 40, cachedInputTokens: 10, outputTokens: 3 } },
    );
    const events: string[] = [];
    const ends: Array<[AttemptInfo, AttemptOutcome]> = [];
    const result = await run({
      onAttemptStart: async (a) => {
        events.push(`start ${a.number} ${a.provider} #${a.attemptForEntry}`);
      },
      onAttemptEnd: async (a, o) => {
        events.push(`end ${a.number} ${o.status}`);
        ends.push([a, o]);
      },
    });
    expect(events).toEqual(['start 1 OPENAI #1', 'end 1 failed', 'start 2 OPENAI #2', 'end 2 succeeded']);
    const inputEstimate = estimateInputTokens(REQUEST);
    expect(ends[0]![0]).toMatchObject({
      inputTokensEstimate: inputEstimate,
      maxOutputTokens: 100,
      maxCostMicros: maxCostMicros('OPENAI', 'gpt-4o-mini', inputEstimate, 100),
    });
    expect(ends[0]![1]).toMatchObject({
      status: 'failed',
      usageReported: false,
      costMicros: 0n,
      emittedText: false,
      error: { kind: 'retryable', status: 500 },
    });
    const usage = { inputTokens: 40, cachedInputTokens: 10, outputTokens: 3 };
    expect(ends[1]![1]).toMatchObject({ status: 'succeeded', usage, usageReported: true });
    expect(result).toMatchObject({
      text: 'recovered',
      usage,
      provider: 'OPENAI',
      model: 'gpt-4o-mini',
      costMicros: costMicros('OPENAI', 'gpt-4o-mini', usage),
    });
  });

  it('does not retry a 401: fatal, with the provider message', async () => {
    openai.enqueue({ kind: 'error', status: 401, message: 'Incorrect API key provided: sk-o.' });
    const error = await rejection(run());
    expect(error).toMatchObject({ kind: 'fatal', status: 401, message: 'Incorrect API key provided: sk-o.' });
    expect(openai.requests).toHaveLength(1);
    expect(error.attempts).toHaveLength(1);
  });

  it('gives up after maxAttempts retryable failures with the last error', async () => {
    openai.enqueue({ kind: 'error', status: 500 }, { kind: 'error', status: 502 }, { kind: 'error', status: 503 });
    const error = await rejection(run());
    expect(error).toMatchObject({ kind: 'retryable', status: 503 });
    expect(openai.requests).toHaveLength(3);
  });

  it('marks the usage of a compatible server that sent no report as estimated, bounded by maxOutputTokens', async () => {
    const text = 'word '.repeat(60); // 300 bytes: over the request's 100 output tokens at one token a byte
    openai.enqueue({ kind: 'reply', text, omitUsage: true });
    const ended: AttemptOutcome[] = [];
    const result = await run({ onAttemptEnd: async (_a, o) => void ended.push(o) });
    expect(result.usageEstimated).toBe(true);
    expect(result.usage).toEqual({ inputTokens: estimateInputTokens(REQUEST), cachedInputTokens: 0, outputTokens: REQUEST.maxOutputTokens });
    expect(ended).toMatchObject([{ status: 'succeeded', usageReported: false }]);
    // With the report, the provider's figures, reported.
    openai.enqueue({ kind: 'reply', text, usage: { inputTokens: 7, outputTokens: 9 } });
    const reported = await run();
    expect([reported.usageEstimated, reported.usage.outputTokens]).toEqual([false, 9]);
  });

  it('retries after a timeout (server never answers)', async () => {
    openai.enqueue({ kind: 'hang' }, { kind: 'reply', text: 'second time lucky' });
    const result = await run();
    expect(result.text).toBe('second time lucky');
    expect(result.attempts[0]).toMatchObject({ status: 'failed', error: { kind: 'retryable', code: 'timeout' } });
    expect((await openai.whenClosed(0)).disconnectedByClient).toBe(true);
  });

  it('computes full-jitter exponential backoff with Retry-After as a floor', () => {
    const policy = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1_000 };
    expect(backoffDelayMs(1, policy, undefined, () => 0.999)).toBe(99);
    expect(backoffDelayMs(3, policy, undefined, () => 0.5)).toBe(200);
    expect(backoffDelayMs(10, policy, undefined, () => 0.999)).toBe(999);
    expect(backoffDelayMs(1, policy, 400, () => 0.5)).toBe(400);
    expect(backoffDelayMs(1, policy, 60_000, () => 0.5)).toBe(1_000);
  });
});

describe('fallback', () => {
  it('falls back to the next provider when the first keeps failing', async () => {
    openai.enqueue({ kind: 'error', status: 500 }, { kind: 'error', status: 500 });
    anthropic.enqueue({ kind: 'reply', text: 'from claude' });
    const result = await run({
      chain: [
        { provider: 'OPENAI', model: 'gpt-4o-mini' },
        { provider: 'ANTHROPIC', model: 'claude-haiku-4-5' },
      ],
      retry: { ...RETRY, maxAttempts: 2 },
    });
    expect(result).toMatchObject({ text: 'from claude', provider: 'ANTHROPIC', model: 'claude-haiku-4-5' });
    expect(result.attempts.map((a) => `${a.provider}:${a.status}`)).toEqual([
      'OPENAI:failed',
      'OPENAI:failed',
      'ANTHROPIC:succeeded',
    ]);
    expect(anthropic.requests[0]?.body.model).toBe('claude-haiku-4-5');
  });

  it.each([
    ['a fatal error', { kind: 'error', status: 403 }, { kind: 'fatal', status: 403 }],
    [
      "OpenAI's 429 insufficient_quota: out of credit, no retry can succeed",
      { kind: 'error', status: 429, type: 'insufficient_quota', message: 'You exceeded your current quota, please check your plan and billing details.' },
      { kind: 'fatal', status: 429, code: 'insufficient_quota' },
    ],
  ] as const)('falls back at once on %s', async (_case, failure, error) => {
    openai.enqueue(failure);
    anthropic.enqueue({ kind: 'reply', text: 'fallback' });
    const result = await run({
      chain: [
        { provider: 'OPENAI', model: 'gpt-4o-mini' },
        { provider: 'ANTHROPIC', model: 'claude-haiku-4-5' },
      ],
    });
    expect(result.provider).toBe('ANTHROPIC');
    expect(openai.requests).toHaveLength(1);
    expect(result.attempts[0]?.error).toMatchObject(error);
  });

  it('skips unconfigured providers and lands on the offline provider', async () => {
    const deltas: string[] = [];
    const result = await run({
      chain: [
        { provider: 'XAI', model: 'grok-4' },
        { provider: 'OFFLINE', model: 'offline-small' },
      ],
      deltas,
    });
    expect(result.provider).toBe('OFFLINE');
    expect(result.costMicros).toBe(0n);
    expect(deltas.join('')).toBe(result.text);
    expect(result.attempts[0]).toMatchObject({ provider: 'XAI', status: 'skipped', skipReason: 'unconfigured' });
  });

  it('throws the typed unconfigured error when nothing else is available', async () => {
    const error = await rejection(run({ chain: [{ provider: 'PERPLEXITY', model: 'sonar' }] }));
    expect(error).toMatchObject({ kind: 'unconfigured', provider: 'PERPLEXITY', message: 'Perplexity is not configured on this server: set PERPLEXITY_API_KEY to use it' });
  });
});

describe('circuit breaker', () => {
  it('opens after repeated failures, skips the provider, then lets one probe through after the cool-down', async () => {
    let now = 1_000_000;
    const breaker = new CircuitBreaker({ failureThreshold: 2, windowMs: 60_000, cooldownMs: 30_000, now: () => now });
    const opts = {
      breaker,
      retry: { ...RETRY, maxAttempts: 1 },
      chain: [
        { provider: 'OPENAI' as const, model: 'gpt-4o-mini' },
        { provider: 'ANTHROPIC' as const, model: 'claude-haiku-4-5' },
      ],
    };

    openai.enqueue({ kind: 'error', status: 500 }, { kind: 'error', status: 500 });
    anthropic.setDefault({ kind: 'reply', text: 'claude' });
    try {
      expect((await run(opts)).provider).toBe('ANTHROPIC');
      expect(breaker.state('OPENAI')).toBe('closed');
      expect((await run(opts)).provider).toBe('ANTHROPIC');
      expect(breaker.state('OPENAI')).toBe('open');

      // Open: OpenAI is not even called.
      const skipped = await run(opts);
      expect(skipped.provider).toBe('ANTHROPIC');
      expect(skipped.attempts[0]).toMatchObject({ provider: 'OPENAI', status: 'skipped', skipReason: 'circuit_open' });
      expect(openai.requests).toHaveLength(2);

      // After the cool-down: half-open, one probe, which succeeds and closes the circuit.
      now += 30_000;
      expect(breaker.state('OPENAI')).toBe('half_open');
      openai.enqueue({ kind: 'reply', text: 'openai is back' });
      const probed = await run(opts);
      expect(probed).toMatchObject({ provider: 'OPENAI', text: 'openai is back' });
      expect(openai.requests).toHaveLength(3);
      expect(breaker.state('OPENAI')).toBe('closed');
    } finally {
      anthropic.setDefault({ kind: 'reply' });
    }
  });

  it('fails with kind circuit_open when every provider in the chain is open', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, windowMs: 1_000, cooldownMs: 60_000 });
    openCircuit(breaker, 'OPENAI');
    const error = await rejection(run({ breaker }));
    expect(error).toMatchObject({ kind: 'circuit_open', provider: 'OPENAI' });
    expect(openai.requests).toHaveLength(0);
  });

  it('keeps the circuit open when a stream that started before it opened ends well', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, windowMs: 60_000, cooldownMs: 60_000 });
    // A slow answer, granted while the circuit was closed; meanwhile another run's request fails and opens it.
    openai.enqueue({ kind: 'reply', text: 'one two three four', chunkDelayMs: 40 }, { kind: 'error', status: 500 });
    const slow = run({ breaker, retry: { ...RETRY, maxAttempts: 1 } });
    await openai.waitForRequests(1);
    await rejection(run({ breaker, retry: { ...RETRY, maxAttempts: 1 } }));
    expect(breaker.state('OPENAI')).toBe('open');
    expect((await slow).text).toBe('one two three four');
    expect(breaker.state('OPENAI')).toBe('open');
  });

  it('does not count fatal 4xx errors as provider failures', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, windowMs: 1_000, cooldownMs: 60_000 });
    openai.enqueue({ kind: 'error', status: 400 });
    await rejection(run({ breaker }));
    expect(breaker.state('OPENAI')).toBe('closed');
  });
});

describe('abort and hooks', () => {
  it('stops immediately on abort mid-stream: no retry, no fallback, attempt settled as aborted', async () => {
    openai.enqueue({ kind: 'reply', text: 'tick '.repeat(100), chunkDelayMs: 20 });
    const controller = new AbortController();
    const outcomes: AttemptOutcome[] = [];
    const deltas: string[] = [];
    let abortedAt = 0;
    const error = await rejection(
      run({
        chain: [
          { provider: 'OPENAI', model: 'gpt-4o-mini' },
          { provider: 'ANTHROPIC', model: 'claude-haiku-4-5' },
        ],
        request: { ...REQUEST, signal: controller.signal },
        onDelta: (text) => {
          deltas.push(text);
          if (deltas.length === 2) {
            abortedAt = performance.now();
            controller.abort();
          }
        },
        onAttemptEnd: async (_a, o) => {
          outcomes.push(o);
        },
      }),
    );
    expect(performance.now() - abortedAt).toBeLessThan(1_000);
    expect(error.kind).toBe('aborted');
    expect(openai.requests).toHaveLength(1);
    expect(anthropic.requests).toHaveLength(0);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ status: 'aborted', emittedText: true, usageReported: false });
    // Settled on an estimate, since text was produced but no usage report arrived.
    expect(outcomes[0]!.usage.outputTokens).toBeGreaterThan(0);
    expect((await openai.whenClosed(0)).disconnectedByClient).toBe(true);
  });

  it('settles the prompt of an attempt the provider may have billed without a usage report; an error answer costs nothing', async () => {
    const input = { inputTokens: estimateInputTokens(REQUEST), cachedInputTokens: 0, outputTokens: 0 };
    // Cancelled before the first token, while the provider is at work on the prompt.
    openai.enqueue({ kind: 'hang' });
    const controller = new AbortController();
    const cancelled: AttemptOutcome[] = [];
    const pending = run({ request: { ...REQUEST, signal: controller.signal }, onAttemptEnd: async (_a, o) => void cancelled.push(o) });
    await openai.waitForRequests(1, 5_000);
    controller.abort();
    expect((await rejection(pending)).kind).toBe('aborted');
    expect(cancelled).toMatchObject([{ status: 'aborted', emittedText: false, usageReported: false, usage: input }]);
    expect(cancelled[0]!.costMicros).toBe(costMicros('OPENAI', 'gpt-4o-mini', input));

    // Timed out, then answered: the first attempt is settled on the prompt too, the second on the report.
    openai.reset();
    openai.enqueue({ kind: 'hang' }, { kind: 'error', status: 400 });
    const ended: AttemptOutcome[] = [];
    await rejection(run({ onAttemptEnd: async (_a, o) => void ended.push(o) }));
    expect(ended.map((o) => [o.error?.code, o.usage])).toEqual([
      ['timeout', input],
      [expect.anything(), { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0 }],
    ]);
  });

  it('settles the prompt of an attempt whose stream started and then failed before any text: the provider was at work on it', async () => {
    const input = { inputTokens: estimateInputTokens(REQUEST), cachedInputTokens: 0, outputTokens: 0 };
    // OpenAI: the connection drops after the stream's first (role) chunk; Anthropic: message_start, then an overloaded error.
    openai.enqueue({ kind: 'reply', text: 'one two', dropAfterChunks: 0 });
    anthropic.enqueue({ kind: 'reply', text: 'one two', errorAfterChunks: 0 });
    for (const entry of [
      { provider: 'OPENAI' as const, model: 'gpt-4o-mini' },
      { provider: 'ANTHROPIC' as const, model: 'claude-haiku-4-5' },
    ]) {
      const ended: AttemptOutcome[] = [];
      const result = await run({ chain: [entry], onAttemptEnd: async (_a, o) => void ended.push(o) });
      expect(result.attempts).toHaveLength(2);
      expect(ended[0]).toMatchObject({ status: 'failed', emittedText: false, usageReported: false, usage: input });
      expect(ended[0]!.error?.kind).toBe('retryable');
    }
  });

  it("charges Perplexity's per-request fee only for a request it served: not for an error answer, nor for one never sent", async () => {
    const pplx = createProviders({ perplexity: { apiKey: 'sk-o', baseUrl: openai.origin }, timeouts: { requestTimeoutMs: 300, idleTimeoutMs: 300 } });
    const chain = [{ provider: 'PERPLEXITY' as const, model: 'sonar' }];
    const ended: AttemptOutcome[] = [];
    const onAttemptEnd = async (_a: AttemptInfo, o: AttemptOutcome) => void ended.push(o);

    // Rate limited, then served: the 429 costs nothing, the answer its tokens and the fee.
    openai.enqueue({ kind: 'error', status: 429 }, { kind: 'reply', text: 'Sunny.', usage: { inputTokens: 10, outputTokens: 2 } });
    const result = await run({ chain, registry: pplx, onAttemptEnd });
    expect(ended.map((o) => o.costMicros)).toEqual([0n, costMicros('PERPLEXITY', 'sonar', result.usage)]);
    expect(result.costMicros).toBe(5_012n);

    // Cancelled while it waited for admission: never sent, so no fee either.
    ended.length = 0;
    const controller = new AbortController();
    await rejection(
      run({
        chain,
        registry: pplx,
        request: { ...REQUEST, signal: controller.signal },
        onAttemptStart: async () => controller.abort(),
        onAttemptEnd,
      }),
    );
    expect(ended).toMatchObject([{ status: 'aborted', costMicros: 0n }]);
  });

  it("settles a reasoning model's attempt cut short at its whole output bound: its reasoning tokens never show as text", async () => {
    // gpt-5-mini reasons before it answers; OpenAI bills those tokens as output but never streams them.
    const chain = [{ provider: 'OPENAI' as const, model: 'gpt-5-mini' }];
    const bound = { inputTokens: estimateInputTokens(REQUEST), cachedInputTokens: 0, outputTokens: REQUEST.maxOutputTokens };

    // The connection drops after the first words of the answer.
    openai.enqueue({ kind: 'reply', text: 'one two three four', dropAfterChunks: 1 });
    const dropped: AttemptOutcome[] = [];
    expect(await rejection(run({ chain, onAttemptEnd: async (_a, o) => void dropped.push(o) }))).toMatchObject({ partial: true });
    expect(dropped).toMatchObject([{ status: 'failed', emittedText: true, usageReported: false, usage: bound }]);
    expect(dropped[0]!.costMicros).toBe(maxCostMicros('OPENAI', 'gpt-5-mini', bound.inputTokens, REQUEST.maxOutputTokens));

    // Cancelled while it reasons, before any text.
    openai.reset();
    openai.enqueue({ kind: 'hang' });
    const controller = new AbortController();
    const cancelled: AttemptOutcome[] = [];
    const pending = run({ chain, request: { ...REQUEST, signal: controller.signal }, onAttemptEnd: async (_a, o) => void cancelled.push(o) });
    await openai.waitForRequests(1, 5_000);
    controller.abort();
    await rejection(pending);
    expect(cancelled).toMatchObject([{ status: 'aborted', emittedText: false, usage: bound }]);
  });

  it('settles nothing for an attempt aborted while it waited for admission: its request was never sent', async () => {
    // Near a budget's limit, admission can wait about a second; a cancel (or a shutdown) arrives meanwhile.
    for (const prepare of [false, true]) {
      openai.reset();
      openai.enqueue({ kind: 'reply', text: 'never asked for' });
      const controller = new AbortController();
      const request = { ...REQUEST, signal: controller.signal };
      const outcomes: AttemptOutcome[] = [];
      const error = await rejection(
        run({
          request,
          prepared: prepare ? prepareAttempt(registry, { provider: 'OPENAI', model: 'gpt-4o-mini' }, request)! : undefined,
          onAttemptStart: async () => {
            await new Promise((resolve) => setTimeout(resolve, 50));
            controller.abort();
          },
          onAttemptEnd: async (_a, o) => void outcomes.push(o),
        }),
      );
      expect(error.kind).toBe('aborted');
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(openai.requests).toHaveLength(0);
      // Settled (its hold released) at nothing, rather than at the prompt's bound.
      expect(outcomes).toMatchObject([{ status: 'aborted', emittedText: false, usageReported: false, usage: { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0 } }]);
      expect(outcomes[0]!.costMicros).toBe(0n);
    }
  });

  it('stops during a backoff wait when aborted', async () => {
    openai.enqueue({ kind: 'error', status: 429, retryAfter: 30 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = performance.now();
    const error = await rejection(
      run({ request: { ...REQUEST, signal: controller.signal }, retry: { ...RETRY, maxDelayMs: 60_000 } }),
    );
    expect(error.kind).toBe('aborted');
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(openai.requests).toHaveLength(1);
  });

  it('propagates an onAttemptStart error untouched and makes no request', async () => {
    class BudgetExceededError extends Error {}
    const budgetError = new BudgetExceededError('over budget');
    await expect(
      run({
        onAttemptStart: async () => {
          throw budgetError;
        },
      }),
    ).rejects.toBe(budgetError);
    expect(openai.requests).toHaveLength(0);
  });

  it('propagates an onDelta error untouched and hangs up on the provider', async () => {
    openai.enqueue({ kind: 'reply', text: 'a b c d e f g', chunkDelayMs: 10 });
    const sinkError = new Error('event store down');
    const outcomes: AttemptOutcome[] = [];
    await expect(
      run({
        onDelta: () => {
          throw sinkError;
        },
        onAttemptEnd: async (_a, o) => {
          outcomes.push(o);
        },
      }),
    ).rejects.toBe(sinkError);
    expect(outcomes.map((o) => o.status)).toEqual(['aborted']);
    expect((await openai.whenClosed(0)).disconnectedByClient).toBe(true);
    expect(openai.requests).toHaveLength(1);
  });
});

describe('long-context pricing (real openai SDK against the fake xAI)', () => {
  it('holds a long prompt at the tier and settles its usage report at the tier, never above the hold', async () => {
    const xaiFake = await startXAIFake({ apiKey: 'sk-x' });
    try {
      const xai = createProviders({ xai: { apiKey: 'sk-x', baseUrl: xaiFake.url } });
      // About 140K tokens at our one-token-per-byte bound; grok-4 reports 130K, 30K of them cached, and 2K output
      // (1.5K of it reasoning, reported beside completion_tokens).
      const request = { messages: [{ role: 'user' as const, content: 'a '.repeat(70_000) }], maxOutputTokens: 4_000 };
      xaiFake.enqueue({ kind: 'reply', text: 'Done.', usage: { inputTokens: 130_000, cachedInputTokens: 30_000, outputTokens: 2_000, reasoningTokens: 1_500 } });
      const held: AttemptInfo[] = [];
      const settled: AttemptOutcome[] = [];
      const result = await run({
        chain: [{ provider: 'XAI', model: 'grok-4' }],
        registry: xai,
        request,
        onAttemptStart: async (info) => void held.push(info),
        onAttemptEnd: async (_info, outcome) => void settled.push(outcome),
      });
      expect(result.usage).toEqual({ inputTokens: 130_000, cachedInputTokens: 30_000, outputTokens: 2_000 });
      // $6 / $1.50 / $30 per 1M on every token: 100,000 * 6 + 30,000 * 1.5 + 2,000 * 30, not the $3 / $0.75 / $15 of a short request (352,500).
      expect(result.costMicros).toBe(600_000n + 45_000n + 60_000n);
      expect(settled[0]!.costMicros).toBe(result.costMicros);
      // The hold: the prompt's bound and all of maxOutputTokens, at the tier.
      const bound = estimateInputTokens(request);
      expect(held[0]!.maxCostMicros).toBe((BigInt(bound) * 6_000_000n + 4_000n * 30_000_000n + 999_999n) / 1_000_000n);
      expect(held[0]!.maxCostMicros! >= result.costMicros!).toBe(true);
    } finally {
      await xaiFake.close();
    }
  });
});

describe('failures after text was delivered', () => {
  it('by default neither retries nor falls back, and marks the error partial', async () => {
    openai.enqueue({ kind: 'reply', text: 'one two three four', dropAfterChunks: 2 });
    const deltas: string[] = [];
    const error = await rejection(
      run({
        chain: [
          { provider: 'OPENAI', model: 'gpt-4o-mini' },
          { provider: 'OFFLINE', model: 'offline-small' },
        ],
        deltas,
      }),
    );
    expect(error).toMatchObject({ kind: 'retryable', partial: true });
    expect(deltas.join('')).toBe('one two ');
    expect(openai.requests).toHaveLength(1);
    expect(error.attempts).toHaveLength(1);
  });

  it('with restartAfterPartial, emits the restart marker and retries from scratch', async () => {
    openai.enqueue(
      { kind: 'reply', text: 'one two three four', dropAfterChunks: 2 },
      { kind: 'reply', text: 'complete answer' },
    );
    const deltas: string[] = [];
    const result = await run({ restartAfterPartial: true, deltas });
    expect(deltas.join('')).toBe(`one two ${RESTART_MARKER}complete answer`);
    expect(result.text).toBe('complete answer');
    expect(result.attempts.map((a) => [a.status, a.emittedText])).toEqual([
      ['failed', true],
      ['succeeded', true],
    ]);
  });
});

describe('prepared attempts', () => {
  const MINI = { provider: 'OPENAI' as const, model: 'gpt-4o-mini' };
  const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

  it('builds the request ahead, sends nothing until the attempt is allowed, then streams it', async () => {
    openai.enqueue({ kind: 'reply', text: 'Prepared answer.', chunks: 3 });
    const prepared = prepareAttempt(registry, MINI, REQUEST)!;
    await settle();
    expect(openai.requests).toHaveLength(0);
    const order: string[] = [];
    const deltas: string[] = [];
    const result = await run({
      prepared,
      deltas,
      onAttemptStart: async () => {
        await settle();
        order.push(`allowed with ${openai.requests.length} requests sent`);
      },
    });
    expect(order).toEqual(['allowed with 0 requests sent']);
    expect(result.text).toBe('Prepared answer.');
    expect(deltas.join('')).toBe('Prepared answer.');
    expect(openai.requests).toHaveLength(1);
    expect(openai.requests[0]!.body).toMatchObject({ model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Summarise the plan.' }] });
  });

  it.each([MINI, { provider: 'ANTHROPIC' as const, model: 'claude-haiku-4-5' }])(
    '$provider: times the request from when it is sent, not from when it was prepared (a long wait at the gate)',
    async (entry) => {
      // The registry's request timeout is 300 ms; admission (the run's start statement, a budget hold) takes longer.
      const fake = entry.provider === 'OPENAI' ? openai : anthropic;
      fake.enqueue({ kind: 'reply', text: 'Worth the wait.', firstByteDelayMs: 100 });
      const prepared = prepareAttempt(registry, entry, REQUEST)!;
      const result = await run({ prepared, chain: [entry], retry: { ...RETRY, maxAttempts: 1 }, onAttemptStart: () => new Promise((resolve) => setTimeout(resolve, 700)) });
      expect(result).toMatchObject({ provider: entry.provider, text: 'Worth the wait.' });
      expect(fake.requests).toHaveLength(1);
      // The provider is told the timeout we apply (whole seconds), as for a request sent at once.
      expect(fake.requests[0]!.headers['x-stainless-timeout']).toBe('0');

      // Still timed once sent: a provider that never answers is cut off at the request timeout after the gate opens.
      fake.enqueue({ kind: 'hang' });
      const hung = prepareAttempt(registry, entry, REQUEST)!;
      let allowedAt = 0;
      const error = await rejection(
        run({
          prepared: hung,
          chain: [entry],
          retry: { ...RETRY, maxAttempts: 1 },
          onAttemptStart: async () => {
            await new Promise((resolve) => setTimeout(resolve, 500));
            allowedAt = performance.now();
          },
        }),
      );
      expect(error).toMatchObject({ kind: 'retryable', code: 'timeout' });
      expect(performance.now() - allowedAt).toBeGreaterThanOrEqual(250);
      expect(performance.now() - allowedAt).toBeLessThan(1_500);
    },
  );

  it('drops it unsent when the budget refuses the attempt', async () => {
    const prepared = prepareAttempt(registry, MINI, REQUEST)!;
    const refusal = new Error('over budget');
    await expect(
      run({
        prepared,
        onAttemptStart: async () => {
          throw refusal;
        },
      }),
    ).rejects.toBe(refusal);
    await settle();
    expect(openai.requests).toHaveLength(0);
  });

  it('drops it unsent when the attempt is for another model, and sends that attempt instead', async () => {
    openai.enqueue({ kind: 'reply', text: 'From the chain.' });
    const prepared = prepareAttempt(registry, { provider: 'OPENAI', model: 'gpt-4o' }, REQUEST)!;
    const result = await run({ prepared });
    expect(result.text).toBe('From the chain.');
    await settle();
    expect(openai.requests.map((r) => r.body.model)).toEqual(['gpt-4o-mini']);
  });

  it('drops it unsent when the circuit is open and falls back', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, windowMs: 60_000, cooldownMs: 60_000 });
    openCircuit(breaker, 'OPENAI');
    const prepared = prepareAttempt(registry, MINI, REQUEST)!;
    const result = await run({ prepared, breaker, chain: [MINI, { provider: 'OFFLINE', model: 'offline-small' }] });
    expect(result.provider).toBe('OFFLINE');
    await settle();
    expect(openai.requests).toHaveLength(0);
  });

  it('discarded before use, the provider never sees it; a prepared offline stream waits too', async () => {
    const prepared = prepareAttempt(registry, MINI, REQUEST)!;
    prepared.discard();
    await settle();
    expect(openai.requests).toHaveLength(0);
    await expect(prepared.stream[Symbol.asyncIterator]().next()).rejects.toBeInstanceOf(ProviderError);

    const offline = prepareAttempt(registry, { provider: 'OFFLINE', model: 'offline-small' }, REQUEST)!;
    let first: string | undefined;
    const consumed = (async () => {
      for await (const chunk of offline.stream) {
        if (chunk.type === 'delta') first ??= chunk.text;
      }
    })();
    await settle();
    expect(first).toBeUndefined();
    offline.send();
    await consumed;
    expect(first).toBeTruthy();
  });

  it('is not prepared for an unconfigured provider', () => {
    const bare = createProviders({ offline: { tokenDelayMs: 0 } });
    expect(prepareAttempt(bare, MINI, REQUEST)).toBeNull();
  });
});
