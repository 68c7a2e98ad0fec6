import { ANTHROPIC_DEFAULT_BASE_URL, createAnthropicAdapter } from './anthropic.js';
import { DEFAULT_TIMEOUTS, type StreamTimeouts } from './guard.js';
import { createOfflineAdapter } from './offline.js';
import { createOpenAICompatibleAdapter } from './openai-compatible.js';
import { apiKeyVariable, type ModelInfo, type ProviderAdapter, type ProviderId, type ProviderRegistry } from './types.js';

export interface ProviderKeyConfig {
  apiKey?: string | undefined;
  baseUrl?: string | undefined;
}

export interface ProvidersConfig {
  openai?: ProviderKeyConfig | undefined;
  anthropic?: ProviderKeyConfig | undefined;
  xai?: ProviderKeyConfig | undefined;
  perplexity?: ProviderKeyConfig | undefined;
  offline?: { tokenDelayMs?: number | undefined } | undefined;
  /** Applies to every network provider; see StreamTimeouts. */
  timeouts?: Partial<StreamTimeouts> | undefined;
}

export const DEFAULT_BASE_URLS = {
  OPENAI: 'https://api.openai.com/v1',
  ANTHROPIC: ANTHROPIC_DEFAULT_BASE_URL,
  XAI: 'https://api.x.ai/v1',
  PERPLEXITY: 'https://api.perplexity.ai',
} as const satisfies Record<Exclude<ProviderId, 'OFFLINE'>, string>;

// Output limits: platform.openai.com/docs/models: GPT-5 family 128,000; GPT-4.1 family 32,768; GPT-4o family 16,384.
export const OPENAI_MODELS: ModelInfo[] = [
  { id: 'gpt-5', label: 'GPT-5', contextWindow: 400_000, maxOutputTokens: 128_000 },
  { id: 'gpt-5-mini', label: 'GPT-5 mini', contextWindow: 400_000, maxOutputTokens: 128_000 },
  { id: 'gpt-5-nano', label: 'GPT-5 nano', contextWindow: 400_000, maxOutputTokens: 128_000 },
  { id: 'gpt-4.1', label: 'GPT-4.1', contextWindow: 1_047_576, maxOutputTokens: 32_768 },
  { id: 'gpt-4.1-mini', label: 'GPT-4.1 mini', contextWindow: 1_047_576, maxOutputTokens: 32_768 },
  { id: 'gpt-4o', label: 'GPT-4o', contextWindow: 128_000, maxOutputTokens: 16_384 },
  { id: 'gpt-4o-mini', label: 'GPT-4o mini', contextWindow: 128_000, maxOutputTokens: 16_384 },
];

// docs.x.ai/docs/models publishes no output cap apart from the context window, which prompt and output share:
// the window is the documented bound (the hub's own ceiling, AGENT_LIMITS in agents.service.ts, caps the larger ones).
export const XAI_MODELS: ModelInfo[] = [
  { id: 'grok-4', label: 'Grok 4', contextWindow: 256_000, maxOutputTokens: 256_000 },
  { id: 'grok-4-fast-non-reasoning', label: 'Grok 4 Fast', contextWindow: 2_000_000, maxOutputTokens: 2_000_000 },
  { id: 'grok-3-mini', label: 'Grok 3 mini', contextWindow: 131_072, maxOutputTokens: 131_072 },
  { id: 'grok-code-fast-1', label: 'Grok Code Fast 1', contextWindow: 256_000, maxOutputTokens: 256_000 },
];

// Perplexity's model pages give Sonar Pro and Sonar Reasoning Pro an 8K output cap (as the catalogs that list
// them, e.g. OpenRouter's, say); Sonar's page gives only its 128K context, the bound taken for it.
export const PERPLEXITY_MODELS: ModelInfo[] = [
  { id: 'sonar', label: 'Sonar', contextWindow: 128_000, maxOutputTokens: 128_000 },
  { id: 'sonar-pro', label: 'Sonar Pro', contextWindow: 200_000, maxOutputTokens: 8_000 },
  { id: 'sonar-reasoning-pro', label: 'Sonar Reasoning Pro', contextWindow: 128_000, maxOutputTokens: 8_000 },
];

/** Empty strings count as unset, so `OPENAI_API_KEY=` in a .env file means "not configured". */
function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

/**
 * Maps OPENAI_API_KEY/OPENAI_BASE_URL, ANTHROPIC_API_KEY/ANTHROPIC_BASE_URL, XAI_API_KEY/XAI_BASE_URL,
 * PERPLEXITY_API_KEY/PERPLEXITY_BASE_URL (and OFFLINE_TOKEN_DELAY_MS) into a ProvidersConfig.
 */
export function providerConfigFromEnv(env: NodeJS.ProcessEnv): ProvidersConfig {
  const pair = (provider: ProviderId): ProviderKeyConfig => ({
    apiKey: nonEmpty(env[apiKeyVariable(provider)]),
    baseUrl: nonEmpty(env[`${provider}_BASE_URL`]),
  });
  const delay = nonEmpty(env['OFFLINE_TOKEN_DELAY_MS']);
  const delayMs = delay === undefined ? undefined : Number(delay);
  return {
    openai: pair('OPENAI'),
    anthropic: pair('ANTHROPIC'),
    xai: pair('XAI'),
    perplexity: pair('PERPLEXITY'),
    offline: {
      tokenDelayMs: delayMs !== undefined && Number.isFinite(delayMs) && delayMs >= 0 ? delayMs : undefined,
    },
  };
}

/** Builds every provider once; each holds its own SDK client (or none, when unconfigured). */
export function createProviders(config: ProvidersConfig = {}): ProviderRegistry {
  const timeouts: StreamTimeouts = { ...DEFAULT_TIMEOUTS, ...definedOnly(config.timeouts ?? {}) };
  const adapters: ProviderAdapter[] = [
    createOpenAICompatibleAdapter({
      id: 'OPENAI',
      label: 'OpenAI',
      apiKey: nonEmpty(config.openai?.apiKey),
      baseUrl: nonEmpty(config.openai?.baseUrl) ?? DEFAULT_BASE_URLS.OPENAI,
      models: OPENAI_MODELS,
      timeouts,
      maxTokensParam: 'max_completion_tokens',
      reasoningTokens: 'in_completion',
    }),
    createAnthropicAdapter({
      apiKey: nonEmpty(config.anthropic?.apiKey),
      baseUrl: nonEmpty(config.anthropic?.baseUrl) ?? DEFAULT_BASE_URLS.ANTHROPIC,
      timeouts,
    }),
    createOpenAICompatibleAdapter({
      id: 'XAI',
      label: 'xAI',
      apiKey: nonEmpty(config.xai?.apiKey),
      baseUrl: nonEmpty(config.xai?.baseUrl) ?? DEFAULT_BASE_URLS.XAI,
      models: XAI_MODELS,
      timeouts,
      maxTokensParam: 'max_completion_tokens',
      reasoningTokens: 'separate',
    }),
    createOpenAICompatibleAdapter({
      id: 'PERPLEXITY',
      label: 'Perplexity',
      apiKey: nonEmpty(config.perplexity?.apiKey),
      baseUrl: nonEmpty(config.perplexity?.baseUrl) ?? DEFAULT_BASE_URLS.PERPLEXITY,
      models: PERPLEXITY_MODELS,
      timeouts,
      maxTokensParam: 'max_tokens',
      // Its reasoning models stream their thinking as text, counted in completion_tokens.
      reasoningTokens: 'in_completion',
    }),
    createOfflineAdapter(
      config.offline?.tokenDelayMs !== undefined ? { tokenDelayMs: config.offline.tokenDelayMs } : {},
    ),
  ];
  return registryOf(adapters);
}

/** A registry over any adapters (tests and benchmarks can mix real and stub adapters). */
export function registryOf(adapters: ProviderAdapter[]): ProviderRegistry {
  const byId = new Map(adapters.map((a) => [a.id, a] as const));
  return {
    get(id: ProviderId): ProviderAdapter {
      const adapter = byId.get(id);
      if (!adapter) throw new Error(`Unknown provider ${id}`);
      return adapter;
    },
    list: () => [...byId.values()],
  };
}

function definedOnly<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}
