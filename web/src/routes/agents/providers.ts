import { formatMoney } from '$lib/format';
import type { AgentsPageProviderFragment, Provider } from '$lib/graphql/_generated/graphql';

type ProviderStatus = AgentsPageProviderFragment;
type Model = ProviderStatus['models'][number];

/** For a new agent: the first provider with a key, else the offline one, which always works. */
export function defaultProvider(providers: ProviderStatus[]): Provider {
  return (providers.find((p) => p.configured && !p.offline) ?? providers.find((p) => p.offline) ?? providers[0])?.id ?? 'OFFLINE';
}

const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

/** `400K tokens`, `1M tokens`. */
export const formatContextWindow = (tokens: number) => `${compact.format(tokens)} tokens`;

/**
 * `$1.25 in · $10.00 out per 1M tokens`, then a long-context tier where the model has one (`; above 128K tokens
 * with output, the whole request at $6.00 in · $30.00 out`); offline models are free.
 */
export function modelPrice(model: Model, provider: ProviderStatus): string {
  if (provider.offline) return 'free';
  if (!model.inputPricePerMillionTokens || !model.outputPricePerMillionTokens) return 'price not published';
  const base = `${formatMoney(model.inputPricePerMillionTokens)} in · ${formatMoney(model.outputPricePerMillionTokens)} out per 1M tokens`;
  const long = model.longContextPricing;
  if (!long) return base;
  const from = `${compact.format(long.fromTokens)} ${long.countsOutput ? 'tokens with output' : 'prompt tokens'}`;
  return `${base}; above ${from}, the whole request at ${formatMoney(long.inputPricePerMillionTokens)} in · ${formatMoney(long.outputPricePerMillionTokens)} out`;
}
