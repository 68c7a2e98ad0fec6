import { randomBytes } from 'node:crypto';
import {
  bearerToken,
  FakeProviderServer,
  sseFrame,
  type FakeServerOptions,
  type ReplyContext,
  type WireFormat,
} from './fake-provider-server.js';

const requestId = () => `req_${randomBytes(12).toString('hex')}`;

/** Anthropic reports input_tokens WITHOUT cache reads; ScriptedUsage.inputTokens is the total. */
function inputUsage(ctx: ReplyContext) {
  return {
    input_tokens: Math.max(0, ctx.usage.inputTokens - ctx.usage.cachedInputTokens),
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: ctx.usage.cachedInputTokens,
  };
}

function message(ctx: ReplyContext, content: unknown[], stopReason: string | null, outputTokens: number) {
  return {
    id: ctx.id,
    type: 'message',
    role: 'assistant',
    model: ctx.model,
    content,
    stop_reason: stopReason,
    stop_sequence: null,
    usage: {
      ...inputUsage(ctx),
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
      output_tokens: outputTokens,
      service_tier: 'standard',
    },
  };
}

const ERROR_TYPES: Record<number, { type: string; message: string }> = {
  400: { type: 'invalid_request_error', message: 'messages: at least one message is required' },
  401: { type: 'authentication_error', message: 'invalid x-api-key' },
  403: { type: 'permission_error', message: 'Your API key does not have permission to use the specified resource.' },
  404: { type: 'not_found_error', message: 'The requested resource could not be found.' },
  413: { type: 'request_too_large', message: 'Request exceeds the maximum allowed number of bytes.' },
  429: {
    type: 'rate_limit_error',
    message:
      'This request would exceed the rate limit for your organization of 50 requests per minute. Please try again later.',
  },
  500: { type: 'api_error', message: 'Internal server error' },
  529: { type: 'overloaded_error', message: 'Overloaded' },
};

/** Anthropic Messages API wire format. */
export const anthropicWire: WireFormat = {
  name: 'anthropic',
  idPrefix: 'msg_fake',
  route(method, path) {
    if (method === 'POST' && path === '/v1/messages') return 'completion';
    if (method === 'GET' && path === '/v1/models') return 'models';
    return undefined;
  },
  // SDK 1.x sends the key as a bearer token; older clients send x-api-key. Accept either.
  authorized: (headers, apiKey) => headers['x-api-key'] === apiKey || bearerToken(headers) === apiKey,
  isStreaming: (body) => body?.stream === true,
  model: (body) => String(body?.model ?? 'unknown-model'),
  promptText: (body) => JSON.stringify([body?.system ?? '', body?.messages ?? '']),
  errorStatusDefaults(status, body) {
    if (status === 404 && body?.model) return { type: 'not_found_error', message: `model: ${String(body.model)}` };
    return (
      ERROR_TYPES[status] ??
      (status >= 500
        ? { type: 'api_error', message: 'Internal server error' }
        : { type: 'invalid_request_error', message: `Request failed with status ${status}` })
    );
  },
  errorBody: (_status, type, message) => ({ type: 'error', error: { type, message }, request_id: requestId() }),
  responseHeaders: () => ({ 'request-id': requestId(), 'anthropic-organization-id': 'org-fake' }),
  json: (ctx) => message(ctx, [{ type: 'text', text: ctx.text, citations: null }], 'end_turn', ctx.usage.outputTokens),
  models: () => ({
    data: ['claude-opus-4-5', 'claude-sonnet-4-6', 'claude-haiku-4-5'].map((id) => ({
      type: 'model',
      id,
      display_name: id,
      created_at: '2025-10-01T00:00:00Z',
    })),
    has_more: false,
    first_id: 'claude-opus-4-5',
    last_id: 'claude-haiku-4-5',
  }),
  streamStart: (ctx) => [
    sseFrame({ type: 'message_start', message: message(ctx, [], null, 1) }, 'message_start'),
    sseFrame(
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '', citations: null } },
      'content_block_start',
    ),
    sseFrame({ type: 'ping' }, 'ping'),
  ],
  streamDelta: (_ctx, piece) => [
    sseFrame(
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: piece } },
      'content_block_delta',
    ),
  ],
  streamEnd: (ctx) => [
    sseFrame({ type: 'content_block_stop', index: 0 }, 'content_block_stop'),
    sseFrame(
      {
        type: 'message_delta',
        delta: { stop_reason: 'end_turn', stop_sequence: null },
        // Current API versions repeat the cumulative input counts here.
        usage: { ...inputUsage(ctx), output_tokens: ctx.usage.outputTokens },
      },
      'message_delta',
    ),
    sseFrame({ type: 'message_stop' }, 'message_stop'),
  ],
  streamPing: () => sseFrame({ type: 'ping' }, 'ping'),
  streamError: () => [
    sseFrame({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' }, request_id: requestId() }, 'error'),
  ],
};

/** Fake Anthropic API; `url` is the origin (the SDK appends `/v1/messages`), usable as ANTHROPIC_BASE_URL. */
export function startAnthropicFake(opts: FakeServerOptions = {}): Promise<FakeProviderServer> {
  return FakeProviderServer.start(anthropicWire, opts, '');
}
