import Anthropic from '@anthropic-ai/sdk';
import type {
  MessageCreateParamsStreaming,
  MessageParam,
  RawMessageStreamEvent,
} from '@anthropic-ai/sdk/resources/messages';
import { ProviderError, startedResponse, unconfiguredError } from './errors.js';
import { RequestGuard, type StreamTimeouts } from './guard.js';
import { providerFetch, sdkRequestOptions } from './http-fetch.js';
import type { CompletionRequest, ModelInfo, ProviderAdapter, StreamChunk } from './types.js';

export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';

const LABEL = 'Anthropic';

export const ANTHROPIC_MODELS: ModelInfo[] = [
  // Output limits: docs.anthropic.com/en/docs/about-claude/models/overview ("Max output"), 64K for each.
  { id: 'claude-opus-4-5', label: 'Claude Opus 4.5', contextWindow: 200_000, maxOutputTokens: 64_000 },
  { id: 'claude-sonnet-4-6', label: 'Claude Sonnet 4.6', contextWindow: 200_000, maxOutputTokens: 64_000 },
  { id: 'claude-haiku-4-5', label: 'Claude Haiku 4.5', contextWindow: 200_000, maxOutputTokens: 64_000 },
];

export interface AnthropicAdapterOptions {
  apiKey: string | undefined;
  baseUrl: string;
  timeouts: StreamTimeouts;
}

/**
 * Messages API streaming through `@anthropic-ai/sdk`. Usage: message_start carries the input side
 * (input_tokens excludes cache reads/writes, so we add them back to get the total), message_delta the
 * cumulative output (and, on newer API versions, refreshed input counts).
 * `temperature` is not sent: SDK 1.x's Messages params no longer include it.
 */
export function createAnthropicAdapter(opts: AnthropicAdapterOptions): ProviderAdapter {
  const { apiKey, timeouts } = opts;
  const client = apiKey
    ? new Anthropic({
        apiKey,
        baseURL: opts.baseUrl,
        webhookKey: null, // keep the SDK away from process.env
        maxRetries: 0, // the executor owns retries
        timeout: timeouts.requestTimeoutMs,
        openTelemetry: false,
        fetch: providerFetch, // node:http instead of undici: less CPU and latency per request
      })
    : undefined;

  async function* stream(req: CompletionRequest): AsyncGenerator<StreamChunk> {
    if (!client) throw unconfiguredError('ANTHROPIC', LABEL);
    const messages: MessageParam[] = req.messages.map((m) => ({ role: m.role, content: m.content }));
    const params: MessageCreateParamsStreaming = {
      model: req.model,
      max_tokens: req.maxOutputTokens,
      messages,
      stream: true,
      ...(req.system ? { system: req.system } : {}),
    };

    const guard = new RequestGuard('ANTHROPIC', req.signal, timeouts, req.sendAfter);
    try {
      let sdkStream: AsyncIterable<RawMessageStreamEvent>;
      try {
        // guard.alive: the pings Anthropic sends while a model thinks never reach the loop below (the SDK drops
        // them), so the bytes that carry them restart the idle timer.
        sdkStream = await client.messages.create(params, { signal: guard.signal, maxRetries: 0, ...sdkRequestOptions(req.sendAfter, timeouts.requestTimeoutMs, guard.alive) });
      } catch (err) {
        throw guard.toError(err);
      }
      // The response has started: from here the idle timeout applies, to the first event too (a reasoning
      // model streams nothing while it thinks).
      guard.touch();

      let uncachedInput = 0;
      let cacheRead = 0;
      let cacheWrite = 0;
      let output = 0;
      let stopped = false;
      let complete = false;
      try {
        for await (const event of sdkStream) {
          switch (event.type) {
            case 'message_start': {
              const u = event.message.usage;
              uncachedInput = u.input_tokens;
              cacheRead = u.cache_read_input_tokens ?? 0;
              cacheWrite = u.cache_creation_input_tokens ?? 0;
              output = u.output_tokens;
              break;
            }
            case 'content_block_delta':
              if (event.delta.type === 'text_delta' && event.delta.text) {
                guard.pause();
                yield { type: 'delta', text: event.delta.text };
              }
              break;
            case 'message_delta': {
              // The last message_delta carries the stop reason and the final usage: all that message_stop adds is the end.
              if (event.delta.stop_reason) complete = true;
              const u = event.usage;
              output = u.output_tokens;
              if (u.input_tokens != null) uncachedInput = u.input_tokens;
              if (u.cache_read_input_tokens != null) cacheRead = u.cache_read_input_tokens;
              if (u.cache_creation_input_tokens != null) cacheWrite = u.cache_creation_input_tokens;
              break;
            }
            case 'message_stop':
              stopped = true;
              break;
            default:
              break;
          }
          guard.touch();
        }
      } catch (err) {
        // Lost after the stop reason and the final usage, only message_stop missing: the response is whole, and
        // billed; failing it would pay for it again in a retry.
        if (!complete || guard.signal.aborted) throw startedResponse(guard.toError(err));
      }
      // SDK stream iterators end silently when aborted.
      if (guard.signal.aborted) throw startedResponse(guard.toError(undefined));
      if (!stopped && !complete) {
        throw startedResponse(
          new ProviderError({
            kind: 'retryable',
            provider: 'ANTHROPIC',
            message: 'Stream ended before message_stop',
            code: 'incomplete_stream',
          }),
        );
      }
      yield {
        type: 'usage',
        usage: {
          inputTokens: uncachedInput + cacheRead + cacheWrite,
          cachedInputTokens: cacheRead,
          outputTokens: output,
        },
      };
    } finally {
      guard.dispose();
    }
  }

  return {
    id: 'ANTHROPIC',
    label: LABEL,
    configured: client !== undefined,
    baseUrl: opts.baseUrl,
    models: ANTHROPIC_MODELS,
    stream,
  };
}
