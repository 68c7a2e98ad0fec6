import * as AnthropicSdk from '@anthropic-ai/sdk';
import * as OpenAISdk from 'openai';
import { describe, expect, it } from 'vitest';
import { classifyError, isAbortError, parseRetryAfterMs, ProviderError } from './errors.js';

describe('parseRetryAfterMs', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads delta-seconds, HTTP dates and retry-after-ms', () => {
    expect(parseRetryAfterMs(new Headers({ 'retry-after': '3' }), now)).toBe(3_000);
    expect(parseRetryAfterMs(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:05 GMT' }), now)).toBe(5_000);
    expect(parseRetryAfterMs(new Headers({ 'retry-after': 'Wed, 31 Dec 2025 23:00:00 GMT' }), now)).toBe(0);
    expect(parseRetryAfterMs(new Headers({ 'retry-after-ms': '250.4', 'retry-after': '9' }), now)).toBe(251);
    expect(parseRetryAfterMs({ 'Retry-After': '2' }, now)).toBe(2_000);
  });
  it('ignores missing or malformed values', () => {
    expect(parseRetryAfterMs(new Headers(), now)).toBeUndefined();
    expect(parseRetryAfterMs(new Headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(parseRetryAfterMs(undefined, now)).toBeUndefined();
  });
});

describe('classifyError', () => {
  it.each([
    [400, 'fatal'],
    [401, 'fatal'],
    [403, 'fatal'],
    [404, 'fatal'],
    [422, 'fatal'],
    [408, 'retryable'],
    [409, 'retryable'],
    [429, 'retryable'],
    [500, 'retryable'],
    [503, 'retryable'],
    [529, 'retryable'],
  ] as const)('HTTP %i is %s for both SDKs', (status, kind) => {
    const headers = new Headers({ 'retry-after': '2' });
    const openai = OpenAISdk.APIError.generate(status, { error: { message: 'openai says no', type: 't' } }, undefined, headers);
    const anthropic = AnthropicSdk.APIError.generate(
      status,
      { type: 'error', error: { type: 'api_error', message: 'anthropic says no' } },
      undefined,
      headers,
    );
    expect(classifyError('OPENAI', openai)).toMatchObject({ kind, status, message: 'openai says no', retryAfterMs: 2_000 });
    expect(classifyError('ANTHROPIC', anthropic)).toMatchObject({ kind, status, message: 'anthropic says no' });
  });

  it('lets x-should-retry override the status', () => {
    const no = OpenAISdk.APIError.generate(500, {}, undefined, new Headers({ 'x-should-retry': 'false' }));
    const yes = OpenAISdk.APIError.generate(400, {}, undefined, new Headers({ 'x-should-retry': 'true' }));
    expect(classifyError('OPENAI', no).kind).toBe('fatal');
    expect(classifyError('OPENAI', yes).kind).toBe('retryable');
  });

  it('treats SDK connection and timeout errors as retryable', () => {
    expect(classifyError('OPENAI', new OpenAISdk.APIConnectionTimeoutError())).toMatchObject({ kind: 'retryable', code: 'timeout' });
    expect(classifyError('ANTHROPIC', new AnthropicSdk.APIConnectionError({ message: 'Connection error.' })).kind).toBe(
      'retryable',
    );
    expect(classifyError('OPENAI', new OpenAISdk.APIUserAbortError()).kind).toBe('aborted');
  });

  it('treats socket errors as retryable, whatever wraps them', () => {
    for (const code of ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'UND_ERR_SOCKET']) {
      const wrapped = new TypeError('fetch failed', { cause: Object.assign(new Error('boom'), { code }) });
      expect(classifyError('OPENAI', wrapped)).toMatchObject({ kind: 'retryable', code });
    }
    expect(classifyError('XAI', new TypeError('terminated')).kind).toBe('retryable');
  });
  it('treats unknown errors as fatal and keeps ProviderErrors as they are', () => {
    expect(classifyError('OPENAI', new SyntaxError('Unexpected token')).kind).toBe('fatal');
    const original = new ProviderError({ kind: 'retryable', provider: 'ANTHROPIC', message: 'x' });
    expect(classifyError('OPENAI', original)).toBe(original);
  });
  it('recognises aborts', () => {
    const abort = new DOMException('This operation was aborted', 'AbortError');
    expect(isAbortError(abort)).toBe(true);
    expect(classifyError('OPENAI', abort).kind).toBe('aborted');
    expect(isAbortError(new Error('nope'))).toBe(false);
  });
});
