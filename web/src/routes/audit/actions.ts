/**
 * Human names of the actions in an organization's audit log, grouped for the filter; unknown actions show
 * their raw name. Exactly the API's AUDIT_ACTIONS.organization and .retired (web/test/audit.test.ts checks).
 */
export const actionGroups: { label: string; actions: Record<string, string> }[] = [
  {
    label: 'Organization',
    actions: {
      'org.created': 'Organization created',
      'org.updated': 'Organization updated',
    },
  },
  {
    label: 'Members',
    actions: {
      'member.invited': 'Member invited',
      'member.invitation_revoked': 'Invitation revoked',
      'member.joined': 'Member joined',
      'member.role_changed': 'Role changed',
      'member.removed': 'Member removed',
      'member.left': 'Member left',
      // Before invitations, admins added existing accounts directly.
      'member.added': 'Member added',
    },
  },
  {
    label: 'Projects and agents',
    actions: {
      'project.created': 'Project created',
      'project.updated': 'Project updated',
      'project.archived': 'Project archived',
      'project.restored': 'Project restored',
      'agent.created': 'Agent created',
      'agent.updated': 'Agent updated',
      'agent.archived': 'Agent archived',
      'agent.restored': 'Agent restored',
    },
  },
  {
    label: 'Runs',
    actions: {
      'run.cancelled': 'Run cancelled',
    },
  },
  {
    label: 'Budgets',
    actions: {
      'budget.created': 'Budget created',
      'budget.updated': 'Budget changed',
      'budget.removed': 'Budget removed',
      'budget.threshold_crossed': 'Budget threshold crossed',
      'budget.exceeded': 'Budget exceeded',
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

/** What a target type is called on the page. */
const targetTypes: Record<string, string> = { Membership: 'Member', ApiToken: 'API token' };

export function targetTypeLabel(type: string): string {
  return targetTypes[type] ?? type;
}

/** Badge colour of an action: denials and deletions stand out, budget alerts and refusals warn. */
export function actionTone(action: string): string {
  if (action === 'access.denied' || action.endsWith('.deleted') || action.endsWith('.removed')) return 'badge-error';
  if (action === 'budget.threshold_crossed' || action === 'budget.exceeded') return 'badge-warning';
  if (action.endsWith('.created') || action.endsWith('.added') || action.endsWith('.joined')) return 'badge-success';
  return 'border-transparent bg-base-content/10 text-base-content/75';
}
