import { z } from 'zod';
import type { Invitation, Role } from '../../_generated/prisma/client.js';
import type { Context } from '../../context.js';
import { ConflictError, ForbiddenError, NotFoundError } from '../../lib/errors.js';
import { randomToken, sha256 } from '../../lib/tokens.js';
import { parseInput } from '../../lib/validate.js';
import { audit } from '../audit/audit.service.js';
import { email } from '../auth/auth.service.js';
import { authorize, deny, requireViewer } from '../authorize.js';
import { can, canAssignRole } from '../permissions.js';

/** How long an invitation link stays valid. */
export const INVITATION_TTL_MS = 7 * 24 * 60 * 60 * 1000;

export const INVITATION_TOKEN_PREFIX = 'hub_inv_';

/** At most this many invitations of one organization are pending at once; revoke some to invite more. */
export const MAX_PENDING_INVITATIONS = 100;

const InviteMember = z.object({ email, role: z.enum(['OWNER', 'ADMIN', 'MEMBER', 'VIEWER'], 'Choose a role') });
const Token = z.string().trim().min(1, 'Paste the invitation link or its token').max(200, 'That is not an invitation link: it is too long');

export type InvitationStatus = 'PENDING' | 'ACCEPTED' | 'REVOKED' | 'EXPIRED';

export function invitationStatus(inv: Pick<Invitation, 'acceptedAt' | 'revokedAt' | 'expiresAt'>, now = new Date()): InvitationStatus {
  if (inv.acceptedAt) return 'ACCEPTED';
  if (inv.revokedAt) return 'REVOKED';
  return inv.expiresAt <= now ? 'EXPIRED' : 'PENDING';
}

/** Prisma filter: invitations that can still be accepted. */
export const pendingInvitation = (now = new Date()) => ({ acceptedAt: null, revokedAt: null, expiresAt: { gt: now } });

/** Whether someone with this role (null: no longer a member) may still offer an invitation with that role. */
const mayOffer = (inviterRole: Role | null, offered: Role) => can(inviterRole, 'member.add') && canAssignRole(inviterRole, null, offered);

type Tx = Parameters<Parameters<Context['prisma']['$transaction']>[0]>[0];

/**
 * An invitation offers what its sender may grant. When the sender leaves, is removed or is given a lower role
 * (and in the same transaction), their pending invitations they could no longer send are revoked, each with
 * an audit row: otherwise a removed admin could walk back in as an admin through a link sent earlier.
 */
export async function revokeInvitationsBeyondRole(
  tx: Tx,
  change: { organizationId: string; userId: string; role: Role | null; actorId: string; ip: string | null },
) {
  const now = new Date();
  const pending = await tx.invitation.findMany({
    where: { organizationId: change.organizationId, invitedById: change.userId, ...pendingInvitation(now) },
    select: { id: true, email: true, role: true },
  });
  const beyond = pending.filter((inv) => !mayOffer(change.role, inv.role));
  if (beyond.length === 0) return 0;
  await tx.invitation.updateMany({ where: { id: { in: beyond.map((inv) => inv.id) } }, data: { revokedAt: now } });
  const reason = change.role ? `its sender's role is now ${change.role}` : 'its sender is no longer a member';
  for (const inv of beyond) {
    await audit(tx, {
      organizationId: change.organizationId,
      actorId: change.actorId,
      action: 'member.invitation_revoked',
      targetType: 'Invitation',
      targetId: inv.id,
      metadata: { email: inv.email, role: inv.role, reason },
      ip: change.ip,
    });
  }
  return beyond.length;
}

/** The token of a link (`…/invitations/<token>`) or the token itself. */
const tokenOf = (raw: unknown) => {
  const value = parseInput(Token, raw);
  return value.slice(value.lastIndexOf('/') + 1);
};

/**
 * Invites an email address into the organization with a role. The answer is the same whether or not an
 * account uses that email (nothing is looked up but this organization's own members), so inviting tells
 * nobody who has an account. Returns the invitation and its secret token, shown once: whoever invites
 * passes the link on. A pending invitation for the same email is replaced (its link stops working).
 */
export async function inviteMember(ctx: Context, organizationId: string, raw: unknown) {
  const { userId: actorId } = requireViewer(ctx);
  const actorRole = await authorize(ctx, organizationId, 'member.add', 'Organization');
  const input = parseInput(InviteMember, raw);
  if (!canAssignRole(actorRole, null, input.role)) {
    throw await deny(ctx, organizationId, 'member.add', actorRole, `You cannot grant ${input.role}`, { grant: input.role });
  }
  const token = `${INVITATION_TOKEN_PREFIX}${randomToken(32)}`;
  const invitation = await ctx.prisma.$transaction(async (tx) => {
    // One invitation per email at a time, even when two admins invite at once.
    await tx.$queryRaw`SELECT id FROM "Organization" WHERE id = ${organizationId}::uuid FOR UPDATE`;
    const member = await tx.membership.findFirst({ where: { organizationId, user: { email: input.email } }, select: { id: true } });
    if (member) throw new ConflictError('This person is already a member', 'email');
    const now = new Date();
    // Counted under the lock, so two admins inviting at once cannot both take the last place. An email
    // already pending keeps its place: its invitation is replaced.
    const pending = await tx.invitation.count({ where: { organizationId, email: { not: input.email }, ...pendingInvitation(now) } });
    if (pending >= MAX_PENDING_INVITATIONS) {
      throw new ConflictError(`This organization already has ${MAX_PENDING_INVITATIONS} pending invitations; revoke some before inviting more`);
    }
    await tx.invitation.updateMany({ where: { organizationId, email: input.email, ...pendingInvitation(now) }, data: { revokedAt: now } });
    const inv = await tx.invitation.create({
      data: {
        organizationId,
        email: input.email,
        role: input.role,
        tokenHash: sha256(token),
        invitedById: actorId,
        createdAt: now,
        expiresAt: new Date(now.getTime() + INVITATION_TTL_MS),
      },
    });
    await audit(tx, {
      organizationId,
      actorId,
      action: 'member.invited',
      targetType: 'Invitation',
      targetId: inv.id,
      metadata: { email: inv.email, role: inv.role, expiresAt: inv.expiresAt.toISOString() },
      ip: ctx.ip,
    });
    return inv;
  });
  return { invitation, token };
}

/** An invitation of an organization the viewer belongs to (NotFound otherwise: no existence leak). */
async function loadInvitation(ctx: Context, invitationId: string) {
  const viewer = requireViewer(ctx);
  const inv = await ctx.prisma.invitation.findFirst({
    where: { id: invitationId, organization: { memberships: { some: { userId: viewer.userId } } } },
  });
  if (!inv) throw new NotFoundError('Invitation');
  return inv;
}

/** Withdraws a pending invitation: its link stops working. Who may invite may revoke, up to their own role. */
export async function revokeInvitation(ctx: Context, invitationId: string) {
  const { userId: actorId } = requireViewer(ctx);
  const inv = await loadInvitation(ctx, invitationId);
  const actorRole = await authorize(ctx, inv.organizationId, 'member.add', 'Invitation');
  if (!canAssignRole(actorRole, null, inv.role)) {
    throw await deny(ctx, inv.organizationId, 'member.add', actorRole, `You cannot revoke an invitation as ${inv.role}`, { invitationId: inv.id });
  }
  return ctx.prisma.$transaction(async (tx) => {
    const now = new Date();
    const { count } = await tx.invitation.updateMany({ where: { id: inv.id, ...pendingInvitation(now) }, data: { revokedAt: now } });
    if (count === 0) throw new ConflictError('This invitation is no longer pending');
    await audit(tx, {
      organizationId: inv.organizationId,
      actorId,
      action: 'member.invitation_revoked',
      targetType: 'Invitation',
      targetId: inv.id,
      metadata: { email: inv.email, role: inv.role },
      ip: ctx.ip,
    });
    return tx.invitation.findUniqueOrThrow({ where: { id: inv.id } });
  });
}

/**
 * What an invitation link offers, for its holder to decide: null when the token is unknown or the
 * invitation is no longer pending (the same answer for each, so a link tells nothing once it is dead).
 */
export async function previewInvitation(ctx: Context, raw: unknown) {
  const inv = await ctx.prisma.invitation.findUnique({
    where: { tokenHash: sha256(tokenOf(raw)) },
    include: { organization: { select: { name: true, slug: true } }, invitedBy: { select: { name: true } } },
  });
  if (!inv || invitationStatus(inv) !== 'PENDING') return null;
  return inv;
}

/**
 * Joins the organization through an invitation link. The signed-in account must use the invited email:
 * the link is a secret, and the email keeps it for the person it was meant for. One use only.
 */
export async function acceptInvitation(ctx: Context, raw: unknown) {
  const viewer = requireViewer(ctx);
  const tokenHash = sha256(tokenOf(raw));
  const invalid = () => new NotFoundError('Invitation');
  const inv = await ctx.prisma.invitation.findUnique({ where: { tokenHash } });
  if (!inv || invitationStatus(inv) !== 'PENDING') throw invalid();
  if (inv.email !== viewer.email.toLowerCase()) {
    throw new ForbiddenError(`This invitation is for ${inv.email}; sign in with that account to accept it`);
  }
  return ctx.prisma.$transaction(async (tx) => {
    await tx.$queryRaw`SELECT id FROM "Organization" WHERE id = ${inv.organizationId}::uuid FOR UPDATE`;
    const now = new Date();
    // Spent under the lock: of two tabs accepting at once, one joins and the other finds it used.
    const { count } = await tx.invitation.updateMany({ where: { id: inv.id, ...pendingInvitation(now) }, data: { acceptedAt: now, acceptedById: viewer.userId } });
    if (count === 0) throw invalid();
    // Checked again under the lock (role changes take it too): the sender must still be able to offer this role.
    const sender = inv.invitedById
      ? await tx.membership.findUnique({ where: { organizationId_userId: { organizationId: inv.organizationId, userId: inv.invitedById } }, select: { role: true } })
      : null;
    if (!mayOffer(sender?.role ?? null, inv.role)) {
      throw new ForbiddenError(`This invitation is no longer valid: whoever sent it can no longer grant ${inv.role}. Ask an admin of the organization for a new one`);
    }
    const existing = await tx.membership.findUnique({ where: { organizationId_userId: { organizationId: inv.organizationId, userId: viewer.userId } } });
    if (existing) throw new ConflictError('You are already a member of this organization');
    const m = await tx.membership.create({ data: { organizationId: inv.organizationId, userId: viewer.userId, role: inv.role } });
    await audit(tx, {
      organizationId: inv.organizationId,
      actorId: viewer.userId,
      action: 'member.joined',
      targetType: 'Membership',
      targetId: m.id,
      metadata: { invitationId: inv.id, email: inv.email, role: inv.role, invitedById: inv.invitedById },
      ip: ctx.ip,
    });
    return m;
  });
}
