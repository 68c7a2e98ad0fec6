import { builder, MAX_PAGE_SIZE } from '../../schema/builder.js';
import { resumeRelatedCursor } from '../../schema/resume-cursor.js';
import { fromGlobalId } from '../../lib/ids.js';
import '../orgs/orgs.type.js';
import { can } from '../permissions.js';
import * as projects from './projects.service.js';

export const ProjectRef = builder.prismaNode('Project', {
  id: { field: 'id' },
  authScopes: (p) => ({ orgRole: { organizationId: p.organizationId, role: 'VIEWER' } }),
  fields: (t) => ({
    slug: t.exposeString('slug'),
    name: t.exposeString('name'),
    description: t.exposeString('description'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    archivedAt: t.expose('archivedAt', { type: 'DateTime', nullable: true }),
    organization: t.relation('organization'),
    viewerCanUpdate: t.boolean({ resolve: async (p, _a, ctx) => can(await ctx.roleIn(p.organizationId), 'project.update') }),
    viewerCanArchive: t.boolean({ resolve: async (p, _a, ctx) => can(await ctx.roleIn(p.organizationId), 'project.archive') }),
    viewerCanCreateAgent: t.boolean({
      description: 'The project is not archived (restore it first), and the viewer may create agents.',
      resolve: async (p, _a, ctx) => !p.archivedAt && can(await ctx.roleIn(p.organizationId), 'agent.create'),
    }),
  }),
});

builder.prismaObjectField('Organization', 'projects', (t) =>
  t.relatedConnection('projects', {
    cursor: 'id',
    maxSize: MAX_PAGE_SIZE,
    defaultSize: 50,
    totalCount: true,
    args: { includeArchived: t.arg.boolean({ defaultValue: false }) },
    description: 'Projects, newest first.',
    // A project archived since its page was read would end the list there (see resumeRelatedCursor).
    query: async ({ includeArchived, ...page }, ctx) => {
      const where = includeArchived ? undefined : { archivedAt: null };
      const orderBy = [{ createdAt: 'desc' as const }, { id: 'desc' as const }];
      return { where: where ?? {}, orderBy, ...(await resumeRelatedCursor(ctx.prisma.project, { page, where, orderBy, scope: ['organizationId'] })) };
    },
  }),
);

builder.queryField('project', (t) =>
  t.prismaField({
    type: 'Project',
    nullable: true,
    description: 'A project in one of your organizations; null when missing or not yours.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _r, { id }, ctx) => {
      if (!ctx.viewer) return null;
      try {
        const projectId = fromGlobalId(String(id), 'Project');
        return await ctx.prisma.project.findFirst({
          ...query,
          where: { id: projectId, organization: { memberships: { some: { userId: ctx.viewer.userId } } } },
        });
      } catch {
        return null;
      }
    },
  }),
);

const projectPayload = (name: string) =>
  builder.objectRef<{ id: string }>(name).implement({
    fields: (t) => ({
      project: t.prismaField({
        type: 'Project',
        resolve: (query, p, _a, ctx) => ctx.prisma.project.findUniqueOrThrow({ ...query, where: { id: p.id } }),
      }),
    }),
  });

const CreateProjectInput = builder.inputType('CreateProjectInput', {
  fields: (t) => ({
    organizationId: t.id({ required: true }),
    name: t.string({ required: true }),
    slug: t.string(),
    description: t.string(),
  }),
});

builder.mutationField('createProject', (t) =>
  t.field({
    type: projectPayload('CreateProjectPayload'),
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: CreateProjectInput, required: true }) },
    resolve: (_r, { input: { organizationId, ...rest } }, ctx) =>
      projects.createProject(ctx, fromGlobalId(String(organizationId), 'Organization'), rest),
  }),
);

const UpdateProjectInput = builder.inputType('UpdateProjectInput', {
  fields: (t) => ({ id: t.id({ required: true }), name: t.string(), description: t.string() }),
});

builder.mutationField('updateProject', (t) =>
  t.field({
    type: projectPayload('UpdateProjectPayload'),
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: UpdateProjectInput, required: true }) },
    resolve: (_r, { input: { id, ...rest } }, ctx) => projects.updateProject(ctx, fromGlobalId(String(id), 'Project'), rest),
  }),
);

const ArchiveProjectInput = builder.inputType('ArchiveProjectInput', { fields: (t) => ({ id: t.id({ required: true }) }) });

builder.mutationField('archiveProject', (t) =>
  t.field({
    type: projectPayload('ArchiveProjectPayload'),
    description:
      'Retires a project (ADMIN and above; audited): it leaves lists and pickers, and becomes read-only: its agents cannot be run, edited or added to until restoreProject. Runs already queued still run.',
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: ArchiveProjectInput, required: true }) },
    resolve: (_r, { input }, ctx) => projects.archiveProject(ctx, fromGlobalId(String(input.id), 'Project')),
  }),
);

builder.mutationField('restoreProject', (t) =>
  t.field({
    type: projectPayload('RestoreProjectPayload'),
    description: 'Brings an archived project back into lists and pickers, its agents runnable and editable again (ADMIN and above, as archiving; audited).',
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: ArchiveProjectInput, required: true }) },
    resolve: (_r, { input }, ctx) => projects.restoreProject(ctx, fromGlobalId(String(input.id), 'Project')),
  }),
);
