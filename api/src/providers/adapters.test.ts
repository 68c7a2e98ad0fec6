import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAnthropicFake } from '../../test/fakes/anthropic-server.js';
import type { FakeProviderServer } from '../../test/fakes/fake-provider-server.js';
import { startOpenAIFake, startXAIFake } from '../../test/fakes/openai-server.js';
import { ProviderError } from './errors.js';
import { createProviders } from './registry.js';
import type { CompletionRequest, ProviderId, ProviderRegistry, StreamChunk, TokenUsage } from './types.js';

const OPENAI_KEY = 'sk-test-openai-0001';
const ANTHROPIC_KEY = 'sk-ant-test-0001';

let openai: FakeProviderServer;
let anthropic: FakeProviderServer;
let registry: ProviderRegistry;
/** The same providers with short timeouts, for the tests of timing out. */
let timing: ProviderRegistry;

beforeAll(async () => {
  openai = await startOpenAIFake({ apiKey: OPENAI_KEY });
  anthropic = await startAnthropicFake({ apiKey: ANTHROPIC_KEY });
  const providers = {
    openai: { apiKey: OPENAI_KEY, baseUrl: openai.url },
    anthropic: { apiKey: ANTHROPIC_KEY, baseUrl: anthropic.url },
    // xAI and Perplexity speak the OpenAI format: point both at the OpenAI fake.
    xai: { apiKey: OPENAI_KEY, baseUrl: openai.url },
    perplexity: { apiKey: OPENAI_KEY, baseUrl: openai.origin },
  };
  // Long enough that a test about something else never times out on a loaded machine.
  registry = createProviders({ ...providers, timeouts: { requestTimeoutMs: 10_000, idleTimeoutMs: 10_000 } });
  timing = createProviders({ ...providers, timeouts: { requestTimeoutMs: 250, idleTimeoutMs: 250 } });
});

afterEach(() => {
  openai.reset();
  anthropic.reset();
});

afterAll(async () => {
  await openai.close();
  await anthropic.close();
});

function request(model: string, extra: Partial<CompletionRequest> = {}): CompletionRequest {
  return {
    model,
    system: 'You are terse.',
    messages: [{ role: 'user', content: 'Say hello.' }],
    maxOutputTokens: 64,
    ...extra,
  };
}

async function collect(stream: AsyncIterable<StreamChunk>): Promise<{ deltas: string[]; usage: TokenUsage[] }> {
  const deltas: string[] = [];
  const usage: TokenUsage[] = [];
  for await (const chunk of stream) {
    if (chunk.type === 'delta') deltas.push(chunk.text);
    else usage.push(chunk.usage);
  }
  return { deltas, usage };
}

/** Drains the stream expecting a ProviderError; also returns the deltas seen before it. */
async function failure(stream: AsyncIterable<StreamChunk>): Promise<{ error: ProviderError; deltas: string[] }> {
  const deltas: string[] = [];
  try {
    for await (const chunk of stream) if (chunk.type === 'delta') deltas.push(chunk.text);
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderError);
    return { error: error as ProviderError, deltas };
  }
  throw new Error('stream unexpectedly succeeded');
}

const fakeFor = (id: ProviderId) => (id === 'ANTHROPIC' ? anthropic : openai);
const modelFor: Record<'OPENAI' | 'ANTHROPIC', string> = { OPENAI: 'gpt-4o-mini', ANTHROPIC: 'claude-haiku-4-5' };

describe('OpenAI adapter (real openai SDK against the fake)', () => {
  it('streams deltas and the final usage, cached tokens included', async () => {
    openai.enqueue({
      kind: 'reply',
      text: 'Hello there, friend.',
      chunks: 3,
      usage: { inputTokens: 120, cachedInputTokens: 64, outputTokens: 5 },
    });
    const { deltas, usage } = await collect(registry.get('OPENAI').stream(request('gpt-4o-mini', { temperature: 0.2 })));
    expect(deltas.join('')).toBe('Hello there, friend.');
    expect(deltas).toHaveLength(3);
    expect(usage).toEqual([{ inputTokens: 120, cachedInputTokens: 64, outputTokens: 5 }]);

    const [recorded] = openai.requests;
    expect(recorded?.path).toBe('/v1/chat/completions');
    expect(recorded?.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
    expect(recorded?.headers['x-stainless-retry-count']).toBe('0');
    expect(recorded?.body).toMatchObject({
      model: 'gpt-4o-mini',
      stream: true,
      stream_options: { include_usage: true },
      max_completion_tokens: 64,
      temperature: 0.2,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Say hello.' },
      ],
    });
  });

  it('uses the configured base URL for xAI and Perplexity, with Perplexity on max_tokens', async () => {
    openai.enqueue({ kind: 'reply', text: 'grok says hi' }, { kind: 'reply', text: 'sonar says hi' });
    const xai = await collect(registry.get('XAI').stream(request('grok-4')));
    const pplx = await collect(registry.get('PERPLEXITY').stream(request('sonar')));
    expect(xai.deltas.join('')).toBe('grok says hi');
    expect(pplx.deltas.join('')).toBe('sonar says hi');
    expect(openai.requests.map((r) => [r.path, r.body.model])).toEqual([
      ['/v1/chat/completions', 'grok-4'],
      ['/chat/completions', 'sonar'],
    ]);
    expect(openai.requests[1]?.body).toMatchObject({ max_tokens: 64 });
    expect(openai.requests[1]?.body).not.toHaveProperty('max_completion_tokens');
    expect(registry.get('XAI').baseUrl).toBe(openai.url);
  });

  it('treats a stream with no final events as incomplete and retryable', async () => {
    openai.enqueue({ kind: 'reply', text: 'cut short', omitTerminalEvents: true });
    const { error, deltas } = await failure(registry.get('OPENAI').stream(request('gpt-4o-mini')));
    expect(deltas.join('')).toBe('cut short');
    expect(error).toMatchObject({ kind: 'retryable', code: 'incomplete_stream', provider: 'OPENAI' });
  });

  it('classifies an in-stream error event as retryable', async () => {
    openai.enqueue({ kind: 'reply', text: 'one two three', errorAfterChunks: 1 });
    const { error, deltas } = await failure(registry.get('OPENAI').stream(request('gpt-4o-mini')));
    expect(deltas).toEqual(['one ']);
    expect(error).toMatchObject({ kind: 'retryable', code: 'server_error' });
    expect(error.message).toContain('The server had an error');
  });

  it('reports a refused connection as retryable', async () => {
    const gone = await startOpenAIFake();
    await gone.close();
    const dead = createProviders({ openai: { apiKey: 'k', baseUrl: gone.url } });
    const { error } = await failure(dead.get('OPENAI').stream(request('gpt-4o-mini')));
    expect(error.kind).toBe('retryable');
  });

  it("bills OpenAI's reasoning tokens once: completion_tokens already includes them", async () => {
    openai.enqueue({ kind: 'reply', text: 'Four.', usage: { inputTokens: 40, outputTokens: 300, reasoningTokens: 298 } });
    const { usage } = await collect(registry.get('OPENAI').stream(request('gpt-5-mini')));
    expect(usage).toEqual([{ inputTokens: 40, cachedInputTokens: 0, outputTokens: 300 }]);
  });

  it("bills xAI's reasoning tokens as output: xAI reports them beside completion_tokens", async () => {
    const xaiFake = await startXAIFake({ apiKey: OPENAI_KEY });
    try {
      const xai = createProviders({ xai: { apiKey: OPENAI_KEY, baseUrl: xaiFake.url } });
      xaiFake.enqueue({
        kind: 'reply',
        text: 'Four.',
        usage: { inputTokens: 663, cachedInputTokens: 654, outputTokens: 174, reasoningTokens: 124 },
      });
      const { usage } = await collect(xai.get('XAI').stream(request('grok-4')));
      expect(usage).toEqual([{ inputTokens: 663, cachedInputTokens: 654, outputTokens: 174 }]);
    } finally {
      await xaiFake.close();
    }
  });
});

describe('waiting for the first event', () => {
  it('gives a response whose headers came the idle timeout, not the request timeout, to send its first event', async () => {
    // gpt-5 answers with headers at once, then says nothing while it reasons.
    const patient = createProviders({
      openai: { apiKey: OPENAI_KEY, baseUrl: openai.url },
      timeouts: { requestTimeoutMs: 150, idleTimeoutMs: 2_000 },
    });
    openai.enqueue({ kind: 'reply', text: 'Forty-two.', firstEventDelayMs: 400 });
    const { deltas } = await collect(patient.get('OPENAI').stream(request('gpt-5')));
    expect(deltas.join('')).toBe('Forty-two.');

    // Headers that never come are still the request timeout's.
    openai.enqueue({ kind: 'hang' });
    const started = performance.now();
    const { error } = await failure(patient.get('OPENAI').stream(request('gpt-5')));
    expect(error).toMatchObject({ kind: 'retryable', code: 'timeout' });
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe.each(['ANTHROPIC', 'OPENAI'] as const)('%s: keep-alives during a long wait', (id) => {
  it('keeps a stream that pings more often than the idle timeout, however long before its text', async () => {
    // Idle timeout 600 ms; the model thinks for 1.8 s after message_start, with Anthropic's ping (a keep-alive
    // comment in the OpenAI format) every 60 ms: events the SDKs drop before our loop sees them.
    const patient = createProviders({
      openai: { apiKey: OPENAI_KEY, baseUrl: openai.url },
      anthropic: { apiKey: ANTHROPIC_KEY, baseUrl: anthropic.url },
      timeouts: { requestTimeoutMs: 10_000, idleTimeoutMs: 600 },
    });
    fakeFor(id).enqueue({ kind: 'reply', text: 'Thought it through.', chunks: 2, pauseAfterChunks: 0, pauseMs: 1_800, pingEveryMs: 60 });
    const { deltas } = await collect(patient.get(id).stream(request(modelFor[id])));
    expect(deltas.join('')).toBe('Thought it through.');
    expect(fakeFor(id).requests[0]!.pingsSent).toBeGreaterThanOrEqual(10);
    expect(fakeFor(id).requests).toHaveLength(1);
  });

  it('still times out the same wait without keep-alives', async () => {
    fakeFor(id).enqueue({ kind: 'reply', text: 'Thought it through.', chunks: 2, pauseAfterChunks: 0, pauseMs: 900 });
    const { error, deltas } = await failure(timing.get(id).stream(request(modelFor[id])));
    expect(deltas).toEqual([]);
    expect(error).toMatchObject({ kind: 'retryable', code: 'timeout' });
    expect((await fakeFor(id).whenClosed(0)).disconnectedByClient).toBe(true);
  });
});

describe('usage bound without a report', () => {
  it("bounds a reasoning model's output at maxOutputTokens, not at its text: its reasoning never shows", async () => {
    openai.enqueue({ kind: 'reply', text: 'Four.', omitUsage: true }, { kind: 'reply', text: 'Four.', omitUsage: true });
    const reasoning = await collect(registry.get('XAI').stream(request('grok-4')));
    expect(reasoning.usage[0]?.outputTokens).toBe(64);
    const plain = await collect(registry.get('XAI').stream(request('grok-4-fast-non-reasoning')));
    expect(plain.usage[0]?.outputTokens).toBe(Buffer.byteLength('Four.'));
  });
});

describe.each(['OPENAI', 'ANTHROPIC'] as const)('%s: a connection lost after the response was whole', (id) => {
  it('keeps the response when only the closing event ([DONE] / message_stop) was lost, and still fails one cut before its usage', async () => {
    fakeFor(id).enqueue(
      { kind: 'reply', text: 'All of it.', chunks: 3, usage: { inputTokens: 30, outputTokens: 4 }, dropBeforeLastEvent: true },
      { kind: 'reply', text: 'Half of', chunks: 2, dropAfterChunks: 2 },
    );
    const whole = await collect(registry.get(id).stream(request(modelFor[id])));
    expect(whole.deltas.join('')).toBe('All of it.');
    expect(whole.usage).toEqual([{ inputTokens: 30, cachedInputTokens: 0, outputTokens: 4 }]);
    const cut = await failure(registry.get(id).stream(request(modelFor[id])));
    expect(cut.deltas.join('')).toBe('Half of');
    expect(cut.error).toMatchObject({ kind: 'retryable' });
  });
});

describe('a usage report missing a count (an OpenAI-compatible server)', () => {
  it('bounds the missing count as if unreported, keeps the counts it has, and says the usage is estimated', async () => {
    openai.enqueue(
      { kind: 'reply', text: 'Four.', rawUsage: { prompt_tokens: null, completion_tokens: 3, total_tokens: null } },
      { kind: 'reply', text: 'Four.', rawUsage: { prompt_tokens: 21, prompt_tokens_details: { cached_tokens: 'many' } } },
      { kind: 'reply', text: 'Four.', rawUsage: { prompt_tokens: 21, completion_tokens: 2.5 } },
    );
    const chunks = async () => {
      const got: StreamChunk[] = [];
      for await (const chunk of registry.get('OPENAI').stream(request('gpt-4o-mini'))) if (chunk.type === 'usage') got.push(chunk);
      return got;
    };
    const prompt = (await chunks())[0]!;
    expect(prompt).toEqual({ type: 'usage', usage: { inputTokens: expect.any(Number), cachedInputTokens: 0, outputTokens: 3 }, estimated: true });
    expect(prompt.type === 'usage' && prompt.usage.inputTokens).toBeGreaterThan(0);
    expect(await chunks()).toEqual([
      { type: 'usage', usage: { inputTokens: 21, cachedInputTokens: 0, outputTokens: Buffer.byteLength('Four.') }, estimated: true },
    ]);
    expect(await chunks()).toEqual([
      { type: 'usage', usage: { inputTokens: 21, cachedInputTokens: 0, outputTokens: Buffer.byteLength('Four.') }, estimated: true },
    ]);
  });
});

describe('Anthropic adapter (real @anthropic-ai/sdk against the fake)', () => {
  it('streams deltas and usage from message_start + message_delta, cache reads counted as cached input', async () => {
    anthropic.enqueue({
      kind: 'reply',
      text: 'Hello from Claude.',
      chunks: 4,
      usage: { inputTokens: 300, cachedInputTokens: 200, outputTokens: 7 },
    });
    const { deltas, usage } = await collect(registry.get('ANTHROPIC').stream(request('claude-haiku-4-5')));
    expect(deltas.join('')).toBe('Hello from Claude.');
    expect(deltas).toHaveLength(4);
    expect(usage).toEqual([{ inputTokens: 300, cachedInputTokens: 200, outputTokens: 7 }]);

    const [recorded] = anthropic.requests;
    expect(recorded?.path).toBe('/v1/messages');
    expect(recorded?.headers.authorization).toBe(`Bearer ${ANTHROPIC_KEY}`);
    expect(recorded?.headers['anthropic-version']).toBeTruthy();
    expect(recorded?.body).toEqual({
      model: 'claude-haiku-4-5',
      max_tokens: 64,
      stream: true,
      system: 'You are terse.',
      messages: [{ role: 'user', content: 'Say hello.' }],
    });
  });

  it('classifies 529 overloaded as retryable and an in-stream error event too', async () => {
    anthropic.enqueue({ kind: 'error', status: 529 }, { kind: 'reply', text: 'a b c', errorAfterChunks: 2 });
    const first = await failure(registry.get('ANTHROPIC').stream(request('claude-haiku-4-5')));
    expect(first.error).toMatchObject({ kind: 'retryable', status: 529, message: 'Overloaded' });
    const second = await failure(registry.get('ANTHROPIC').stream(request('claude-haiku-4-5')));
    expect(second.deltas.join('')).toBe('a b ');
    expect(second.error).toMatchObject({ kind: 'retryable', code: 'overloaded_error' });
  });

  it('treats a stream without message_stop as incomplete', async () => {
    anthropic.enqueue({ kind: 'reply', text: 'partial', omitTerminalEvents: true });
    const { error } = await failure(registry.get('ANTHROPIC').stream(request('claude-haiku-4-5')));
    expect(error).toMatchObject({ kind: 'retryable', code: 'incomplete_stream' });
  });
});

describe.each(['OPENAI', 'ANTHROPIC'] as const)('%s: failures, timeouts and abort', (id) => {
  it('401 is fatal and carries the provider message', async () => {
    const wrongKey = createProviders({
      openai: { apiKey: 'sk-wrong-key-123456', baseUrl: openai.url },
      anthropic: { apiKey: 'sk-ant-wrong', baseUrl: anthropic.url },
    });
    const { error } = await failure(wrongKey.get(id).stream(request(modelFor[id])));
    expect(error).toMatchObject({ kind: 'fatal', status: 401, provider: id });
    expect(error.message).toBe(
      id === 'OPENAI'
        ? 'Incorrect API key provided: sk-************3456. You can find your API key at https://platform.openai.com/account/api-keys.'
        : 'invalid x-api-key',
    );
  });

  it('429 is retryable and exposes Retry-After', async () => {
    fakeFor(id).enqueue({ kind: 'error', status: 429, retryAfter: 7 });
    const { error } = await failure(registry.get(id).stream(request(modelFor[id])));
    expect(error).toMatchObject({ kind: 'retryable', status: 429, retryAfterMs: 7000 });
  });

  it('500 is retryable; 400 is fatal', async () => {
    fakeFor(id).enqueue({ kind: 'error', status: 500 }, { kind: 'error', status: 400 });
    expect((await failure(registry.get(id).stream(request(modelFor[id])))).error).toMatchObject({
      kind: 'retryable',
      status: 500,
    });
    expect((await failure(registry.get(id).stream(request(modelFor[id])))).error).toMatchObject({
      kind: 'fatal',
      status: 400,
    });
  });

  it('times out a server that never answers, and hangs up on it', async () => {
    fakeFor(id).enqueue({ kind: 'hang' });
    const started = performance.now();
    const { error } = await failure(timing.get(id).stream(request(modelFor[id])));
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(error).toMatchObject({ kind: 'retryable', code: 'timeout' });
    expect((await fakeFor(id).whenClosed(0)).disconnectedByClient).toBe(true);
  });

  it('times out a stream that stalls mid-way (idle timeout)', async () => {
    fakeFor(id).enqueue({ kind: 'reply', text: 'one two three four', stallAfterChunks: 2 });
    const { error, deltas } = await failure(timing.get(id).stream(request(modelFor[id])));
    expect(deltas.join('')).toBe('one two ');
    expect(error).toMatchObject({ kind: 'retryable', code: 'timeout' });
    expect((await fakeFor(id).whenClosed(0)).disconnectedByClient).toBe(true);
  });

  it('reports a connection dropped mid-stream as retryable', async () => {
    fakeFor(id).enqueue({ kind: 'reply', text: 'one two three four', dropAfterChunks: 2 });
    const { error, deltas } = await failure(registry.get(id).stream(request(modelFor[id])));
    expect(deltas.join('')).toBe('one two ');
    expect(error.kind).toBe('retryable');
  });

  it('aborts mid-stream within a second and the server sees the disconnect', async () => {
    fakeFor(id).enqueue({ kind: 'reply', text: 'word '.repeat(200), chunkDelayMs: 20 });
    const controller = new AbortController();
    let abortedAt = 0;
    const deltas: string[] = [];
    const run = (async () => {
      for await (const chunk of registry.get(id).stream(request(modelFor[id], { signal: controller.signal }))) {
        if (chunk.type !== 'delta') continue;
        deltas.push(chunk.text);
        if (deltas.length === 3) {
          abortedAt = performance.now();
          controller.abort();
        }
      }
    })();
    await expect(run).rejects.toMatchObject({ kind: 'aborted', provider: id });
    expect(performance.now() - abortedAt).toBeLessThan(1_000);
    expect(deltas).toHaveLength(3);
    const recorded = await fakeFor(id).whenClosed(0, 1_000);
    expect(recorded.disconnectedByClient).toBe(true);
    expect(recorded.closedAt! - abortedAt).toBeLessThan(1_000);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const { error } = await failure(registry.get(id).stream(request(modelFor[id], { signal: AbortSignal.abort() })));
    expect(error.kind).toBe('aborted');
  });
});
