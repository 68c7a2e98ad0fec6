import { z } from 'zod';
import type { Role } from '../../_generated/prisma/enums.js';
import type { Context } from '../../context.js';
import { ConflictError, NotFoundError, ValidationError } from '../../lib/errors.js';
import { nameText, parseInput } from '../../lib/validate.js';
import { audit } from '../audit/audit.service.js';
import { authorize, deny, requireViewer } from '../authorize.js';
import { canAssignRole } from '../permissions.js';
import { ACCESS_CHANNEL, type AccessChange } from '../auth/viewer.js';
import { revokeInvitationsBeyondRole } from './invitations.service.js';

export const slug = z
  .string()
  .trim()
  .toLowerCase()
  .min(2, 'Use at least 2 characters')
  .max(48, 'Use at most 48 characters')
  .regex(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/, 'Use lower-case letters, digits and dashes');

const timeZone = z
  .string()
  .trim()
  .refine((tz) => {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  }, 'Unknown time zone; use an IANA name such as Europe/Paris');

export const slugify = (s: string) =>
  s
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40) || 'org';

/** A unique-index violation on a slug (Prisma P2002): the index, not a prior lookup, decides who has a slug. */
const isSlugTaken = (err: unknown) =>
  (err as { code?: unknown } | null)?.code === 'P2002' && JSON.stringify((err as { meta?: unknown }).meta ?? {}).includes('slug');

/**
 * Creates something whose slug must be unique. An explicit slug that is taken is the caller's to fix (a
 * ValidationError on `slug`); a generated one gets a short random suffix and is tried again. Two creations
 * racing for one slug cannot both pass a check and then collide: the unique index decides.
 */
export async function withUniqueSlug<T>(wanted: string, explicit: boolean, takenMessage: string, create: (slug: string) => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const candidate = attempt === 0 ? wanted : `${wanted.slice(0, 40)}-${Math.random().toString(36).slice(2, 7)}`;
    try {
      return await create(candidate);
    } catch (err) {
      if (!isSlugTaken(err) || attempt === 4) throw err;
      if (explicit) throw new ValidationError([{ path: ['slug'], message: takenMessage }]);
    }
  }
}

const role = z.enum(['OWNER', 'ADMIN', 'MEMBER', 'VIEWER']);
const name = nameText({ blank: 'Enter a name', max: 100, tooLong: 'Use at most 100 characters' });

const CreateOrg = z.object({ name, slug: slug.nullish(), timeZone: timeZone.nullish() });
const UpdateOrg = z.object({ name: name.nullish(), timeZone: timeZone.nullish() });

export async function createOrganization(ctx: Context, raw: unknown) {
  const viewer = requireViewer(ctx);
  const input = parseInput(CreateOrg, raw);
  return withUniqueSlug(input.slug ?? slugify(input.name), Boolean(input.slug), 'This slug is taken', (slug) =>
    ctx.prisma.$transaction(async (tx) => {
      const org = await tx.organization.create({
        data: {
          name: input.name,
          slug,
          timeZone: input.timeZone ?? 'UTC',
          memberships: { create: { userId: viewer.userId, role: 'OWNER' } },
        },
      });
      await audit(tx, { organizationId: org.id, actorId: viewer.userId, action: 'org.created', targetType: 'Organization', targetId: org.id, ip: ctx.ip });
      return org;
    }),
  );
}

export async function updateOrganization(ctx: Context, organizationId: string, raw: unknown) {
  await authorize(ctx, organizationId, 'organization.update', 'Organization');
  const input = parseInput(UpdateOrg, raw);
  return ctx.prisma.$transaction(async (tx) => {
    const org = await tx.organization.update({
      where: { id: organizationId },
      data: { ...(input.name ? { name: input.name } : {}), ...(input.timeZone ? { timeZone: input.timeZone } : {}) },
    });
    await audit(tx, { organizationId, actorId: ctx.viewer!.userId, action: 'org.updated', targetType: 'Organization', targetId: org.id, metadata: input, ip: ctx.ip });
    return org;
  });
}

export async function deleteOrganization(ctx: Context, organizationId: string, confirmSlug: string) {
  await authorize(ctx, organizationId, 'organization.delete', 'Organization');
  const org = await ctx.prisma.organization.findUniqueOrThrow({ where: { id: organizationId } });
  if (org.slug !== confirmSlug) {
    throw new ValidationError([{ path: ['confirmSlug'], message: `Type the organization's slug "${org.slug}" to confirm` }]);
  }
  // The audit row outlives the organization (organizationId null) so the deletion stays on record.
  await audit(ctx.prisma, { actorId: ctx.viewer!.userId, action: 'org.deleted', targetType: 'Organization', targetId: org.id, metadata: { slug: org.slug, name: org.name }, ip: ctx.ip });
  const members = await ctx.prisma.$transaction(async (tx) => {
    const rows = await tx.membership.findMany({ where: { organizationId }, select: { userId: true } });
    await tx.organization.delete({ where: { id: organizationId } });
    return rows;
  });
  // Every member's open subscriptions were authorized with their membership, as when one is removed: their
  // connections reconnect and are authorized again (those in this organization then fail as not found).
  for (const { userId } of members) await ctx.bus.publish(ACCESS_CHANNEL, { member: userId, organization: organizationId } satisfies AccessChange);
  return org;
}

async function loadMembership(ctx: Context, membershipId: string) {
  const viewer = requireViewer(ctx);
  const m = await ctx.prisma.membership.findFirst({
    where: { id: membershipId, organization: { memberships: { some: { userId: viewer.userId } } } },
  });
  if (!m) throw new NotFoundError('Membership');
  return m;
}

/** True when this membership is its organization's only OWNER, so it can be neither demoted nor removed. */
export async function isLastOwner(ctx: Context, m: { organizationId: string; role: Role }) {
  return m.role === 'OWNER' && (await ctx.prisma.membership.count({ where: { organizationId: m.organizationId, role: 'OWNER' } })) === 1;
}

/**
 * Runs `change` only if the organization still has an OWNER afterwards (checked inside the transaction);
 * otherwise the input `field` that asked for the change is invalid.
 */
async function keepingAnOwner<T>(ctx: Context, organizationId: string, field: string, change: (tx: Parameters<Parameters<Context['prisma']['$transaction']>[0]>[0]) => Promise<T>) {
  return ctx.prisma.$transaction(async (tx) => {
    // Lock the organization row so two concurrent demotions cannot both see "another owner remains".
    await tx.$queryRaw`SELECT id FROM "Organization" WHERE id = ${organizationId}::uuid FOR UPDATE`;
    const result = await change(tx);
    const owners = await tx.membership.count({ where: { organizationId, role: 'OWNER' } });
    if (owners === 0) throw new ValidationError([{ path: [field], message: 'An organization must keep at least one OWNER' }]);
    return result;
  });
}

/**
 * Role checks run before the organization lock is taken. Under the lock, make sure neither the target's
 * role nor the actor's (when it mattered) changed since: otherwise two admins demoting each other at the
 * same moment could both succeed, each on the strength of a role the other had just taken away.
 */
async function rolesUnchanged(
  tx: Parameters<Parameters<Context['prisma']['$transaction']>[0]>[0],
  target: { id: string; organizationId: string; role: Role },
  actorRole: Role | null,
  actorUserId: string,
) {
  const now = await tx.membership.findMany({
    where: { organizationId: target.organizationId, OR: [{ id: target.id }, { userId: actorUserId }] },
    select: { id: true, userId: true, role: true },
  });
  const current = now.find((r) => r.id === target.id);
  if (!current) throw new NotFoundError('Membership');
  const actor = now.find((r) => r.userId === actorUserId);
  if (current.role !== target.role || (actorRole !== null && actor?.role !== actorRole)) {
    throw new ConflictError('Roles in this organization changed meanwhile; reload and try again');
  }
}

export async function updateMemberRole(ctx: Context, membershipId: string, newRole: Role) {
  const m = await loadMembership(ctx, membershipId);
  const actorRole = await authorize(ctx, m.organizationId, 'member.updateRole', 'Membership');
  parseInput(z.object({ role }), { role: newRole });
  if (!canAssignRole(actorRole, m.role, newRole)) {
    throw await deny(ctx, m.organizationId, 'member.updateRole', actorRole, 'You cannot change a role above your own, or grant one', { from: m.role, to: newRole });
  }
  const changed = await keepingAnOwner(ctx, m.organizationId, 'role', async (tx) => {
    await rolesUnchanged(tx, m, actorRole, ctx.viewer!.userId);
    const updated = await tx.membership.update({ where: { id: m.id }, data: { role: newRole } });
    await audit(tx, { organizationId: m.organizationId, actorId: ctx.viewer!.userId, action: 'member.role_changed', targetType: 'Membership', targetId: m.id, metadata: { userId: m.userId, from: m.role, to: newRole }, ip: ctx.ip });
    await revokeInvitationsBeyondRole(tx, { organizationId: m.organizationId, userId: m.userId, role: newRole, actorId: ctx.viewer!.userId, ip: ctx.ip });
    return updated;
  });
  // Their open subscriptions were authorized, and render, with the old role: their connections reconnect.
  if (m.role !== newRole) await ctx.bus.publish(ACCESS_CHANNEL, { member: m.userId, organization: m.organizationId } satisfies AccessChange);
  return changed;
}

export async function removeMember(ctx: Context, membershipId: string) {
  const m = await loadMembership(ctx, membershipId);
  const self = m.userId === ctx.viewer!.userId;
  // Anyone may leave; removing someone else needs member.remove and a role at least theirs.
  let actorRole: Role | null = null;
  if (!self) {
    actorRole = await authorize(ctx, m.organizationId, 'member.remove', 'Membership');
    if (!canAssignRole(actorRole, m.role, m.role)) {
      throw await deny(ctx, m.organizationId, 'member.remove', actorRole, 'You cannot remove someone above your role', { targetRole: m.role });
    }
  }
  const removed = await keepingAnOwner(ctx, m.organizationId, 'membershipId', async (tx) => {
    await rolesUnchanged(tx, m, actorRole, ctx.viewer!.userId);
    await tx.membership.delete({ where: { id: m.id } });
    await audit(tx, { organizationId: m.organizationId, actorId: ctx.viewer!.userId, action: self ? 'member.left' : 'member.removed', targetType: 'Membership', targetId: m.id, metadata: { userId: m.userId, role: m.role }, ip: ctx.ip });
    await revokeInvitationsBeyondRole(tx, { organizationId: m.organizationId, userId: m.userId, role: null, actorId: ctx.viewer!.userId, ip: ctx.ip });
    return m;
  });
  // Their open subscriptions were authorized with the membership: their connections reconnect and are authorized again.
  await ctx.bus.publish(ACCESS_CHANNEL, { member: m.userId, organization: m.organizationId } satisfies AccessChange);
  return removed;
}
