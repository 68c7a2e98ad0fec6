import * as OpenAISdk from 'openai';
import * as AnthropicSdk from '@anthropic-ai/sdk';
import type { AttemptRecord } from './executor.js';
import { apiKeyVariable, type ProviderId } from './types.js';

export type ProviderErrorKind = 'retryable' | 'fatal' | 'unconfigured' | 'aborted' | 'circuit_open';

export interface ProviderErrorOptions {
  kind: ProviderErrorKind;
  provider: ProviderId;
  message: string;
  status?: number;
  retryAfterMs?: number;
  /** Machine-readable detail: the provider's error type/code, a socket error code, or 'timeout'. */
  code?: string;
  cause?: unknown;
}

/** The one error type every adapter and the executor throw. `message` is the provider's own text. */
export class ProviderError extends Error {
  override readonly name = 'ProviderError';
  readonly kind: ProviderErrorKind;
  readonly provider: ProviderId;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  readonly code: string | undefined;
  /** Set by the executor when text had already been delivered to the caller before the failure. */
  partial = false;
  /**
   * Set by an adapter when the failure came after the provider had started its response (the stream was open):
   * it was at work on the request and may bill it although it never sent a usage report.
   */
  responseStarted = false;
  /** Set by the executor on the error it finally throws: every attempt it made or skipped. */
  attempts: AttemptRecord[] | undefined;

  constructor(opts: ProviderErrorOptions) {
    super(opts.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.kind = opts.kind;
    this.provider = opts.provider;
    this.status = opts.status;
    this.retryAfterMs = opts.retryAfterMs;
    this.code = opts.code;
  }

  get retryable(): boolean {
    return this.kind === 'retryable';
  }
}

export function isProviderError(err: unknown): err is ProviderError {
  return err instanceof ProviderError;
}

/** True for any abort: our ProviderError kind 'aborted', an SDK user-abort error, or a DOM AbortError. */
export function isAbortError(err: unknown): boolean {
  if (err instanceof ProviderError) return err.kind === 'aborted';
  if (err instanceof OpenAISdk.APIUserAbortError || err instanceof AnthropicSdk.APIUserAbortError) return true;
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError';
}

export function abortedError(provider: ProviderId, reason?: unknown): ProviderError {
  const detail = reason instanceof Error ? `: ${reason.message}` : typeof reason === 'string' ? `: ${reason}` : '';
  return new ProviderError({ kind: 'aborted', provider, message: `Request aborted${detail}`, code: 'aborted' });
}

/** Marks a failure that came once the provider's response had started (see ProviderError.responseStarted). */
export function startedResponse(err: ProviderError): ProviderError {
  err.responseStarted = true;
  return err;
}

/** `label`: the provider's name as people know it ("OpenAI"); the message says which variable to set. */
export function unconfiguredError(provider: ProviderId, label: string): ProviderError {
  return new ProviderError({
    kind: 'unconfigured',
    provider,
    message: `${label} is not configured on this server: set ${apiKeyVariable(provider)} to use it`,
    code: 'unconfigured',
  });
}

export function timeoutError(provider: ProviderId, message: string): ProviderError {
  return new ProviderError({ kind: 'retryable', provider, message, code: 'timeout' });
}

type HeaderSource = Headers | Record<string, string | string[] | undefined> | null | undefined;

function readHeader(headers: HeaderSource, name: string): string | undefined {
  if (!headers) return undefined;
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Delay requested by the server, in ms: `retry-after-ms` (OpenAI's extension) wins, then
 * `retry-after` as delta-seconds or an HTTP date. Undefined when absent or unparseable.
 */
export function parseRetryAfterMs(headers: HeaderSource, now: number = Date.now()): number | undefined {
  const ms = readHeader(headers, 'retry-after-ms');
  if (ms !== undefined && ms.trim() !== '') {
    const value = Number(ms);
    if (Number.isFinite(value) && value >= 0) return Math.ceil(value);
  }
  const ra = readHeader(headers, 'retry-after')?.trim();
  if (!ra) return undefined;
  if (/^\d+(\.\d+)?$/.test(ra)) return Math.ceil(Number(ra) * 1000);
  const date = Date.parse(ra);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

const RETRYABLE_SOCKET_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

// Error `type`s a provider may send inside a 200 stream (SSE error event) that mean "try again".
const RETRYABLE_BODY_TYPES = new Set([
  'server_error',
  'api_error',
  'overloaded_error',
  'rate_limit_error',
  'rate_limit_exceeded',
  'timeout_error',
  'service_unavailable',
]);

// Error codes a provider may send with a retryable status that no retry can fix: OpenAI's 429 for an account
// out of credit.
const FATAL_BODY_TYPES = new Set(['insufficient_quota']);

function socketCode(err: unknown): string | undefined {
  // undici wraps the real socket error: TypeError('fetch failed' | 'terminated', { cause }).
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 6; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE_SOCKET_CODES.has(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The provider's own message from an SDK APIError body (OpenAI: error.message; Anthropic: error.error.message). */
function providerMessage(err: Error): string {
  const body = (err as { error?: unknown }).error as Record<string, unknown> | undefined;
  if (body && typeof body === 'object') {
    if (typeof body['message'] === 'string') return body['message'];
    const nested = body['error'] as Record<string, unknown> | undefined;
    if (nested && typeof nested === 'object' && typeof nested['message'] === 'string') return nested['message'];
  }
  return err.message;
}

function bodyType(err: Error): string | undefined {
  const body = (err as { error?: unknown }).error as Record<string, unknown> | undefined;
  if (!body || typeof body !== 'object') return undefined;
  // Anthropic: { type: 'error', error: { type } }. OpenAI: { type, code } where code is the more specific.
  const nested = body['error'] as Record<string, unknown> | undefined;
  const candidates = nested && typeof nested === 'object' ? [nested['type'], body['type']] : [body['code'], body['type']];
  return candidates.find((c): c is string => typeof c === 'string');
}

/** Turn anything an SDK (or fetch, or a socket) throws into a classified ProviderError. */
export function classifyError(provider: ProviderId, err: unknown, now: number = Date.now()): ProviderError {
  if (err instanceof ProviderError) return err;
  if (isAbortError(err)) return abortedError(provider);

  if (err instanceof OpenAISdk.APIConnectionTimeoutError || err instanceof AnthropicSdk.APIConnectionTimeoutError) {
    return timeoutError(provider, err.message);
  }

  if (err instanceof OpenAISdk.APIError || err instanceof AnthropicSdk.APIError) {
    const status = typeof err.status === 'number' ? err.status : undefined;
    if (status !== undefined) {
      const headers = err.headers as Headers | undefined;
      const shouldRetry = readHeader(headers, 'x-should-retry');
      const code = bodyType(err);
      const retryable =
        shouldRetry === 'true' ||
        (shouldRetry !== 'false' && isRetryableStatus(status) && !(code !== undefined && FATAL_BODY_TYPES.has(code)));
      const retryAfterMs = parseRetryAfterMs(headers, now);
      return new ProviderError({
        kind: retryable ? 'retryable' : 'fatal',
        provider,
        status,
        message: providerMessage(err),
        cause: err,
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        ...(code !== undefined ? { code } : {}),
      });
    }
    // No status: a connection failure, or an error event inside an already-open stream.
    const code = socketCode(err) ?? bodyType(err);
    const retryable =
      err instanceof OpenAISdk.APIConnectionError ||
      err instanceof AnthropicSdk.APIConnectionError ||
      (code !== undefined && (RETRYABLE_SOCKET_CODES.has(code) || RETRYABLE_BODY_TYPES.has(code)));
    return new ProviderError({
      kind: retryable ? 'retryable' : 'fatal',
      provider,
      message: providerMessage(err),
      cause: err,
      ...(code !== undefined ? { code } : {}),
    });
  }

  const code = socketCode(err);
  if (code !== undefined) {
    return new ProviderError({ kind: 'retryable', provider, message: (err as Error).message, code, cause: err });
  }
  // undici reports a body cut short by the peer as TypeError('terminated').
  if (err instanceof TypeError && /terminated|fetch failed|other side closed/i.test(err.message)) {
    return new ProviderError({ kind: 'retryable', provider, message: err.message, code: 'connection', cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new ProviderError({ kind: 'fatal', provider, message, cause: err });
}
