import OpenAI from 'openai';
import type { ChatCompletionCreateParamsStreaming, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { ProviderError, startedResponse, unconfiguredError } from './errors.js';
import { RequestGuard, type StreamTimeouts } from './guard.js';
import { providerFetch, sdkRequestOptions } from './http-fetch.js';
import { estimateInputTokens, outputTokensBound } from './pricing.js';
import type { CompletionRequest, ModelInfo, ProviderAdapter, ProviderId, StreamChunk, TokenUsage } from './types.js';

export interface OpenAICompatibleOptions {
  id: ProviderId;
  label: string;
  apiKey: string | undefined;
  baseUrl: string;
  models: ModelInfo[];
  timeouts: StreamTimeouts;
  /** OpenAI and xAI take `max_completion_tokens`; Perplexity still documents `max_tokens`. */
  maxTokensParam: 'max_completion_tokens' | 'max_tokens';
  /**
   * OpenAI's completion_tokens includes the reasoning tokens; xAI reports them beside it (total_tokens adds
   * all three) and bills them at the completion rate, so they are added to the output.
   */
  reasoningTokens: 'in_completion' | 'separate';
}

/** A token count as reported, if it is one (a compatible server may send null, a fraction or a string). */
const reportedCount = (n: unknown): number | undefined => (Number.isSafeInteger(n) && (n as number) >= 0 ? (n as number) : undefined);

/** Chat Completions streaming through the official `openai` SDK; serves OpenAI, xAI and Perplexity. */
export function createOpenAICompatibleAdapter(opts: OpenAICompatibleOptions): ProviderAdapter {
  const { id, apiKey, timeouts } = opts;
  const client = apiKey
    ? new OpenAI({
        apiKey,
        baseURL: opts.baseUrl,
        // Explicit nulls stop the SDK from reading OPENAI_* variables from process.env.
        adminAPIKey: null,
        organization: null,
        project: null,
        webhookSecret: null,
        maxRetries: 0, // the executor owns retries
        timeout: timeouts.requestTimeoutMs,
        fetch: providerFetch, // node:http instead of undici: less CPU and latency per request
      })
    : undefined;

  async function* stream(req: CompletionRequest): AsyncGenerator<StreamChunk> {
    if (!client) throw unconfiguredError(id, opts.label);
    const messages: ChatCompletionMessageParam[] = [];
    if (req.system) messages.push({ role: 'system', content: req.system });
    for (const m of req.messages) messages.push({ role: m.role, content: m.content });
    const params: ChatCompletionCreateParamsStreaming = {
      model: req.model,
      messages,
      stream: true,
      stream_options: { include_usage: true },
      [opts.maxTokensParam]: req.maxOutputTokens,
      ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
    };

    const guard = new RequestGuard(id, req.signal, timeouts, req.sendAfter);
    try {
      let sdkStream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>;
      try {
        sdkStream = await client.chat.completions.create(params, { signal: guard.signal, maxRetries: 0, ...sdkRequestOptions(req.sendAfter, timeouts.requestTimeoutMs, guard.alive) });
      } catch (err) {
        throw guard.toError(err);
      }
      // The response has started: from here the idle timeout applies, to the first event too (a reasoning
      // model streams nothing while it thinks).
      guard.touch();

      let report: OpenAI.CompletionUsage | undefined;
      let finished = false;
      let text = '';
      try {
        for await (const chunk of sdkStream) {
          // Providers differ on where usage goes (OpenAI: a last chunk with no choices; some send it on
          // every chunk); the last one reported wins either way.
          if (chunk.usage) report = chunk.usage;
          const choice = chunk.choices[0];
          if (choice?.finish_reason) finished = true;
          const delta = choice?.delta?.content;
          if (delta) {
            text += delta;
            guard.pause();
            yield { type: 'delta', text: delta };
          }
          guard.touch();
        }
      } catch (err) {
        // Lost after the finish reason and the usage report, only [DONE] missing: the response is whole, and
        // billed; failing it would pay for it again in a retry.
        if (!finished || !report || guard.signal.aborted) throw startedResponse(guard.toError(err));
      }
      // SDK stream iterators end silently when aborted.
      if (guard.signal.aborted) throw startedResponse(guard.toError(undefined));

      if (!report) {
        if (!finished) {
          throw startedResponse(
            new ProviderError({
              kind: 'retryable',
              provider: id,
              message: 'Stream ended before the response was complete',
              code: 'incomplete_stream',
            }),
          );
        }
      }
      // A complete response without a usage report (some compatible servers ignore include_usage), or with one
      // missing a count (null, a fraction, a string): each missing count is billed at our conservative bound
      // rather than for nothing, and the usage is marked as estimated.
      const inputTokens = reportedCount(report?.prompt_tokens);
      const completionTokens = reportedCount(report?.completion_tokens);
      const reasoningTokens = opts.reasoningTokens === 'separate' ? (reportedCount(report?.completion_tokens_details?.reasoning_tokens) ?? 0) : 0;
      const usage: TokenUsage = {
        inputTokens: inputTokens ?? estimateInputTokens(req),
        cachedInputTokens: reportedCount(report?.prompt_tokens_details?.cached_tokens) ?? 0,
        outputTokens: completionTokens !== undefined ? completionTokens + reasoningTokens : outputTokensBound(id, req.model, text, req.maxOutputTokens),
      };
      const estimated = inputTokens === undefined || completionTokens === undefined;
      yield { type: 'usage', usage, ...(estimated ? { estimated: true } : {}) };
    } finally {
      guard.dispose();
    }
  }

  return {
    id,
    label: opts.label,
    configured: client !== undefined,
    baseUrl: opts.baseUrl,
    models: opts.models,
    stream,
  };
}
