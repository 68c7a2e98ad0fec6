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

describe('long-context tiers', () => {
  const usage = (inputTokens: number, cachedInputTokens: number, outputTokens: number) => ({ inputTokens, cachedInputTokens, outputTokens });

  it("bills a claude-sonnet-4-6 request whose prompt is over 200K tokens at the tier, all of it, cache reads counted in the prompt", () => {
    // At 200,000: $3 in, $0.30 cache read, $15 out. 190,000 * 3 + 10,000 * 0.3 + 1,000 * 15 = 570,000 + 3,000 + 15,000.
    expect(costMicros('ANTHROPIC', 'claude-sonnet-4-6', usage(200_000, 10_000, 1_000))).toBe(588_000n);
    // One more token: $6 in, $0.60 cache read, $22.50 out on every token. 190,001 * 6 + 10,000 * 0.6 + 1,000 * 22.5.
    expect(costMicros('ANTHROPIC', 'claude-sonnet-4-6', usage(200_001, 10_000, 1_000))).toBe(1_140_006n + 6_000n + 22_500n);
    // The cached tokens count toward the threshold: a prompt mostly read from the cache is still a long one.
    expect(costMicros('ANTHROPIC', 'claude-sonnet-4-6', usage(250_000, 240_000, 0))).toBe(60_000n + 144_000n);
    // The output does not: a long answer to a short prompt stays at the usual rates.
    expect(costMicros('ANTHROPIC', 'claude-sonnet-4-6', usage(1_000, 0, 300_000))).toBe(3_000n + 4_500_000n);
  });

  it('bills an xAI request from 128,000 tokens at the tier, the output counted too', () => {
    // grok-4 below: $3 in, $0.75 cached, $15 out.
    expect(costMicros('XAI', 'grok-4', usage(127_000, 0, 999))).toBe(381_000n + 14_985n);
    // 127,000 + 1,000 = 128,000 reached: $6 in, $1.50 cached, $30 out.
    expect(costMicros('XAI', 'grok-4', usage(127_000, 0, 1_000))).toBe(762_000n + 30_000n);
    expect(costMicros('XAI', 'grok-4', usage(130_000, 30_000, 2_000))).toBe(600_000n + 45_000n + 60_000n);
    // grok-4-fast-non-reasoning: $0.20 / $0.05 / $0.50, and $0.40 / $0.10 / $1.00 from 128,000 tokens.
    expect(costMicros('XAI', 'grok-4-fast-non-reasoning', usage(100_000, 20_000, 1_000))).toBe(16_000n + 1_000n + 500n);
    expect(costMicros('XAI', 'grok-4-fast-non-reasoning', usage(200_000, 20_000, 1_000))).toBe(72_000n + 2_000n + 1_000n);
  });

  it('leaves models without a tier at their flat price however long the prompt', () => {
    expect(costMicros('ANTHROPIC', 'claude-haiku-4-5', usage(500_000, 0, 0))).toBe(500_000n);
    expect(PRICE_TABLE.OPENAI['gpt-4.1']!.longContext).toBeUndefined();
  });

  it('holds an attempt whose prompt bound could reach the threshold at the tier, never below what it settles at', () => {
    const tier = PRICE_TABLE.ANTHROPIC['claude-sonnet-4-6']!.longContext!;
    // A prompt bound just over 200K: held at the tier, and so is any usage within it that crosses.
    const held = maxCostMicros('ANTHROPIC', 'claude-sonnet-4-6', 200_010, 4_000);
    expect(held).toBe(ceil(200_010n * tier.inputPerMTok + 4_000n * tier.outputPerMTok));
    expect(held >= costMicros('ANTHROPIC', 'claude-sonnet-4-6', usage(200_005, 0, 4_000))).toBe(true);
    // xAI counts the output: a 126K prompt bound with room for 4K output tokens is held at the tier.
    expect(maxCostMicros('XAI', 'grok-4', 126_000, 4_000)).toBe(756_000n + 120_000n);
    expect(maxCostMicros('XAI', 'grok-4', 126_000, 1_000)).toBe(378_000n + 15_000n);
    // No usage within the bounds settles above the hold, whichever side of the threshold it lands on.
    for (const [provider, model] of [['ANTHROPIC', 'claude-sonnet-4-6'], ['XAI', 'grok-4'], ['XAI', 'grok-4-fast-non-reasoning']] as const) {
      for (const bound of [120_000, 127_500, 199_999, 200_001, 260_000]) {
        const hold = maxCostMicros(provider, model, bound, 2_000);
        for (const input of [bound - 3_000, bound - 1, bound]) {
          for (const output of [0, 1_999, 2_000]) {
            for (const cached of [0, Math.floor(input / 2)]) {
              expect(costMicros(provider, model, usage(input, cached, output)) <= hold).toBe(true);
            }
          }
        }
      }
    }
  });
});

function ceil(scaled: bigint): bigint {
  return (scaled + 999_999n) / 1_000_000n;
}

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
