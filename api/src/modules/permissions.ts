import type { Role } from '../_generated/prisma/enums.js';
import { ROLE_RANK, atLeast } from '../schema/auth.js';

/**
 * THE permission table: the least role each organization-scoped action needs.
 * Enforcement (services), `viewerCanX` fields, docs/permissions.md and the permission test all read it.
 */
export const PERMISSIONS = {
  'organization.read': 'VIEWER',
  'organization.update': 'ADMIN',
  'organization.delete': 'OWNER',
  'member.read': 'VIEWER',
  'member.add': 'ADMIN',
  'member.updateRole': 'ADMIN',
  'member.remove': 'ADMIN',
  'project.read': 'VIEWER',
  'project.create': 'MEMBER',
  'project.update': 'MEMBER',
  'project.archive': 'ADMIN',
  'agent.read': 'VIEWER',
  'agent.create': 'MEMBER',
  'agent.update': 'MEMBER',
  'agent.archive': 'MEMBER',
  'run.read': 'VIEWER',
  'run.start': 'MEMBER',
  'run.cancel': 'MEMBER',
  'run.retry': 'MEMBER',
  'budget.read': 'VIEWER',
  'budget.set': 'ADMIN',
  'budget.remove': 'ADMIN',
  'usage.read': 'VIEWER',
  'audit.read': 'ADMIN',
  'integration.read': 'VIEWER',
  'integration.manage': 'ADMIN',
  'memory.read': 'VIEWER',
  'memory.write': 'MEMBER',
} as const satisfies Record<string, Role>;

export type Action = keyof typeof PERMISSIONS;

/** What each action lets a member do, in words: refusals ("Your role (VIEWER) cannot start runs") and the docs read it. */
export const ACTION_WORDS: Record<Action, string> = {
  'organization.read': 'see the organization',
  'organization.update': 'change the organization’s settings',
  'organization.delete': 'delete the organization',
  'member.read': 'see the members',
  'member.add': 'invite members',
  'member.updateRole': 'change members’ roles',
  'member.remove': 'remove members',
  'project.read': 'see projects',
  'project.create': 'create projects',
  'project.update': 'change projects',
  'project.archive': 'archive or restore projects',
  'agent.read': 'see agents',
  'agent.create': 'create agents',
  'agent.update': 'change agents',
  'agent.archive': 'archive or restore agents',
  'run.read': 'see runs',
  'run.start': 'start runs',
  'run.cancel': 'cancel runs',
  'run.retry': 'retry runs',
  'budget.read': 'see budgets',
  'budget.set': 'set budgets',
  'budget.remove': 'remove budgets',
  'usage.read': 'see usage and spend',
  'audit.read': 'read the audit log',
  'integration.read': 'see integrations',
  'integration.manage': 'connect or disconnect integrations',
  'memory.read': 'read the shared memory',
  'memory.write': 'write to the shared memory',
};

/** Rules for mutations that act on the caller's own account rather than inside an organization. */
export type AccountRule = 'anyone' | 'signedIn';

/**
 * What each GraphQL mutation needs: an action of the table (checked in the organization its input
 * points into) or an account rule. The permission test fails when a schema mutation is missing here.
 */
export const MUTATION_PERMISSIONS = {
  signUp: 'anyone',
  signIn: 'anyone',
  signOut: 'signedIn',
  createApiToken: 'signedIn',
  revokeApiToken: 'signedIn',
  createOrganization: 'signedIn',
  updateOrganization: 'organization.update',
  deleteOrganization: 'organization.delete',
  inviteMember: 'member.add',
  revokeInvitation: 'member.add',
  acceptInvitation: 'signedIn',
  updateMemberRole: 'member.updateRole',
  removeMember: 'member.remove',
  createProject: 'project.create',
  updateProject: 'project.update',
  archiveProject: 'project.archive',
  restoreProject: 'project.archive',
  createAgent: 'agent.create',
  updateAgent: 'agent.update',
  archiveAgent: 'agent.archive',
  restoreAgent: 'agent.archive',
  startRun: 'run.start',
  cancelRun: 'run.cancel',
  retryRun: 'run.retry',
  setBudget: 'budget.set',
  removeBudget: 'budget.remove',
} as const satisfies Record<string, Action | AccountRule>;

export type MutationName = keyof typeof MUTATION_PERMISSIONS;

export const isAccountRule = (rule: Action | AccountRule): rule is AccountRule => rule === 'anyone' || rule === 'signedIn';

/** Pure predicate: may someone with `role` in an organization perform `action` there? */
export const can = (role: Role | null | undefined, action: Action) => atLeast(role, PERMISSIONS[action]);

/** Pure predicate for role changes: nobody grants or touches a role above their own. */
export function canAssignRole(actor: Role | null | undefined, targetCurrent: Role | null, next: Role) {
  if (!actor) return false;
  const rank = ROLE_RANK[actor];
  return ROLE_RANK[next] <= rank && (targetCurrent === null || ROLE_RANK[targetCurrent] <= rank);
}
