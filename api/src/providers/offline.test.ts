import { describe, expect, it } from 'vitest';
import { approxTokenCount, createOfflineAdapter, OFFLINE_LABEL, offlineReply } from './offline.js';
import { createProviders } from './registry.js';
import type { CompletionRequest, StreamChunk } from './types.js';

const request = (content: string, extra: Partial<CompletionRequest> = {}): CompletionRequest => ({
  model: 'offline-small',
  messages: [{ role: 'user', content }],
  maxOutputTokens: 1_000,
  ...extra,
});

async function collect(stream: AsyncIterable<StreamChunk>) {
  const deltas: string[] = [];
  const usage: Array<Extract<StreamChunk, { type: 'usage' }>['usage']> = [];
  for await (const chunk of stream) {
    if (chunk.type === 'delta') deltas.push(chunk.text);
    else usage.push(chunk.usage);
  }
  return { deltas, text: deltas.join(''), usage };
}

const offline = createOfflineAdapter({ tokenDelayMs: 0 });
const PROMPT = 'Plan the migration of our billing service to the new database, including rollback and monitoring.';

describe('offline provider', () => {
  it('is labelled, local and always configured', () => {
    const adapter = createProviders().get('OFFLINE');
    expect(adapter).toMatchObject({ label: OFFLINE_LABEL, configured: true, baseUrl: null });
    expect(adapter.label).toBe('Offline (local, deterministic)');
    expect(adapter.models.map((m) => m.id)).toEqual(['offline-small', 'offline-large']);
  });

  it('is deterministic: same input, same deltas and usage', async () => {
    const a = await collect(offline.stream(request(PROMPT)));
    const b = await collect(offline.stream(request(PROMPT)));
    expect(b).toEqual(a);
    const c = await collect(offline.stream(request(`${PROMPT} Also cover cost reporting and alerts.`)));
    expect(c.text).not.toBe(a.text);
  });

  it('streams a structured reply word by word that echoes the request', async () => {
    const { deltas, text, usage } = await collect(offline.stream(request(PROMPT, { system: 'You are a planner.' })));
    expect(text).toBe(offlineReply(request(PROMPT, { system: 'You are a planner.' })));
    expect(deltas.length).toBeGreaterThan(20);
    expect(text).toContain('### Offline draft');
    expect(text).toContain('Plan the migration of our billing service');
    expect(text).toMatch(/\*\*Key topics:\*\* .*billing/);
    expect(usage).toHaveLength(1);
    expect(usage[0]!.outputTokens).toBe(approxTokenCount(text));
    expect(usage[0]!.inputTokens).toBe(3 + approxTokenCount('You are a planner.') + 4 + approxTokenCount(PROMPT) + 4);
  });

  it('produces ~40-120 tokens for both models', async () => {
    for (const model of ['offline-small', 'offline-large']) {
      for (const prompt of [PROMPT, 'hi', 'Write a haiku about autumn leaves falling on a quiet river.']) {
        const { usage } = await collect(offline.stream(request(prompt, { model })));
        expect(usage[0]!.outputTokens).toBeGreaterThanOrEqual(40);
        expect(usage[0]!.outputTokens).toBeLessThanOrEqual(120);
      }
    }
  });

  it('respects maxOutputTokens', async () => {
    const { usage, text } = await collect(offline.stream(request(PROMPT, { maxOutputTokens: 10 })));
    expect(usage[0]!.outputTokens).toBeLessThanOrEqual(10);
    expect(text.length).toBeGreaterThan(0);
  });

  it('paces tokens with the configured delay and honours abort promptly', async () => {
    const slow = createOfflineAdapter({ tokenDelayMs: 20 });
    const controller = new AbortController();
    const started = performance.now();
    const deltas: string[] = [];
    const run = (async () => {
      for await (const chunk of slow.stream(request(PROMPT, { signal: controller.signal }))) {
        if (chunk.type === 'delta') deltas.push(chunk.text);
        if (deltas.length === 3) controller.abort();
      }
    })();
    await expect(run).rejects.toMatchObject({ kind: 'aborted', provider: 'OFFLINE' });
    expect(deltas).toHaveLength(3);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(55);
    expect(elapsed).toBeLessThan(1_000);
  });

  it('counts tokens with a simple deterministic rule', () => {
    expect(approxTokenCount('')).toBe(0);
    expect(approxTokenCount('the cat')).toBe(2);
    expect(approxTokenCount('orchestration!')).toBe(4); // ceil(13/6) + 1
    expect(approxTokenCount('**bold** ###')).toBe(4);
  });
});
