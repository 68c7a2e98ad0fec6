export type ProviderId = 'OPENAI' | 'ANTHROPIC' | 'XAI' | 'PERPLEXITY' | 'OFFLINE';

export const PROVIDER_IDS: readonly ProviderId[] = ['OPENAI', 'ANTHROPIC', 'XAI', 'PERPLEXITY', 'OFFLINE'];

/** The environment variable that configures a provider's API key: OPENAI_API_KEY, ANTHROPIC_API_KEY… */
export const apiKeyVariable = (provider: ProviderId): string => `${provider}_API_KEY`;

/**
 * A provider's endpoint as the API shows it to any signed-in user: scheme, host, port and path. A user name,
 * password, query or fragment, where a proxy's credentials may sit, is left out (null if it is no URL).
 */
export function shownEndpoint(baseUrl: string): string | null {
  if (!URL.canParse(baseUrl)) return null;
  const url = new URL(baseUrl);
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
}

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
}

export interface CompletionRequest {
  model: string;
  system?: string;
  messages: ChatMessage[];
  temperature?: number;
  maxOutputTokens: number;
  signal?: AbortSignal;
  /**
   * Nothing reaches the provider before this resolves (the adapter may build the request meanwhile);
   * if it rejects, the stream throws and the provider never saw the request. See prepareAttempt.
   */
  sendAfter?: Promise<void>;
}

/**
 * Normalised usage. `inputTokens` is the TOTAL prompt size and includes `cachedInputTokens`
 * (OpenAI's convention); the Anthropic adapter adds its cache reads/writes back in to match.
 */
export interface TokenUsage {
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
}

/** `estimated`: the provider sent no usage report and the adapter gives its own bound instead. */
export type StreamChunk = { type: 'delta'; text: string } | { type: 'usage'; usage: TokenUsage; estimated?: boolean };

export interface ModelInfo {
  id: string;
  label: string;
  contextWindow: number;
  /** The model's own ceiling on the output of one request (max_completion_tokens / max_tokens). */
  maxOutputTokens: number;
}

/**
 * One provider behind a uniform streaming interface.
 * `stream` yields text deltas, then exactly one final `usage` chunk. Every failure is thrown as a
 * `ProviderError` (see errors.ts); aborting `req.signal` makes it throw kind 'aborted' promptly.
 */
export interface ProviderAdapter {
  id: ProviderId;
  label: string;
  configured: boolean;
  baseUrl: string | null;
  models: ModelInfo[];
  stream(req: CompletionRequest): AsyncIterable<StreamChunk>;
}

export interface ProviderRegistry {
  /** Throws if the id is not a known provider (every ProviderId is always present). */
  get(id: ProviderId): ProviderAdapter;
  list(): ProviderAdapter[];
}

export const ZERO_USAGE: Readonly<TokenUsage> = Object.freeze({ inputTokens: 0, cachedInputTokens: 0, outputTokens: 0 });
