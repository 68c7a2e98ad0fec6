import type { AuditLog } from '../../_generated/prisma/client.js';
import type { Context } from '../../context.js';
import { builder, MAX_PAGE_SIZE } from '../../schema/builder.js';
import { ValidationError } from '../../lib/errors.js';
import { filterId, parseInput } from '../../lib/validate.js';
import { ViewerRef } from '../auth/auth.type.js';
import { AuditFilter, auditLogWhere, auditTarget, publicMetadata } from './audit.export.js';
import { TargetLabels } from './audit.labels.js';

type Target = { type: string; id: string; log: AuditLog };

// One labeller per request, so the targets of a page of entries are looked up together.
const labellers = new WeakMap<object, TargetLabels>();
function labels(ctx: Context) {
  let labeller = labellers.get(ctx);
  if (!labeller) labellers.set(ctx, (labeller = new TargetLabels(ctx.prisma)));
  return labeller;
}

const AuditTargetRef = builder.objectRef<Target>('AuditTarget').implement({
  description: 'What an audited action was done to.',
  fields: (t) => ({
    type: t.exposeString('type', { description: 'Type of the object, e.g. "Membership".' }),
    id: t.exposeID('id', { description: 'Global id of the object; it may have been deleted since.' }),
    label: t.string({
      nullable: true,
      description:
        "What a person calls the object: a member's name and email, an invitee's email, a project's or agent's name, a budget's " +
        "period and scope (\"Daily budget, Organization-wide\"), a run's agent. Current names where the object still exists, else " +
        'as recorded with the action; null when unknown.',
      resolve: (target, _args, ctx) => labels(ctx).label(target.log),
    }),
  }),
});

export const AuditLogRef = builder.prismaNode('AuditLog', {
  id: { field: 'id' },
  description: "One recorded action: in an organization, or on an account (sign-ins, API tokens) outside any.",
  // Defense in depth: an entry of an organization only ever resolves for its ADMINs; one of an account
  // only for that account.
  authScopes: (log) =>
    log.organizationId ? { orgRole: { organizationId: log.organizationId, role: 'ADMIN' } } : log.actorId ? { self: log.actorId } : false,
  fields: (t) => ({
    action: t.exposeString('action', { description: 'Dotted action name, e.g. "member.role_changed" or "access.denied".' }),
    actor: t.relation('actor', { nullable: true, description: 'Who acted; null for system actions and deleted accounts.' }),
    target: t.field({
      type: AuditTargetRef,
      nullable: true,
      resolve: (log) => {
        const target = auditTarget(log);
        return target && { ...target, log };
      },
    }),
    metadata: t.field({ type: 'JSON', description: 'Details of the action; user references are global ids.', resolve: (log) => publicMetadata(log.metadata) }),
    ip: t.exposeString('ip', { nullable: true, description: 'Client IP address of the request.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

const AuditLogFilter = builder.inputType('AuditLogFilter', {
  fields: (t) => ({
    actions: t.stringList({ description: 'Only these actions (exact names, at most 50).' }),
    actorId: t.id({ description: 'Only actions by this user (a User.id; a malformed one is a VALIDATION_FAILED on filter.actorId).' }),
    from: t.field({ type: 'DateTime', description: 'Only actions at or after this instant.' }),
    to: t.field({ type: 'DateTime', description: 'Only actions before this instant.' }),
  }),
});

/**
 * The connection's filter, validated; its problems name `filter.<field>`. A malformed actor id is one of them
 * (the log is there, the filter is wrong); a person's id that acted nowhere here just matches nothing.
 */
function auditLogFilter(filter: { actions?: string[] | null; actorId?: string | number | null; from?: Date | null; to?: Date | null } | null | undefined) {
  try {
    return parseInput(AuditFilter, { ...filter, actorId: filter?.actorId != null ? filterId(String(filter.actorId), 'User', ['actorId']) : null });
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    throw new ValidationError(err.issues.map((i) => ({ ...i, path: ['filter', ...i.path] })));
  }
}

builder.prismaObjectField('Organization', 'auditLogs', (t) =>
  t.prismaConnection({
    type: 'AuditLog',
    cursor: 'id',
    maxSize: MAX_PAGE_SIZE,
    defaultSize: 50,
    nullable: true,
    description:
      'What happened in this organization, newest first (ADMIN and above; export it at /api/organizations/<slug>/audit-logs.csv or .ndjson).',
    authScopes: (org) => ({ orgRole: { organizationId: org.id, role: 'ADMIN' } }),
    args: { filter: t.arg({ type: AuditLogFilter }) },
    resolve: (query, org, { filter }, ctx) => {
      const parsed = auditLogFilter(filter);
      return ctx.prisma.auditLog.findMany({
        ...query,
        // Prisma looks a cursor up by id alone and lists what follows its place: scoped, another organization's
        // entry is an unknown cursor (nothing), not a place in this log. (Entries never change, so none of this
        // log's leaves the filter.)
        ...(query.cursor ? { cursor: { ...query.cursor, organizationId: org.id } } : {}),
        where: { organizationId: org.id, ...auditLogWhere(parsed) },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      });
    },
  }),
);

builder.objectField(ViewerRef, 'activity', (t) =>
  t.prismaConnection({
    type: 'AuditLog',
    cursor: 'id',
    maxSize: MAX_PAGE_SIZE,
    defaultSize: 20,
    description:
      "Your account's own record, newest first: sign-ups, sign-ins and failed sign-in attempts on your email, API tokens created and revoked. What you do in an organization is in its audit log.",
    resolve: (query, viewer, _args, ctx) => {
      const where = { organizationId: null, actorId: viewer.userId };
      // As for an organization's log: anybody else's entry is an unknown cursor, not a place in this record. (By
      // actor only: Prisma's cursor lookup compares `organizationId = NULL`, which matches no entry at all.)
      return ctx.prisma.auditLog.findMany({
        ...query,
        ...(query.cursor ? { cursor: { ...query.cursor, actorId: viewer.userId } } : {}),
        where,
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      });
    },
  }),
);
