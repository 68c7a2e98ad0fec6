import type { Provider } from '$lib/graphql/_generated/graphql';
import { formatDuration, truncate } from '$lib/format';

/** Short provider names for tables and captions (the providers query has the long labels). */
export const providerNames: Record<Provider, string> = {
  OFFLINE: 'Offline',
  OPENAI: 'OpenAI',
  ANTHROPIC: 'Anthropic',
  XAI: 'xAI',
  PERPLEXITY: 'Perplexity',
};

/** An elapsed time from milliseconds: `420 ms`, `1.24 s`, `12.5 s`, `3m 4s`. */
export function formatElapsed(ms: number): string {
  const value = Math.max(0, ms);
  if (value < 1_000) return `${Math.round(value)} ms`;
  if (value < 10_000) return `${(value / 1_000).toFixed(2)} s`;
  if (value < 60_000) return `${(value / 1_000).toFixed(1)} s`;
  return formatDuration(value / 1_000);
}

/** Milliseconds between two `DateTime`s, or undefined when either is missing. */
export function between(from: string | null | undefined, to: string | null | undefined): number | undefined {
  if (!from || !to) return undefined;
  return new Date(to).getTime() - new Date(from).getTime();
}

/** A one-line summary of a run's input, for titles and table rows. */
export function runSummary(input: string, max = 90): string {
  const line = input.trim().split('\n').find((l) => l.trim() !== '')?.trim() ?? '';
  const plain = line.replace(/^#+\s*/, '').replace(/[*_`]+/g, '');
  if (plain === '') return 'Untitled run';
  return truncate(plain, max);
}

/** A compact integer: `950`, `12,480`. */
export const formatCount = (n: number) => n.toLocaleString('en-US');

/** The run page; global ids are base64 and may contain `/`, `+` or `=`. */
export const runHref = (id: string) => `/runs/${encodeURIComponent(id)}`;

/** An agent's page. */
export const agentHref = (id: string) => `/agents/${encodeURIComponent(id)}`;
