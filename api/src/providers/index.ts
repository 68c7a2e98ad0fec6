export * from './types.js';
export * from './errors.js';
export * from './pricing.js';
export * from './circuit-breaker.js';
export * from './executor.js';
export {
  createProviders,
  providerConfigFromEnv,
  registryOf,
  DEFAULT_BASE_URLS,
  OPENAI_MODELS,
  XAI_MODELS,
  PERPLEXITY_MODELS,
  type ProvidersConfig,
  type ProviderKeyConfig,
} from './registry.js';
export { ANTHROPIC_MODELS, createAnthropicAdapter, type AnthropicAdapterOptions } from './anthropic.js';
export { createOpenAICompatibleAdapter, type OpenAICompatibleOptions } from './openai-compatible.js';
export {
  OFFLINE_LABEL,
  OFFLINE_MODELS,
  approxTokenCount,
  createOfflineAdapter,
  offlineReply,
  type OfflineOptions,
} from './offline.js';
export { DEFAULT_TIMEOUTS, type StreamTimeouts } from './guard.js';
