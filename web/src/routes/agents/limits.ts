import { checkRange } from '$lib/forms';

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
