/** Human names of the audited actions, grouped for the filter; unknown actions show their raw name. */
export const actionGroups: { label: string; actions: Record<string, string> }[] = [
  {
    label: 'Organization',
    actions: {
      'org.created': 'Organization created',
      'org.updated': 'Organization updated',
      'org.deleted': 'Organization deleted',
    },
  },
  {
    label: 'Members',
    actions: {
      'member.invited': 'Member invited',
      'member.invitation_revoked': 'Invitation revoked',
      'member.joined': 'Member joined',
      'member.added': 'Member added',
      'member.role_changed': 'Role changed',
      'member.removed': 'Member removed',
      'member.left': 'Member left',
    },
  },
  {
    label: 'Projects and agents',
    actions: {
      'project.created': 'Project created',
      'project.archived': 'Project archived',
      'agent.created': 'Agent created',
      'agent.archived': 'Agent archived',
    },
  },
  {
    label: 'Budgets',
    actions: {
      'budget.exceeded': 'Budget exceeded',
      'budget.threshold_crossed': 'Budget threshold crossed',
      'budget.removed': 'Budget removed',
    },
  },
  {
    label: 'Security',
    actions: {
      'access.denied': 'Access denied',
    },
  },
];

const labels = new Map(actionGroups.flatMap((group) => Object.entries(group.actions)));

export function actionLabel(action: string): string {
  return labels.get(action) ?? action;
}

/** Badge colour of an action: denials and deletions stand out, budget events warn. */
export function actionTone(action: string): string {
  if (action === 'access.denied' || action.endsWith('.deleted') || action.endsWith('.removed')) return 'badge-error';
  if (action.startsWith('budget.')) return 'badge-warning';
  if (action.endsWith('.created') || action.endsWith('.added') || action.endsWith('.joined')) return 'badge-success';
  return 'border-transparent bg-base-content/10 text-base-content/75';
}
