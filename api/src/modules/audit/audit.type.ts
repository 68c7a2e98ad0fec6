import { builder, MAX_PAGE_SIZE } from '../../schema/builder.js';
import { fromGlobalId } from '../../lib/ids.js';
import { parseInput } from '../../lib/validate.js';
import { AuditFilter, auditLogWhere, auditTarget, publicMetadata } from './audit.export.js';

const AuditTargetRef = builder.objectRef<{ type: string; id: string }>('AuditTarget').implement({
  description: 'What an audited action was done to.',
  fields: (t) => ({
    type: t.exposeString('type', { description: 'Type of the object, e.g. "Membership".' }),
    id: t.exposeID('id', { description: 'Global id of the object; it may have been deleted since.' }),
  }),
});

export const AuditLogRef = builder.prismaNode('AuditLog', {
  id: { field: 'id' },
  description: 'One recorded action in an organization.',
  // Defense in depth: an audit entry only ever resolves for ADMINs of its organization.
  authScopes: (log) => (log.organizationId ? { orgRole: { organizationId: log.organizationId, role: 'ADMIN' } } : false),
  fields: (t) => ({
    action: t.exposeString('action', { description: 'Dotted action name, e.g. "member.role_changed" or "access.denied".' }),
    actor: t.relation('actor', { nullable: true, description: 'Who acted; null for system actions and deleted accounts.' }),
    target: t.field({ type: AuditTargetRef, nullable: true, resolve: (log) => auditTarget(log) }),
    metadata: t.field({ type: 'JSON', description: 'Details of the action; user references are global ids.', resolve: (log) => publicMetadata(log.metadata) }),
    ip: t.exposeString('ip', { nullable: true, description: 'Client IP address of the request.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

const AuditLogFilter = builder.inputType('AuditLogFilter', {
  fields: (t) => ({
    actions: t.stringList({ description: 'Only these actions (exact names, at most 50).' }),
    actorId: t.id({ description: 'Only actions by this user.' }),
    from: t.field({ type: 'DateTime', description: 'Only actions at or after this instant.' }),
    to: t.field({ type: 'DateTime', description: 'Only actions before this instant.' }),
  }),
});

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
      const parsed = parseInput(AuditFilter, {
        ...filter,
        actorId: filter?.actorId ? fromGlobalId(String(filter.actorId), 'User') : null,
      });
      return ctx.prisma.auditLog.findMany({
        ...query,
        where: { organizationId: org.id, ...auditLogWhere(parsed) },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      });
    },
  }),
);
