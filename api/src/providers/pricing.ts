import type { CompletionRequest, ProviderId, TokenUsage } from './types.js';

/**
 * Prices in integer micro-dollars per million tokens ($1.25 / 1M tokens = 1_250_000n), plus a flat
 * per-request fee in micro-dollars where the provider charges one (Perplexity's search fee at the
 * default "low" search-context tier). List prices as published by each provider; update here only.
 * Anthropic cache writes are billed at the plain input rate (we never request cache_control, so
 * the provider reports none in practice).
 */
export interface ModelPrice {
  inputPerMTok: bigint;
  cachedInputPerMTok: bigint;
  outputPerMTok: bigint;
  perRequestMicros: bigint;
  /** Higher rates for a long request, where the provider has them. */
  longContext?: LongContextPrice;
}

/**
 * A long-context tier: once a request's counted tokens reach `fromTokens`, ALL of its tokens (not only those
 * past the threshold) are billed at these rates instead of the model's usual ones.
 */
export interface LongContextPrice {
  /** The smallest count the tier applies at. */
  fromTokens: number;
  /** What is counted: the prompt (input, cached included), or the prompt and the output together. */
  counts: 'prompt' | 'prompt_and_output';
  inputPerMTok: bigint;
  cachedInputPerMTok: bigint;
  outputPerMTok: bigint;
}

const TOKENS_PER_MILLION = 1_000_000n;

function micros(...values: number[]): bigint[] {
  // Arguments are in micro-dollars per 1M tokens already, written as integers to avoid float input.
  for (const v of values) {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`invalid price component ${v}`);
  }
  return values.map(BigInt);
}

function price(input: number, cachedInput: number, output: number, perRequestMicros = 0, longContext?: LongContextPrice): ModelPrice {
  const [inputPerMTok, cachedInputPerMTok, outputPerMTok, perRequest] = micros(input, cachedInput, output, perRequestMicros);
  return {
    inputPerMTok: inputPerMTok!,
    cachedInputPerMTok: cachedInputPerMTok!,
    outputPerMTok: outputPerMTok!,
    perRequestMicros: perRequest!,
    ...(longContext ? { longContext } : {}),
  };
}

function longContext(fromTokens: number, counts: LongContextPrice['counts'], input: number, cachedInput: number, output: number): LongContextPrice {
  if (!Number.isSafeInteger(fromTokens) || fromTokens < 1) throw new Error(`invalid long-context threshold ${fromTokens}`);
  const [inputPerMTok, cachedInputPerMTok, outputPerMTok] = micros(input, cachedInput, output);
  return { fromTokens, counts, inputPerMTok: inputPerMTok!, cachedInputPerMTok: cachedInputPerMTok!, outputPerMTok: outputPerMTok! };
}

/**
 * xAI's long-context tier. xAI's API reference gives each model a `long_context_threshold`, the count "at or
 * above which the long context prices apply", without saying what is counted; OpenRouter's page for grok-4
 * says "once the total tokens in a given request is greater than 128k". Both readings are covered: from 128,000
 * tokens (not 131,072), counting the output too. grok-4's $6 input and $30 output match third-party listings
 * (2026-12); its $1.50 cached input and grok-4-fast-non-reasoning's whole tier ($0.40 / $0.10 / $1.00) are
 * figures we could not confirm against a published source.
 */
const XAI_LONG_CONTEXT_FROM = 128_000;

export const PRICE_TABLE: Readonly<Record<ProviderId, Readonly<Record<string, ModelPrice>>>> = {
  OPENAI: {
    'gpt-5': price(1_250_000, 125_000, 10_000_000),
    'gpt-5-mini': price(250_000, 25_000, 2_000_000),
    'gpt-5-nano': price(50_000, 5_000, 400_000),
    'gpt-4.1': price(2_000_000, 500_000, 8_000_000),
    'gpt-4.1-mini': price(400_000, 100_000, 1_600_000),
    'gpt-4o': price(2_500_000, 1_250_000, 10_000_000),
    'gpt-4o-mini': price(150_000, 75_000, 600_000),
  },
  ANTHROPIC: {
    'claude-opus-4-5': price(5_000_000, 500_000, 25_000_000),
    // More than 200K input tokens (cache reads included): the whole request at $6 input, $0.60 cache read, $22.50
    // output. $6 / $22.50 match third-party copies of Anthropic's pricing page (2026-02); $0.60 is unconfirmed,
    // and one later listing says the 4.6 models dropped the surcharge, which we could not confirm either: we keep
    // the tier, as charging it on a request that was not is the safe error.
    'claude-sonnet-4-6': price(3_000_000, 300_000, 15_000_000, 0, longContext(200_001, 'prompt', 6_000_000, 600_000, 22_500_000)),
    'claude-haiku-4-5': price(1_000_000, 100_000, 5_000_000),
  },
  XAI: {
    'grok-4': price(3_000_000, 750_000, 15_000_000, 0, longContext(XAI_LONG_CONTEXT_FROM, 'prompt_and_output', 6_000_000, 1_500_000, 30_000_000)),
    'grok-4-fast-non-reasoning': price(200_000, 50_000, 500_000, 0, longContext(XAI_LONG_CONTEXT_FROM, 'prompt_and_output', 400_000, 100_000, 1_000_000)),
    'grok-3-mini': price(300_000, 75_000, 500_000),
    'grok-code-fast-1': price(200_000, 20_000, 1_500_000),
  },
  PERPLEXITY: {
    // $5 / 1000 requests = 5000 micro-dollars per request (low search context).
    sonar: price(1_000_000, 1_000_000, 1_000_000, 5_000),
    'sonar-pro': price(3_000_000, 3_000_000, 15_000_000, 6_000),
    'sonar-reasoning-pro': price(2_000_000, 2_000_000, 8_000_000, 6_000),
  },
  OFFLINE: {
    'offline-small': price(0, 0, 0),
    'offline-large': price(0, 0, 0),
  },
};

export class UnknownModelError extends Error {
  override readonly name = 'UnknownModelError';
  constructor(
    readonly provider: ProviderId,
    readonly model: string,
  ) {
    super(`No price known for model "${model}" of provider ${provider}`);
  }
}

export function hasPrice(provider: ProviderId, model: string): boolean {
  return Object.hasOwn(PRICE_TABLE[provider], model);
}

/** Unknown models throw UnknownModelError: we never guess a price, so budgets can't be under-reserved silently. */
export function priceFor(provider: ProviderId, model: string): ModelPrice {
  const table = PRICE_TABLE[provider];
  const entry = Object.hasOwn(table, model) ? table[model] : undefined;
  if (!entry) throw new UnknownModelError(provider, model);
  return entry;
}

function tokenCount(name: string, n: number): bigint {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative integer, got ${n}`);
  return BigInt(n);
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}

/**
 * Exact cost of a reported usage in integer micro-dollars, rounded up. A request that reaches its model's
 * long-context threshold is billed at the long-context rates throughout. The cost never falls when a count
 * grows (the tier only raises rates), which is what makes maxCostMicros a bound.
 */
export function costMicros(provider: ProviderId, model: string, usage: TokenUsage): bigint {
  const p = priceFor(provider, model);
  const input = tokenCount('inputTokens', usage.inputTokens);
  const cachedRaw = tokenCount('cachedInputTokens', usage.cachedInputTokens);
  const output = tokenCount('outputTokens', usage.outputTokens);
  const cached = cachedRaw > input ? input : cachedRaw;
  const rates = p.longContext && inLongContext(p.longContext, input, output) ? p.longContext : p;
  const scaled = (input - cached) * rates.inputPerMTok + cached * rates.cachedInputPerMTok + output * rates.outputPerMTok;
  return ceilDiv(scaled, TOKENS_PER_MILLION) + p.perRequestMicros;
}

function inLongContext(tier: LongContextPrice, input: bigint, output: bigint): boolean {
  const counted = tier.counts === 'prompt' ? input : input + output;
  return counted >= BigInt(tier.fromTokens);
}

/**
 * Upper bound for one attempt, for budget reservations: no cache discount, every output token used, and so
 * the long-context rates whenever the prompt's bound (with maxOutputTokens, where the output counts) reaches the
 * threshold: an attempt whose prompt might cross it is held at the tier, never below what it can settle at.
 */
export function maxCostMicros(
  provider: ProviderId,
  model: string,
  inputTokensEstimate: number,
  maxOutputTokens: number,
): bigint {
  return costMicros(provider, model, {
    inputTokens: inputTokensEstimate,
    cachedInputTokens: 0,
    outputTokens: maxOutputTokens,
  });
}

const PER_MESSAGE_OVERHEAD = 4;
const PER_REQUEST_OVERHEAD = 8;

/**
 * A bound on a text's token count for the tokenizers of every provider we call, which are byte-level (or
 * fall back to bytes): no token is shorter than one UTF-8 byte, so the byte length is never exceeded. An
 * average would be closer (English runs at about 4 characters a token) but text can be written to tokenize
 * at one token per character (" a a a", random symbols), and a reservation below the real cost is spend
 * past the limit.
 */
export function estimateTextTokens(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/**
 * Models that spend output tokens reasoning before they answer without streaming that reasoning as text
 * (OpenAI's gpt-5 family; xAI's reasoning Groks, whose reasoning_content we do not keep). Their text says
 * nothing about the reasoning they were billed for, which can be anything up to maxOutputTokens.
 */
const UNSEEN_REASONING: Readonly<Partial<Record<ProviderId, ReadonlySet<string>>>> = {
  OPENAI: new Set(['gpt-5', 'gpt-5-mini', 'gpt-5-nano']),
  XAI: new Set(['grok-4', 'grok-3-mini', 'grok-code-fast-1']),
};

/**
 * A bound on the output tokens a provider billed for a response whose visible text was `text`, for when it sent
 * no usage report: the text's bound, or for a model with unseen reasoning the whole maxOutputTokens.
 */
export function outputTokensBound(provider: ProviderId, model: string, text: string, maxOutputTokens: number): number {
  if (UNSEEN_REASONING[provider]?.has(model)) return maxOutputTokens;
  return Math.min(estimateTextTokens(text), maxOutputTokens);
}

/** Safe over-estimate of a request's input tokens (for reservations before the provider reports usage). */
export function estimateInputTokens(req: Pick<CompletionRequest, 'system' | 'messages'>): number {
  let total = PER_REQUEST_OVERHEAD;
  if (req.system) total += estimateTextTokens(req.system) + PER_MESSAGE_OVERHEAD;
  for (const m of req.messages) total += estimateTextTokens(m.content) + PER_MESSAGE_OVERHEAD;
  return total;
}
