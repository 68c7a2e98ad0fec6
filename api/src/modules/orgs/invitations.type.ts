import { ConflictError } from '../../lib/errors.js';
import { fromGlobalId } from '../../lib/ids.js';
import { builder, MAX_PAGE_SIZE } from '../../schema/builder.js';
import { resumeRelatedCursor } from '../../schema/resume-cursor.js';
import { can, canAssignRole, PERMISSIONS } from '../permissions.js';
import * as invitations from './invitations.service.js';
import { RoleEnum } from './orgs.type.js';

const InvitationStatusEnum = builder.enumType('InvitationStatus', {
  values: {
    PENDING: { description: 'Its link can be used.' },
    ACCEPTED: { description: 'Someone joined through it.' },
    REVOKED: { description: 'Withdrawn, or replaced by a newer invitation for the same email.' },
    EXPIRED: { description: 'Not used in time.' },
  } as const,
});

export const InvitationRef = builder.prismaNode('Invitation', {
  id: { field: 'id' },
  description: 'An invitation to join an organization, accepted through a secret link by the invited email.',
  // Defense in depth: invitations only ever resolve for those who may invite in their organization.
  authScopes: (inv) => ({ orgRole: { organizationId: inv.organizationId, role: PERMISSIONS['member.add'] } }),
  fields: (t) => ({
    email: t.exposeString('email'),
    role: t.expose('role', { type: RoleEnum, description: 'The role its holder gets on accepting.' }),
    status: t.field({ type: InvitationStatusEnum, resolve: (inv) => invitations.invitationStatus(inv) }),
    invitedBy: t.relation('invitedBy', { nullable: true, description: 'Who invited; null once that account is deleted.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime' }),
    acceptedAt: t.expose('acceptedAt', { type: 'DateTime', nullable: true }),
    viewerCanRevoke: t.boolean({
      description: 'Pending, and its role is at most yours (nobody touches a role above their own).',
      resolve: async (inv, _a, ctx) => {
        const role = await ctx.roleIn(inv.organizationId);
        return invitations.invitationStatus(inv) === 'PENDING' && can(role, 'member.add') && canAssignRole(role, null, inv.role);
      },
    }),
  }),
});

builder.prismaObjectField('Organization', 'invitations', (t) =>
  t.relatedConnection('invitations', {
    description: 'Pending invitations, newest first (ADMIN and above; others get null and a FORBIDDEN error).',
    cursor: 'id',
    maxSize: MAX_PAGE_SIZE,
    defaultSize: 50,
    nullable: true,
    authScopes: (org) => ({ orgRole: { organizationId: org.id, role: PERMISSIONS['member.add'] } }),
    // An invitation accepted, revoked or expired since its page was read would end the list there (see resumeRelatedCursor).
    query: async (page, ctx) => {
      const where = invitations.pendingInvitation();
      const orderBy = [{ createdAt: 'desc' as const }, { id: 'desc' as const }];
      return { where, orderBy, ...(await resumeRelatedCursor(ctx.prisma.invitation, { page, where, orderBy, scope: ['organizationId'] })) };
    },
    totalCount: true,
  }),
);

/** What a link offers its holder before they accept: enough to decide, nothing about the organization's members. */
const InvitationPreviewRef = builder
  .objectRef<Awaited<ReturnType<typeof invitations.previewInvitation>> & object>('InvitationPreview')
  .implement({
    description: 'A pending invitation as its link shows it.',
    fields: (t) => ({
      organizationName: t.string({ resolve: (inv) => inv.organization.name }),
      organizationSlug: t.string({ resolve: (inv) => inv.organization.slug }),
      email: t.exposeString('email', { description: 'The email it was sent to: accept it signed in with this account.' }),
      role: t.expose('role', { type: RoleEnum }),
      invitedByName: t.string({ nullable: true, resolve: (inv) => inv.invitedBy?.name ?? null }),
      expiresAt: t.expose('expiresAt', { type: 'DateTime' }),
    }),
  });

builder.queryField('invitation', (t) =>
  t.field({
    type: InvitationPreviewRef,
    nullable: true,
    description: 'What an invitation link offers, by its token (or the whole link); null when it is unknown or no longer pending.',
    args: { token: t.arg.string({ required: true }) },
    resolve: (_r, { token }, ctx) => invitations.previewInvitation(ctx, token),
  }),
);

const InviteMemberInput = builder.inputType('InviteMemberInput', {
  fields: (t) => ({
    organizationId: t.id({ required: true }),
    email: t.string({ required: true, description: 'Whoever uses this email; an account is not needed yet.' }),
    role: t.field({ type: RoleEnum, required: true }),
  }),
});

const InviteMemberPayload = builder.objectRef<{ invitation: { id: string }; token: string }>('InviteMemberPayload').implement({
  fields: (t) => ({
    invitation: t.prismaField({
      type: 'Invitation',
      resolve: (query, p, _a, ctx) => ctx.prisma.invitation.findUniqueOrThrow({ ...query, where: { id: p.invitation.id } }),
    }),
    token: t.exposeString('token', {
      description: 'The secret of the invitation link (`<app>/invitations/<token>`), shown only now. It works once, for the invited email, for 7 days.',
    }),
  }),
});

builder.mutationField('inviteMember', (t) =>
  t.field({
    type: InviteMemberPayload,
    errors: { types: [ConflictError] },
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: InviteMemberInput, required: true }) },
    resolve: async (_r, { input: { organizationId, ...rest } }, ctx) =>
      invitations.inviteMember(ctx, fromGlobalId(String(organizationId), 'Organization'), rest),
  }),
);

const RevokeInvitationInput = builder.inputType('RevokeInvitationInput', {
  fields: (t) => ({ invitationId: t.id({ required: true }) }),
});

builder.mutationField('revokeInvitation', (t) =>
  t.field({
    type: builder.objectRef<{ id: string }>('RevokeInvitationPayload').implement({
      fields: (f) => ({
        invitation: f.prismaField({
          type: 'Invitation',
          resolve: (query, p, _a, ctx) => ctx.prisma.invitation.findUniqueOrThrow({ ...query, where: { id: p.id } }),
        }),
      }),
    }),
    errors: { types: [ConflictError] },
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: RevokeInvitationInput, required: true }) },
    resolve: async (_r, { input }, ctx) => invitations.revokeInvitation(ctx, fromGlobalId(String(input.invitationId), 'Invitation')),
  }),
);

const AcceptInvitationInput = builder.inputType('AcceptInvitationInput', {
  fields: (t) => ({ token: t.string({ required: true, description: 'The token of the invitation link, or the whole link.' }) }),
});

builder.mutationField('acceptInvitation', (t) =>
  t.field({
    type: builder.objectRef<{ id: string }>('AcceptInvitationPayload').implement({
      fields: (f) => ({
        membership: f.prismaField({
          type: 'Membership',
          resolve: (query, p, _a, ctx) => ctx.prisma.membership.findUniqueOrThrow({ ...query, where: { id: p.id } }),
        }),
      }),
    }),
    errors: { types: [ConflictError] },
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: AcceptInvitationInput, required: true }) },
    resolve: async (_r, { input }, ctx) => invitations.acceptInvitation(ctx, input.token),
  }),
);
