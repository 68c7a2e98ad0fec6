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
