/**
 * Every action the audit log records, by where its rows go. `audit()` accepts only these names, and
 * actions.test.ts checks that the SQL functions write no others; the web's audit page must name every
 * organization action (web/test/audit.test.ts compares its list with this one).
 */
export const AUDIT_ACTIONS = {
  /** Rows of an organization: its audit page and export. */
  organization: [
    'org.created',
    'org.updated',
    'member.invited',
    'member.invitation_revoked',
    'member.joined',
    'member.role_changed',
    'member.removed',
    'member.left',
    'project.created',
    'project.updated',
    'project.archived',
    'project.restored',
    'agent.created',
    'agent.updated',
    'agent.archived',
    'agent.restored',
    'run.cancelled',
    'budget.created',
    'budget.updated',
    'budget.removed',
    'budget.threshold_crossed',
    'budget.exceeded',
    'access.denied',
  ],
  /** Rows of an account, outside any organization (`viewer.activity`); an organization's deletion outlives it. */
  account: [
    'auth.sign_up',
    'auth.sign_in',
    'auth.sign_in_failed',
    'auth.sign_out',
    'auth.sign_out_everywhere',
    'token.created',
    'token.revoked',
    'org.deleted',
  ],
  /** No longer written, but still in the logs of organizations that used them. */
  retired: [
    /** Adding an existing account by email, before invitations replaced it. */
    'member.added',
  ],
} as const;

export type AuditAction = (typeof AUDIT_ACTIONS)['organization' | 'account'][number];
