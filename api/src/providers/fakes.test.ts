import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnthropicFake } from '../../test/fakes/anthropic-server.js';
import { splitText, type FakeProviderServer } from '../../test/fakes/fake-provider-server.js';
import { startOpenAIFake } from '../../test/fakes/openai-server.js';
import { createProviders } from './registry.js';

// The fakes are shared with benchmarks and end-to-end tests: check their wire formats with the raw SDKs.
let openaiFake: FakeProviderServer;
let anthropicFake: FakeProviderServer;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  openaiFake = await startOpenAIFake({ apiKey: 'sk-fake' });
  anthropicFake = await startAnthropicFake({ apiKey: 'sk-ant-fake' });
  openai = new OpenAI({ apiKey: 'sk-fake', baseURL: openaiFake.url, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'sk-ant-fake', baseURL: anthropicFake.url, maxRetries: 0, openTelemetry: false });
});

afterAll(async () => {
  await openaiFake.close();
  await anthropicFake.close();
});

describe('fake provider servers', () => {
  it('serve non-streaming completions in the real JSON shapes', async () => {
    openaiFake.enqueue({ kind: 'reply', text: 'plain json', usage: { inputTokens: 9, cachedInputTokens: 2, outputTokens: 2 } });
    const completion = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(completion.choices[0]?.message.content).toBe('plain json');
    expect(completion.usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 2 } });

    anthropicFake.enqueue({ kind: 'reply', text: 'plain message', usage: { inputTokens: 9, cachedInputTokens: 2, outputTokens: 2 } });
    const message = await anthropic.messages.create({
      model: 'claude-haiku-4-5',
      max_tokens: 10,
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(message.content).toEqual([{ type: 'text', text: 'plain message', citations: null }]);
    expect(message.usage).toMatchObject({ input_tokens: 7, cache_read_input_tokens: 2, output_tokens: 2 });
  });

  it('stream through the SDKs’ own helpers', async () => {
    anthropicFake.enqueue({ kind: 'reply', text: 'streamed via helper', chunks: 3 });
    const final = await anthropic.messages
      .stream({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
      .finalMessage();
    expect(final.content[0]).toMatchObject({ type: 'text', text: 'streamed via helper' });
    expect(final.stop_reason).toBe('end_turn');

    openaiFake.enqueue({ kind: 'reply', text: 'streamed openai' });
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    // Without include_usage there is no usage chunk and no usage field.
    expect(chunks.every((c) => c.usage === undefined && c.choices.length === 1)).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('streamed openai');
  });

  it('list models and reject a wrong key with the provider’s 401', async () => {
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id)).toContain('gpt-4o-mini');
    const page = await anthropic.models.list();
    expect(page.data.map((m) => m.id)).toContain('claude-haiku-4-5');

    const wrong = new OpenAI({ apiKey: 'sk-nope', baseURL: openaiFake.url, maxRetries: 0 });
    await expect(wrong.models.list()).rejects.toMatchObject({ status: 401, code: 'invalid_api_key' });
    expect(openaiFake.requests.at(-1)?.behavior).toBe('auth_failed');
  });

  it('record time to first byte and first chunk', async () => {
    openaiFake.reset().enqueue({ kind: 'reply', text: 'slow start', firstByteDelayMs: 60, chunkDelayMs: 30 });
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    for await (const chunk of stream) void chunk;
    const [rec] = openaiFake.requests;
    expect(rec?.ttfbMs).toBeGreaterThanOrEqual(55);
    expect(rec!.firstChunkAt! - rec!.firstByteAt!).toBeGreaterThanOrEqual(25);
    expect(rec).toMatchObject({ stream: true, chunksSent: 2, completed: true, disconnectedByClient: false });
  });

  it('drop the connection without a response on `destroy` (a retryable failure for the adapter)', async () => {
    openaiFake.reset().enqueue({ kind: 'destroy' });
    const registry = createProviders({ openai: { apiKey: 'sk-fake', baseUrl: openaiFake.url } });
    const stream = registry.get('OPENAI').stream({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], maxOutputTokens: 5 });
    const error = await (async () => {
      for await (const chunk of stream) void chunk;
    })().catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: 'retryable', provider: 'OPENAI' });
  });

  it('split text into the requested number of chunks', () => {
    expect(splitText('abcdefgh', 3)).toEqual(['abc', 'de', 'fgh']);
    expect(splitText('one two  three')).toEqual(['one ', 'two  ', 'three']);
    expect(splitText('ab', 5)).toEqual(['a', 'b']);
  });
});
