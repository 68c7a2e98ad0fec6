import type { Role } from '$lib/graphql/_generated/graphql';

/** Roles from most to least powerful, with what each may do, for pickers. */
export const roles: { value: Role; label: string; summary: string }[] = [
  { value: 'OWNER', label: 'Owner', summary: 'Everything, including deleting the organization' },
  { value: 'ADMIN', label: 'Admin', summary: 'Members, budgets, integrations and the audit log' },
  { value: 'MEMBER', label: 'Member', summary: 'Create projects and agents, start runs' },
  { value: 'VIEWER', label: 'Viewer', summary: 'Read-only access' },
];

/** The roles someone with `own` may give (to a member or an invitation): theirs and those below it, as the API allows. */
export function assignableRoles(own: Role) {
  return roles.slice(roles.findIndex((r) => r.value === own));
}
