import type { Role } from '../_generated/prisma/enums.js';
import type { Context } from '../context.js';
import { ForbiddenError, NotFoundError, UnauthenticatedError } from '../lib/errors.js';
import { audit } from './audit/audit.service.js';
import { ACTION_WORDS, can, type Action } from './permissions.js';

export function requireViewer(ctx: Context) {
  if (!ctx.viewer) throw new UnauthenticatedError();
  return ctx.viewer;
}

/**
 * Checks the permission table for an organization-scoped action. A non-member gets NotFound, exactly
 * like a missing organization (no existence leak); a member without the role gets Forbidden and an
 * audit row records the denial.
 */
export async function authorize(ctx: Context, organizationId: string, action: Action, entity = 'Object'): Promise<Role> {
  requireViewer(ctx);
  return authorizeRole(ctx, organizationId, await ctx.roleIn(organizationId), action, entity);
}

/** `authorize` for a caller that already read the viewer's role in the organization (null: not a member). */
export async function authorizeRole(ctx: Context, organizationId: string, role: Role | null, action: Action, entity = 'Object'): Promise<Role> {
  requireViewer(ctx);
  if (!role) throw new NotFoundError(entity);
  if (!can(role, action)) throw await deny(ctx, organizationId, action, role, `Your role (${role}) cannot ${ACTION_WORDS[action]}`);
  return role;
}

/** Records a member's denied attempt as an `access.denied` audit row and returns the error to throw. */
export async function deny(ctx: Context, organizationId: string, attempted: Action, role: Role, message: string, detail: Record<string, unknown> = {}) {
  await audit(ctx.prisma, {
    organizationId,
    actorId: requireViewer(ctx).userId,
    action: 'access.denied',
    metadata: { attempted, role, ...detail },
    ip: ctx.ip,
  });
  return new ForbiddenError(message);
}
