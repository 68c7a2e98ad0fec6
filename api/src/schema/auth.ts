import type { Role } from '../_generated/prisma/enums.js';
import type { Context } from '../context.js';

/** Role order: a higher rank can do everything a lower one can. */
export const ROLE_RANK: Record<Role, number> = { VIEWER: 1, MEMBER: 2, ADMIN: 3, OWNER: 4 };

export const atLeast = (role: Role | null | undefined, required: Role) =>
  role != null && ROLE_RANK[role] >= ROLE_RANK[required];

/** The one scope initializer: coarse scopes computed from the request's viewer and memberships. */
export function authScopeInitializer(ctx: Context) {
  return {
    loggedIn: ctx.viewer !== null,
    orgRole: async ({ organizationId, role }: { organizationId: string; role: Role }) =>
      atLeast(await ctx.roleIn(organizationId), role),
    self: (userId: string) => ctx.viewer !== null && ctx.viewer.userId === userId,
  };
}
