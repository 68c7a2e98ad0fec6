import { checkRange } from '$lib/forms';
import type { AgentsPageProviderFragment, Provider } from '$lib/graphql/_generated/graphql';

/** The API's limits on an agent's settings (AGENT_LIMITS in api/src/modules/agents/agents.service.ts). */
export const AGENT_LIMITS = {
  name: 100,
  description: 2000,
  systemPrompt: 50_000,
  temperature: { label: 'Temperature', min: 0, max: 2 },
  maxOutputTokens: { label: 'Max output tokens', min: 1, max: 200_000, integer: true },
  fallbacks: 5,
} as const;

/** The number fields' problems, by field name, in the API's words; empty when the form may be sent. */
export function checkAgentNumbers(values: { temperature: number | null; maxOutputTokens: number | null }): Record<string, string> {
  const problems: Record<string, string> = {};
  const temperature = checkRange(values.temperature, AGENT_LIMITS.temperature);
  const maxOutputTokens = checkRange(values.maxOutputTokens, AGENT_LIMITS.maxOutputTokens);
  if (temperature) problems.temperature = temperature;
  if (maxOutputTokens) problems.maxOutputTokens = maxOutputTokens;
  return problems;
}

/**
 * Fallbacks that repeat the agent's own model or an earlier fallback, by `fallbackChain.<i>`, in the API's words
 * (chainIssues in agents.service.ts), models named as the pickers name them: such a fallback would only retry
 * what just failed.
 */
export function checkFallbackChain(
  providers: AgentsPageProviderFragment[],
  primary: { provider: Provider; model: string },
  chain: { provider: Provider; model: string }[],
): Record<string, string> {
  const problems: Record<string, string> = {};
  const tried = [`${primary.provider} ${primary.model}`];
  chain.forEach((choice, i) => {
    const key = `${choice.provider} ${choice.model}`;
    const earlier = tried.indexOf(key);
    tried.push(key);
    const { label: name } = outputLimitOf(providers, choice);
    if (earlier === 0) problems[`fallbackChain.${i}`] = `${name} is the agent's own model: a fallback must be another model`;
    else if (earlier > 0) problems[`fallbackChain.${i}`] = `${name} is already earlier in the fallback chain`;
  });
  return problems;
}

/**
 * Characters that show nothing on their own (the API's INVISIBLE_ONLY in api/src/lib/validate.ts): a name of
 * only these is refused like a blank one; a joiner between visible characters (👩‍💻) is fine.
 */
const INVISIBLE_ONLY = /^[\p{White_Space}\p{Default_Ignorable_Code_Point}\p{Cc}\p{Cf}\p{Z}\u2800]*$/u;

/** The name's problem, in the API's words: blank, or nothing of it would show. */
export function checkName(name: string): Record<string, string> {
  return INVISIBLE_ONLY.test(name.trim()) ? { name: 'Enter a name' } : {};
}

type ModelChoice = { provider: Provider; model: string };

/** The most output tokens an agent may ask of a model (Model.maxOutputTokens); the hub's ceiling for one not listed. */
export function outputLimitOf(providers: AgentsPageProviderFragment[], choice: ModelChoice): { limit: number; label: string } {
  const model = providers.find((p) => p.id === choice.provider)?.models.find((m) => m.id === choice.model);
  return { limit: model?.maxOutputTokens ?? AGENT_LIMITS.maxOutputTokens.max, label: model?.label ?? choice.model };
}

/**
 * Max output tokens above the agent's model's limit or a fallback's (a fallback is asked for as many), in the
 * API's words (outputLimitIssues in agents.service.ts): the tightest limit exceeded is named.
 */
export function checkOutputLimit(
  providers: AgentsPageProviderFragment[],
  maxOutputTokens: number | null,
  primary: ModelChoice,
  chain: ModelChoice[],
): Record<string, string> {
  if (maxOutputTokens === null || !Number.isFinite(maxOutputTokens)) return {};
  let worst: { limit: number; label: string; fallback: number } | undefined;
  [primary, ...chain].forEach((choice, fallback) => {
    const { limit, label } = outputLimitOf(providers, choice);
    if (maxOutputTokens > limit && (!worst || limit < worst.limit)) worst = { limit, label, fallback };
  });
  if (!worst) return {};
  const n = worst.limit.toLocaleString('en-US');
  return {
    maxOutputTokens: worst.fallback
      ? `Fallback ${worst.fallback}, ${worst.label}, writes at most ${n} output tokens: set max output tokens to ${n} or less, or choose another fallback`
      : `${worst.label} writes at most ${n} output tokens: set max output tokens to ${n} or less`,
  };
}
