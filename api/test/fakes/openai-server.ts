import { randomBytes } from 'node:crypto';
import {
  bearerToken,
  FakeProviderServer,
  sseFrame,
  type FakeServerOptions,
  type ReplyContext,
  type WireFormat,
} from './fake-provider-server.js';

function maskKey(key: string | undefined): string {
  if (!key) return '';
  return key.length <= 8 ? key : `${key.slice(0, 3)}${'*'.repeat(Math.min(16, key.length - 7))}${key.slice(-4)}`;
}

/** OpenAI: completion_tokens includes the reasoning tokens, which completion_tokens_details breaks out. */
const usageJson = (ctx: ReplyContext) => ({
  prompt_tokens: ctx.usage.inputTokens,
  completion_tokens: ctx.usage.outputTokens,
  total_tokens: ctx.usage.inputTokens + ctx.usage.outputTokens,
  prompt_tokens_details: { cached_tokens: ctx.usage.cachedInputTokens, audio_tokens: 0 },
  completion_tokens_details: {
    reasoning_tokens: ctx.usage.reasoningTokens,
    audio_tokens: 0,
    accepted_prediction_tokens: 0,
    rejected_prediction_tokens: 0,
  },
});

/**
 * xAI: completion_tokens counts the answer only; reasoning_tokens come on top (billed at the completion
 * rate) and total_tokens adds all three.
 */
const xaiUsageJson = (ctx: ReplyContext) => {
  const completion = ctx.usage.outputTokens - ctx.usage.reasoningTokens;
  return {
    prompt_tokens: ctx.usage.inputTokens,
    completion_tokens: completion,
    total_tokens: ctx.usage.inputTokens + completion + ctx.usage.reasoningTokens,
    prompt_tokens_details: {
      text_tokens: ctx.usage.inputTokens,
      audio_tokens: 0,
      image_tokens: 0,
      cached_tokens: ctx.usage.cachedInputTokens,
    },
    completion_tokens_details: {
      reasoning_tokens: ctx.usage.reasoningTokens,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
    num_sources_used: 0,
  };
};

const includeUsage = (body: any): boolean => body?.stream_options?.include_usage === true;

function chunk(ctx: ReplyContext, choices: unknown[], usage?: unknown) {
  return {
    id: ctx.id,
    object: 'chat.completion.chunk',
    created: ctx.created,
    model: ctx.model,
    service_tier: 'default',
    system_fingerprint: 'fp_fake0001',
    choices,
    // The real API adds `"usage": null` to every chunk once include_usage is requested.
    ...(includeUsage(ctx.requestBody) && !ctx.omitUsage ? { usage: usage ?? null } : {}),
  };
}

/** Chat Completions wire format, with the usage report of the provider it imitates. */
const compatibleWire = (name: string, usageJson: (ctx: ReplyContext) => unknown): WireFormat => ({
  name,
  idPrefix: 'chatcmpl-fake',
  route(method, path) {
    const p = path.replace(/^\/v1(?=\/)/, '');
    if (method === 'POST' && p === '/chat/completions') return 'completion';
    if (method === 'GET' && p === '/models') return 'models';
    return undefined;
  },
  authorized: (headers, apiKey) => bearerToken(headers) === apiKey,
  isStreaming: (body) => body?.stream === true,
  model: (body) => String(body?.model ?? 'unknown-model'),
  promptText: (body) => JSON.stringify(body?.messages ?? ''),
  errorStatusDefaults(status, body, headers) {
    switch (status) {
      case 400:
        return { type: 'invalid_request_error', message: "Invalid request: 'messages' is malformed." };
      case 401:
        return {
          type: 'invalid_request_error',
          message: `Incorrect API key provided: ${maskKey(bearerToken(headers))}. You can find your API key at https://platform.openai.com/account/api-keys.`,
        };
      case 403:
        return { type: 'invalid_request_error', message: 'You are not allowed to access this resource.' };
      case 404:
        return {
          type: 'invalid_request_error',
          message: `The model \`${String(body?.model ?? '')}\` does not exist or you do not have access to it.`,
        };
      case 429:
        return {
          type: 'requests',
          message: `Rate limit reached for ${String(body?.model ?? 'model')} in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s.`,
        };
      case 503:
        return { type: 'server_error', message: 'The engine is currently overloaded, please try again later.' };
      default:
        return status >= 500
          ? { type: 'server_error', message: 'The server had an error while processing your request. Sorry about that!' }
          : { type: 'invalid_request_error', message: `Request failed with status ${status}.` };
    }
  },
  errorBody(status, type, message) {
    // A 429 is a rate limit, or (type and code insufficient_quota) an account out of credit.
    const code =
      status === 401
        ? 'invalid_api_key'
        : status === 404
          ? 'model_not_found'
          : status === 429
            ? type === 'insufficient_quota'
              ? 'insufficient_quota'
              : 'rate_limit_exceeded'
            : null;
    return { error: { message, type, param: null, code } };
  },
  responseHeaders: () => ({
    'x-request-id': `req_${randomBytes(12).toString('hex')}`,
    'openai-processing-ms': '12',
    'openai-version': '2020-10-01',
  }),
  json: (ctx) => ({
    id: ctx.id,
    object: 'chat.completion',
    created: ctx.created,
    model: ctx.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: ctx.text, refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: ctx.rawUsage ?? usageJson(ctx),
    service_tier: 'default',
    system_fingerprint: 'fp_fake0001',
  }),
  models: () => ({
    object: 'list',
    data: ['gpt-5', 'gpt-5-mini', 'gpt-4o', 'gpt-4o-mini'].map((id) => ({
      id,
      object: 'model',
      created: 1_700_000_000,
      owned_by: 'system',
    })),
  }),
  streamStart: (ctx) => [
    sseFrame(
      chunk(ctx, [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }]),
    ),
  ],
  streamDelta: (ctx, piece) => [
    sseFrame(chunk(ctx, [{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }])),
  ],
  streamEnd(ctx) {
    const frames = [sseFrame(chunk(ctx, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]))];
    if (includeUsage(ctx.requestBody) && !ctx.omitUsage) frames.push(sseFrame(chunk(ctx, [], ctx.rawUsage ?? usageJson(ctx))));
    frames.push(sseFrame('[DONE]'));
    return frames;
  },
  // OpenAI sends none that we know of; compatible servers keep a connection alive with a comment line.
  streamPing: () => ': keep-alive\n\n',
  streamError: () => [
    sseFrame({
      error: {
        message: 'The server had an error while processing your request. Sorry about that!',
        type: 'server_error',
        param: null,
        code: null,
      },
    }),
  ],
});

/** OpenAI Chat Completions wire format (also what Perplexity speaks). */
export const openAIWire = compatibleWire('openai', usageJson);

/** xAI's Chat Completions: OpenAI's format, but reasoning tokens reported beside completion_tokens. */
export const xaiWire = compatibleWire('xai', xaiUsageJson);

/**
 * Fake OpenAI-compatible API. `url` ends in `/v1` (use it as OPENAI_BASE_URL); the same server also
 * answers without the `/v1` prefix, as Perplexity's base URL has none.
 */
export function startOpenAIFake(opts: FakeServerOptions = {}): Promise<FakeProviderServer> {
  return FakeProviderServer.start(openAIWire, opts, '/v1');
}

/** Fake xAI API (`url` ends in `/v1`, as XAI_BASE_URL does). */
export function startXAIFake(opts: FakeServerOptions = {}): Promise<FakeProviderServer> {
  return FakeProviderServer.start(xaiWire, opts, '/v1');
}
