import { builder, MAX_PAGE_SIZE } from '../../schema/builder.js';
import { resumeViewerCursor } from '../../schema/resume-cursor.js';
import { ConflictError } from '../../lib/errors.js';
import { fromGlobalId } from '../../lib/ids.js';
import { ViewerRef } from '../auth/auth.type.js';
import { can, canAssignRole } from '../permissions.js';
import * as orgs from './orgs.service.js';

export const RoleEnum = builder.enumType('Role', {
  description: 'Roles from most to least powerful: OWNER > ADMIN > MEMBER > VIEWER.',
  values: ['OWNER', 'ADMIN', 'MEMBER', 'VIEWER'] as const,
});

export const OrganizationRef = builder.prismaNode('Organization', {
  id: { field: 'id' },
  // Defense in depth: an organization object only ever resolves for its members.
  authScopes: (org) => ({ orgRole: { organizationId: org.id, role: 'VIEWER' } }),
  fields: (t) => ({
    slug: t.exposeString('slug'),
    name: t.exposeString('name'),
    timeZone: t.exposeString('timeZone', { description: 'IANA time zone; budget days and months follow it.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    viewerRole: t.field({ type: RoleEnum, resolve: async (org, _a, ctx) => (await ctx.roleIn(org.id))! }),
    viewerCanUpdate: t.boolean({ resolve: async (org, _a, ctx) => can(await ctx.roleIn(org.id), 'organization.update') }),
    viewerCanDelete: t.boolean({ resolve: async (org, _a, ctx) => can(await ctx.roleIn(org.id), 'organization.delete') }),
    viewerCanManageMembers: t.boolean({ resolve: async (org, _a, ctx) => can(await ctx.roleIn(org.id), 'member.add') }),
    viewerCanCreateProject: t.boolean({ resolve: async (org, _a, ctx) => can(await ctx.roleIn(org.id), 'project.create') }),
    viewerCanReadAuditLog: t.boolean({ resolve: async (org, _a, ctx) => can(await ctx.roleIn(org.id), 'audit.read') }),
    members: t.relatedConnection('memberships', {
      description: 'Members, oldest first.',
      cursor: 'id',
      maxSize: MAX_PAGE_SIZE,
      defaultSize: 50,
      query: () => ({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] }),
      totalCount: true,
    }),
  }),
});

export const MembershipRef = builder.prismaNode('Membership', {
  id: { field: 'id' },
  authScopes: (m) => ({ orgRole: { organizationId: m.organizationId, role: 'VIEWER' } }),
  fields: (t) => ({
    role: t.expose('role', { type: RoleEnum }),
    user: t.relation('user'),
    organization: t.relation('organization'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    viewerCanChangeRole: t.boolean({
      resolve: async (m, _a, ctx) => {
        const role = await ctx.roleIn(m.organizationId);
        return can(role, 'member.updateRole') && canAssignRole(role, m.role, m.role) && !(await orgs.isLastOwner(ctx, m));
      },
    }),
    viewerCanRemove: t.boolean({
      description: 'Anyone may leave (remove their own membership), except the last OWNER.',
      resolve: async (m, _a, ctx) => {
        if (await orgs.isLastOwner(ctx, m)) return false;
        if (m.userId === ctx.viewer?.userId) return true;
        const role = await ctx.roleIn(m.organizationId);
        return can(role, 'member.remove') && canAssignRole(role, m.role, m.role);
      },
    }),
  }),
});

builder.objectField(ViewerRef, 'organizations', (t) =>
  t.prismaConnection({
    type: 'Organization',
    cursor: 'id',
    maxSize: MAX_PAGE_SIZE,
    defaultSize: 50,
    description: 'Organizations the viewer belongs to, by name.',
    resolve: async (query, v, page, ctx) => {
      const where = { memberships: { some: { userId: v.userId } } };
      const orderBy = [{ name: 'asc' as const }, { id: 'asc' as const }];
      // An organization left since its page was read (see resumeViewerCursor): its cursor moves only when the viewer
      // was a member of it, recorded as they left or were removed. Any other organization's is unknown here.
      const resume = await resumeViewerCursor(ctx.prisma.organization, {
        page,
        where,
        orderBy,
        wasListed: async (id) =>
          !!(await ctx.prisma.auditLog.findFirst({
            where: { organizationId: id, action: { in: ['member.left', 'member.removed'] }, metadata: { path: ['userId'], equals: v.userId } },
            select: { id: true },
          })),
      });
      if (resume === 'none') return [];
      return ctx.prisma.organization.findMany({ ...query, ...resume, where, orderBy });
    },
  }),
);

builder.queryField('organization', (t) =>
  t.prismaField({
    type: 'Organization',
    nullable: true,
    description: 'An organization you belong to, by slug; null when it does not exist or you are not a member.',
    args: { slug: t.arg.string({ required: true }) },
    resolve: (query, _root, { slug }, ctx) =>
      ctx.viewer
        ? ctx.prisma.organization.findFirst({
            ...query,
            where: { slug: slug.toLowerCase(), memberships: { some: { userId: ctx.viewer.userId } } },
          })
        : null,
  }),
);

const orgPayload = (name: string) =>
  builder.objectRef<{ id: string }>(name).implement({
    fields: (t) => ({
      organization: t.prismaField({
        type: 'Organization',
        resolve: (query, p, _a, ctx) => ctx.prisma.organization.findUniqueOrThrow({ ...query, where: { id: p.id } }),
      }),
    }),
  });

const membershipPayload = (name: string) =>
  builder.objectRef<{ id: string }>(name).implement({
    fields: (t) => ({
      membership: t.prismaField({
        type: 'Membership',
        resolve: (query, p, _a, ctx) => ctx.prisma.membership.findUniqueOrThrow({ ...query, where: { id: p.id } }),
      }),
    }),
  });

const CreateOrganizationInput = builder.inputType('CreateOrganizationInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    slug: t.string({ description: 'URL name; generated from the name when omitted.' }),
    timeZone: t.string({ description: 'IANA time zone, default UTC.' }),
  }),
});

builder.mutationField('createOrganization', (t) =>
  t.field({
    type: orgPayload('CreateOrganizationPayload'),
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: CreateOrganizationInput, required: true }) },
    resolve: async (_r, { input }, ctx) => orgs.createOrganization(ctx, input),
  }),
);

const UpdateOrganizationInput = builder.inputType('UpdateOrganizationInput', {
  fields: (t) => ({ id: t.id({ required: true }), name: t.string(), timeZone: t.string() }),
});

builder.mutationField('updateOrganization', (t) =>
  t.field({
    type: orgPayload('UpdateOrganizationPayload'),
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: UpdateOrganizationInput, required: true }) },
    resolve: async (_r, { input: { id, ...rest } }, ctx) =>
      orgs.updateOrganization(ctx, fromGlobalId(String(id), 'Organization'), rest),
  }),
);

const DeleteOrganizationInput = builder.inputType('DeleteOrganizationInput', {
  fields: (t) => ({
    id: t.id({ required: true }),
    confirmSlug: t.string({ required: true, description: "The organization's slug, typed again to confirm." }),
  }),
});

const DeleteOrganizationPayload = builder.objectRef<{ deletedId: string }>('DeleteOrganizationPayload').implement({
  fields: (t) => ({ deletedId: t.exposeID('deletedId') }),
});

builder.mutationField('deleteOrganization', (t) =>
  t.field({
    type: DeleteOrganizationPayload,
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: DeleteOrganizationInput, required: true }) },
    resolve: async (_r, { input }, ctx) => {
      await orgs.deleteOrganization(ctx, fromGlobalId(String(input.id), 'Organization'), input.confirmSlug);
      return { deletedId: String(input.id) };
    },
  }),
);

const UpdateMemberRoleInput = builder.inputType('UpdateMemberRoleInput', {
  fields: (t) => ({ membershipId: t.id({ required: true }), role: t.field({ type: RoleEnum, required: true }) }),
});

builder.mutationField('updateMemberRole', (t) =>
  t.field({
    type: membershipPayload('UpdateMemberRolePayload'),
    errors: { types: [ConflictError] },
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: UpdateMemberRoleInput, required: true }) },
    resolve: async (_r, { input }, ctx) =>
      orgs.updateMemberRole(ctx, fromGlobalId(String(input.membershipId), 'Membership'), input.role),
  }),
);

const RemoveMemberInput = builder.inputType('RemoveMemberInput', {
  fields: (t) => ({ membershipId: t.id({ required: true }) }),
});

const RemoveMemberPayload = builder.objectRef<{ removedId: string }>('RemoveMemberPayload').implement({
  fields: (t) => ({ removedId: t.exposeID('removedId') }),
});

builder.mutationField('removeMember', (t) =>
  t.field({
    type: RemoveMemberPayload,
    errors: { types: [ConflictError] },
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: RemoveMemberInput, required: true }) },
    resolve: async (_r, { input }, ctx) => {
      await orgs.removeMember(ctx, fromGlobalId(String(input.membershipId), 'Membership'));
      return { removedId: String(input.membershipId) };
    },
  }),
);
