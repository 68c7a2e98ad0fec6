import type { RunStatus } from '$lib/graphql/_generated/graphql';

export type RunFilterKey = 'all' | 'active' | 'succeeded' | 'failed' | 'blocked' | 'cancelled';

/** The status filters of the Runs page, as `?status=<key>`. */
export const runFilters: { key: RunFilterKey; label: string; statuses: RunStatus[] }[] = [
  { key: 'all', label: 'All', statuses: [] },
  { key: 'active', label: 'Active', statuses: ['QUEUED', 'RUNNING'] },
  { key: 'succeeded', label: 'Succeeded', statuses: ['SUCCEEDED'] },
  { key: 'failed', label: 'Failed', statuses: ['FAILED'] },
  { key: 'blocked', label: 'Blocked', statuses: ['BLOCKED'] },
  { key: 'cancelled', label: 'Cancelled', statuses: ['CANCELLED'] },
];

/**
 * The Runs page under a status filter and, optionally, an agent's (`?agent=<agent global id>`).
 * Global ids are base64 and may contain `/`, `+` or `=`.
 */
export function runsHref(status: RunFilterKey, agentId?: string | null): string {
  const params = new URLSearchParams();
  if (status !== 'all') params.set('status', status);
  if (agentId) params.set('agent', agentId);
  const query = params.toString();
  return query ? `/runs?${query}` : '/runs';
}
