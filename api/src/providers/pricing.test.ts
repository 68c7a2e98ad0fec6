import { describe, expect, it } from 'vitest';
import { createProviders } from './registry.js';
import {
  costMicros,
  estimateInputTokens,
  estimateTextTokens,
  maxCostMicros,
  PRICE_TABLE,
  priceFor,
  UnknownModelError,
} from './pricing.js';

describe('costMicros', () => {
  it('computes integer micro-dollars exactly', () => {
    // gpt-4o-mini: $0.15 in / $0.60 out per 1M tokens.
    expect(costMicros('OPENAI', 'gpt-4o-mini', { inputTokens: 1_000, cachedInputTokens: 0, outputTokens: 500 })).toBe(450n);
    // claude-opus-4-5: $5 in, $0.50 cache read, $25 out per 1M.
    expect(
      costMicros('ANTHROPIC', 'claude-opus-4-5', { inputTokens: 12_345, cachedInputTokens: 10_000, outputTokens: 678 }),
    ).toBe(33_675n); // 2345*5 + 10000*0.5 + 678*25 = 11725 + 5000 + 16950
  });

  it('bills cached input at the cached rate, as a subset of the input', () => {
    // gpt-4o: 600 uncached * $2.50 + 400 cached * $1.25 + 100 out * $10 = 1500 + 500 + 1000 micro-dollars.
    expect(costMicros('OPENAI', 'gpt-4o', { inputTokens: 1_000, cachedInputTokens: 400, outputTokens: 100 })).toBe(3_000n);
    // A cached count larger than the input is clamped rather than producing a negative term.
    expect(costMicros('OPENAI', 'gpt-4o', { inputTokens: 10, cachedInputTokens: 50, outputTokens: 0 })).toBe(13n);
  });

  it('rounds up, never down', () => {
    expect(costMicros('OPENAI', 'gpt-4o-mini', { inputTokens: 1, cachedInputTokens: 0, outputTokens: 0 })).toBe(1n);
    expect(costMicros('OPENAI', 'gpt-5-nano', { inputTokens: 20, cachedInputTokens: 0, outputTokens: 0 })).toBe(1n);
    expect(costMicros('OPENAI', 'gpt-5-nano', { inputTokens: 21, cachedInputTokens: 0, outputTokens: 0 })).toBe(2n);
    expect(costMicros('OPENAI', 'gpt-5-nano', { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0 })).toBe(0n);
  });

  it('stays exact far beyond float precision', () => {
    const usage = { inputTokens: 9_007_199_254_740_991, cachedInputTokens: 0, outputTokens: 9_007_199_254_740_991 };
    // gpt-4.1: $2 in, $8 out per 1M; (2_000_000 + 8_000_000) * n / 1_000_000 = 10n * n.
    expect(costMicros('OPENAI', 'gpt-4.1', usage)).toBe(90_071_992_547_409_910n);
  });

  it("adds Perplexity's per-request fee", () => {
    expect(costMicros('PERPLEXITY', 'sonar', { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0 })).toBe(5_000n);
    expect(costMicros('PERPLEXITY', 'sonar', { inputTokens: 1_000, cachedInputTokens: 0, outputTokens: 1_000 })).toBe(7_000n);
  });

  it('is free for the offline provider', () => {
    expect(costMicros('OFFLINE', 'offline-large', { inputTokens: 10_000, cachedInputTokens: 0, outputTokens: 10_000 })).toBe(0n);
  });

  it('throws a typed error for unknown models and invalid counts', () => {
    expect(() => priceFor('OPENAI', 'gpt-unknown')).toThrow(UnknownModelError);
    expect(() => costMicros('XAI', 'toString', { inputTokens: 1, cachedInputTokens: 0, outputTokens: 1 })).toThrow(
      UnknownModelError,
    );
    expect(() => costMicros('OPENAI', 'gpt-4o', { inputTokens: 1.5, cachedInputTokens: 0, outputTokens: 0 })).toThrow(RangeError);
    expect(() => costMicros('OPENAI', 'gpt-4o', { inputTokens: -1, cachedInputTokens: 0, outputTokens: 0 })).toThrow(RangeError);
  });

  it('has a price for every model every provider lists', () => {
    for (const provider of createProviders().list()) {
      for (const model of provider.models) expect(() => priceFor(provider.id, model.id)).not.toThrow();
      expect(Object.keys(PRICE_TABLE[provider.id]).sort()).toEqual(provider.models.map((m) => m.id).sort());
    }
  });
});

describe('reservations', () => {
  it('maxCostMicros is the uncached, full-output cost', () => {
    expect(maxCostMicros('ANTHROPIC', 'claude-haiku-4-5', 1_000, 2_000)).toBe(11_000n); // 1000*1 + 2000*5
    expect(maxCostMicros('PERPLEXITY', 'sonar-pro', 0, 0)).toBe(6_000n);
  });

  it('bounds any real usage whose input fits the estimate', () => {
    const max = maxCostMicros('OPENAI', 'gpt-5', 5_000, 1_000);
    expect(costMicros('OPENAI', 'gpt-5', { inputTokens: 5_000, cachedInputTokens: 3_000, outputTokens: 1_000 }) <= max).toBe(true);
  });

  it('estimateInputTokens over-estimates English and non-Latin text', () => {
    const english = 'The quick brown fox jumps over the lazy dog. '.repeat(50); // ~500 real tokens
    expect(estimateInputTokens({ messages: [{ role: 'user', content: english }] })).toBeGreaterThan(700);
    expect(estimateTextTokens('你好世界')).toBe(12); // 3 UTF-8 bytes each: a byte-level BPE bound
    expect(estimateTextTokens('👍')).toBe(4);
    const withSystem = estimateInputTokens({ system: 'abc', messages: [{ role: 'user', content: 'abcdef' }] });
    expect(withSystem).toBe(3 + 6 + 8 + 2 * 4);
  });

  it('covers text written to tokenize at one token per character', () => {
    // " a" is one token in every OpenAI encoding, and random symbols seldom merge: an average of characters per
    // token would reserve a third of what such a prompt costs.
    expect(estimateTextTokens(' a'.repeat(1_000))).toBeGreaterThanOrEqual(1_000);
    let symbols = '';
    for (let i = 0; i < 3_000; i++) symbols += String.fromCharCode(33 + ((i * 7919) % 94));
    expect(estimateTextTokens(symbols)).toBeGreaterThanOrEqual(symbols.length);
  });
});
