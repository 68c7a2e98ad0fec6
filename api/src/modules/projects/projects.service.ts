import { z } from 'zod';
import type { Context } from '../../context.js';
import { NotFoundError } from '../../lib/errors.js';
import { nameText, parseInput } from '../../lib/validate.js';
import { audit } from '../audit/audit.service.js';
import { authorize, requireViewer } from '../authorize.js';
import { slug, slugify, withUniqueSlug } from '../orgs/orgs.service.js';

const name = nameText({ blank: 'Enter a name', max: 100, tooLong: 'Keep the name to 100 characters' });
const description = z.string().trim().max(2000, 'Keep the description to 2,000 characters');
const CreateProject = z.object({ name, slug: slug.nullish(), description: description.nullish() });
const UpdateProject = z.object({ name: name.nullish(), description: description.nullish() });

/** A project the viewer can see (member of its organization), or NotFound. */
/** What an archived project refuses, in words: it is read-only until restored. */
export const ARCHIVED_PROJECT = {
  run: 'This agent’s project is archived: restore the project to run its agents',
  addAgent: 'This project is archived: restore it to add agents',
  editAgent: 'This agent’s project is archived: restore the project to edit its agents',
} as const;

export async function loadProject(ctx: Context, projectId: string) {
  const viewer = requireViewer(ctx);
  const project = await ctx.prisma.project.findFirst({
    where: { id: projectId, organization: { memberships: { some: { userId: viewer.userId } } } },
  });
  if (!project) throw new NotFoundError('Project');
  return project;
}

export async function createProject(ctx: Context, organizationId: string, raw: unknown) {
  await authorize(ctx, organizationId, 'project.create', 'Organization');
  const input = parseInput(CreateProject, raw);
  return withUniqueSlug(input.slug ?? slugify(input.name), Boolean(input.slug), 'A project with this slug exists', (slug) =>
    ctx.prisma.$transaction(async (tx) => {
      const project = await tx.project.create({
        data: { organizationId, name: input.name, slug, description: input.description ?? '' },
      });
      await audit(tx, { organizationId, actorId: ctx.viewer!.userId, action: 'project.created', targetType: 'Project', targetId: project.id, metadata: { name: project.name }, ip: ctx.ip });
      return project;
    }),
  );
}

export async function updateProject(ctx: Context, projectId: string, raw: unknown) {
  const found = await loadProject(ctx, projectId);
  await authorize(ctx, found.organizationId, 'project.update', 'Project');
  const input = parseInput(UpdateProject, raw);
  return ctx.prisma.$transaction(async (tx) => {
    // Compared with the project as stored, under its row lock: of two renames at once, the second's audit row
    // names the first one's name as what it replaced.
    await tx.$executeRaw`SELECT 1 FROM "Project" WHERE id = ${found.id}::uuid FOR UPDATE`;
    const project = await tx.project.findUniqueOrThrow({ where: { id: found.id } });
    const name = input.name && input.name !== project.name ? input.name : undefined;
    const description = input.description != null && input.description !== project.description ? input.description : undefined;
    if (name === undefined && description === undefined) return project;
    const changes = {
      ...(name !== undefined ? { name: { from: project.name, to: name } } : {}),
      // A description may hold anything a team writes down: the log says only that it changed, as for an agent's.
      ...(description !== undefined ? { description: { changed: true } } : {}),
    };
    const updated = await tx.project.update({ where: { id: project.id }, data: { name, description } });
    await audit(tx, { organizationId: project.organizationId, actorId: ctx.viewer!.userId, action: 'project.updated', targetType: 'Project', targetId: project.id, metadata: { name: updated.name, changes }, ip: ctx.ip });
    return updated;
  });
}

/** Brings an archived project back into lists and pickers (same permission as archiving). */
export async function restoreProject(ctx: Context, projectId: string) {
  const project = await loadProject(ctx, projectId);
  await authorize(ctx, project.organizationId, 'project.archive', 'Project');
  if (!project.archivedAt) return project;
  return ctx.prisma.$transaction(async (tx) => {
    // Only while still archived: of two restores at once, the second changes and audits nothing.
    const { count } = await tx.project.updateMany({ where: { id: project.id, archivedAt: { not: null } }, data: { archivedAt: null } });
    const restored = await tx.project.findUniqueOrThrow({ where: { id: project.id } });
    if (count === 0) return restored;
    await audit(tx, { organizationId: project.organizationId, actorId: ctx.viewer!.userId, action: 'project.restored', targetType: 'Project', targetId: project.id, metadata: { name: project.name }, ip: ctx.ip });
    return restored;
  });
}

export async function archiveProject(ctx: Context, projectId: string) {
  const project = await loadProject(ctx, projectId);
  await authorize(ctx, project.organizationId, 'project.archive', 'Project');
  // Archiving an archived project changes nothing and audits nothing (as restoring one that is not).
  if (project.archivedAt) return project;
  return ctx.prisma.$transaction(async (tx) => {
    // Only while not archived yet: of two archives at once, the second changes and audits nothing.
    const { count } = await tx.project.updateMany({ where: { id: project.id, archivedAt: null }, data: { archivedAt: new Date() } });
    const archived = await tx.project.findUniqueOrThrow({ where: { id: project.id } });
    if (count === 0) return archived;
    await audit(tx, { organizationId: project.organizationId, actorId: ctx.viewer!.userId, action: 'project.archived', targetType: 'Project', targetId: project.id, metadata: { name: project.name }, ip: ctx.ip });
    return archived;
  });
}
