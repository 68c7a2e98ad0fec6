import { describe, expect, it } from 'vitest';
import { ProviderError } from './errors.js';
import { createProviders, DEFAULT_BASE_URLS, providerConfigFromEnv } from './registry.js';

describe('provider registry', () => {
  it('maps environment variables into the config', () => {
    const config = providerConfigFromEnv({
      OPENAI_API_KEY: 'sk-1',
      OPENAI_BASE_URL: 'http://127.0.0.1:9/v1',
      ANTHROPIC_API_KEY: ' ',
      XAI_API_KEY: 'xai-1',
      PERPLEXITY_BASE_URL: 'http://p',
      OFFLINE_TOKEN_DELAY_MS: '0',
    });
    expect(config).toEqual({
      openai: { apiKey: 'sk-1', baseUrl: 'http://127.0.0.1:9/v1' },
      anthropic: { apiKey: undefined, baseUrl: undefined },
      xai: { apiKey: 'xai-1', baseUrl: undefined },
      perplexity: { apiKey: undefined, baseUrl: 'http://p' },
      offline: { tokenDelayMs: 0 },
    });
  });

  it('lists every provider; only keyed ones (and offline) are configured', () => {
    const registry = createProviders(providerConfigFromEnv({ XAI_API_KEY: 'xai-1' }));
    expect(registry.list().map((p) => [p.id, p.configured, p.baseUrl])).toEqual([
      ['OPENAI', false, DEFAULT_BASE_URLS.OPENAI],
      ['ANTHROPIC', false, DEFAULT_BASE_URLS.ANTHROPIC],
      ['XAI', true, 'https://api.x.ai/v1'],
      ['PERPLEXITY', false, 'https://api.perplexity.ai'],
      ['OFFLINE', true, null],
    ]);
    for (const p of registry.list()) expect(p.models.length).toBeGreaterThan(0);
  });

  it('an unconfigured provider throws a typed ProviderError of kind unconfigured', async () => {
    const registry = createProviders({});
    // Named as people know the provider, with the variable that configures it.
    const names = { OPENAI: 'OpenAI', ANTHROPIC: 'Anthropic', XAI: 'xAI', PERPLEXITY: 'Perplexity' } as const;
    for (const id of ['OPENAI', 'ANTHROPIC', 'XAI', 'PERPLEXITY'] as const) {
      const stream = registry.get(id).stream({ model: 'm', messages: [{ role: 'user', content: 'x' }], maxOutputTokens: 5 });
      const error = await (async () => {
        for await (const chunk of stream) void chunk;
      })().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ kind: 'unconfigured', provider: id, message: `${names[id]} is not configured on this server: set ${id}_API_KEY to use it` });
    }
  });
});
