import { abortedError } from './errors.js';
import { sleep } from './guard.js';
import type { CompletionRequest, ModelInfo, ProviderAdapter, StreamChunk } from './types.js';

export const OFFLINE_LABEL = 'Offline (local, deterministic)';

export const OFFLINE_MODELS: ModelInfo[] = [
  // Ours: it writes at most this much, like a small and a large model.
  { id: 'offline-small', label: 'Offline small (echo + outline)', contextWindow: 32_768, maxOutputTokens: 8_192 },
  { id: 'offline-large', label: 'Offline large (echo + outline + risks)', contextWindow: 131_072, maxOutputTokens: 32_768 },
];

export interface OfflineOptions {
  /** Pause before each streamed word; 0 streams as fast as possible (tests). */
  tokenDelayMs?: number;
}

export const DEFAULT_OFFLINE_TOKEN_DELAY_MS = 15;

/**
 * The offline tokenizer: words cost one token per 6 letters/digits (rounded up), every other
 * non-space character one token (a run of the same symbol, like `**`, counts once).
 * Deterministic and in the right range for English text.
 */
export function approxTokenCount(text: string): number {
  let tokens = 0;
  for (const match of text.matchAll(/[\p{L}\p{N}_]+|([^\s\p{L}\p{N}_])\1*/gu)) {
    const piece = match[0];
    tokens += /^[\p{L}\p{N}_]/u.test(piece) ? Math.ceil([...piece].length / 6) : 1;
  }
  return tokens;
}

/** FNV-1a, 32-bit: a stable seed from the request text. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

const STOPWORDS = new Set(
  (
    'a about above after again all also an and including any are as at be because been before being below between both ' +
    'but by can could did do does doing down during each few for from further had has have having he her here ' +
    'hers him his how i if in into is it its just me more most my no nor not now of off on once only or other ' +
    'our out over own please same she should so some such than that the their them then there these they this ' +
    'those through to too under until up very was we were what when where which while who whom why will with ' +
    'would you your yours'
  ).split(' '),
);

function keywords(text: string, max: number): string[] {
  const counts = new Map<string, number>();
  for (const match of text.toLowerCase().matchAll(/[\p{L}\p{N}][\p{L}\p{N}'-]*/gu)) {
    const word = match[0];
    if (word.length < 4 || STOPWORDS.has(word)) continue;
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, max)
    .map(([word]) => word);
}

const STEP_TEMPLATES = [
  (k: string) => `Clarify the goal for **${k}**.`,
  (k: string) => `Gather what is known about **${k}**.`,
  (k: string) => `Draft a first pass at **${k}**.`,
  (k: string) => `Review **${k}** against the request.`,
  (k: string) => `Split **${k}** into small tasks.`,
  (k: string) => `Assign an owner for **${k}**.`,
];

const RISK_TEMPLATES = [
  (k: string) => `Unverified assumptions about **${k}**.`,
  (k: string) => `Scope creep around **${k}**.`,
  (k: string) => `Hidden dependencies on **${k}**.`,
];

function excerpt(text: string, maxWords: number): string {
  const words = text.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return '(empty request)';
  const cut = words.slice(0, maxWords).join(' ');
  return words.length > maxWords ? `${cut} …` : cut;
}

/** The full deterministic reply for a request (before truncation to maxOutputTokens). */
export function offlineReply(req: Pick<CompletionRequest, 'model' | 'system' | 'messages'>): string {
  const lastUser = [...req.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
  const allText = [req.system ?? '', ...req.messages.map((m) => m.content)].join('\n');
  const seed = fnv1a(`${req.model}\u0000${allText}`);
  const large = req.model === 'offline-large';
  const topics = keywords(lastUser || allText, large ? 4 : 3);
  const pick = (i: number) => topics[i % Math.max(1, topics.length)] ?? 'the request';

  const stepCount = 3;
  const steps: string[] = [];
  for (let i = 0; i < stepCount; i++) {
    const template = STEP_TEMPLATES[(seed + i * 7) % STEP_TEMPLATES.length];
    if (template) steps.push(`${i + 1}. ${template(pick(i))}`);
  }

  const lines = [
    '### Offline draft',
    '',
    `**Request:** "${excerpt(lastUser, large ? 16 : 12)}"`,
    '',
    `**Key topics:** ${topics.length > 0 ? topics.join(', ') : 'none detected'}`,
    '',
    '**Plan:**',
    ...steps,
  ];
  if (large) {
    const risk = RISK_TEMPLATES[seed % RISK_TEMPLATES.length];
    if (risk) lines.push('', '**Risks:**', `- ${risk(pick(0))}`);
  }
  lines.push('', '_Offline provider: generated locally, no AI model called._');
  return lines.join('\n');
}

/** Split into word-sized deltas, each carrying its trailing whitespace, so they concatenate back exactly. */
function toDeltas(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? [];
}

export function createOfflineAdapter(opts: OfflineOptions = {}): ProviderAdapter {
  const tokenDelayMs = opts.tokenDelayMs ?? DEFAULT_OFFLINE_TOKEN_DELAY_MS;

  async function* stream(req: CompletionRequest): AsyncGenerator<StreamChunk> {
    if (req.signal?.aborted) throw abortedError('OFFLINE', req.signal.reason);
    if (req.sendAfter) await req.sendAfter;
    let inputTokens = 3;
    if (req.system) inputTokens += approxTokenCount(req.system) + 4;
    for (const m of req.messages) inputTokens += approxTokenCount(m.content) + 4;

    let emitted = '';
    let outputTokens = 0;
    for (const delta of toDeltas(offlineReply(req))) {
      const tokens = approxTokenCount(delta);
      if (outputTokens + tokens > req.maxOutputTokens) break;
      await sleep(tokenDelayMs, req.signal, 'OFFLINE');
      if (req.signal?.aborted) throw abortedError('OFFLINE', req.signal.reason);
      emitted += delta;
      outputTokens += tokens;
      yield { type: 'delta', text: delta };
    }
    yield {
      type: 'usage',
      usage: { inputTokens, cachedInputTokens: 0, outputTokens: approxTokenCount(emitted) },
    };
  }

  return {
    id: 'OFFLINE',
    label: OFFLINE_LABEL,
    configured: true,
    baseUrl: null,
    models: OFFLINE_MODELS,
    stream,
  };
}
