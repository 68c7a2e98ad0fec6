import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
import type { Prisma } from '../../_generated/prisma/client.js';
import type { Context } from '../../context.js';
import type { PrismaClient } from '../../lib/db.js';
import { NotFoundError, ValidationError } from '../../lib/errors.js';
import { toGlobalId } from '../../lib/ids.js';
import { parseInput } from '../../lib/validate.js';
import { authorize, requireViewer } from '../authorize.js';
import { labelTargets } from './audit.labels.js';

/** Rows fetched per query while exporting: memory stays flat however long the log is. */
export const EXPORT_PAGE_SIZE = 500;

/** A validated audit-log filter: what both the GraphQL connection and the export accept. */
export const AuditFilter = z
  .object({
    actions: z.array(z.string().trim().min(1, 'Name an action').max(100, 'Use at most 100 characters')).max(50, 'Give at most 50 actions').nullish(),
    actorId: z.string().uuid('actor must be a person’s id from the audit log').nullish(),
    from: z.date().nullish(),
    to: z.date().nullish(),
  })
  .refine((f) => !f.from || !f.to || f.from < f.to, { path: ['to'], message: 'Must be later than `from`' });

export type AuditFilter = z.output<typeof AuditFilter>;

/** Prisma conditions for a filter; `from` is inclusive and `to` exclusive. */
export function auditLogWhere(filter: AuditFilter): Prisma.AuditLogWhereInput {
  return {
    ...(filter.actions?.length ? { action: { in: filter.actions } } : {}),
    ...(filter.actorId ? { actorId: filter.actorId } : {}),
    ...(filter.from || filter.to
      ? { createdAt: { ...(filter.from ? { gte: filter.from } : {}), ...(filter.to ? { lt: filter.to } : {}) } }
      : {}),
  };
}

type AuditRow = Prisma.AuditLogGetPayload<{ include: { actor: { select: { email: true; name: true } } } }>;

/** What an action was done to, as a public global id (database ids never leave the API). */
export const auditTarget = (log: { targetType: string | null; targetId: string | null }) =>
  log.targetType && log.targetId ? { type: log.targetType, id: toGlobalId(log.targetType, log.targetId) } : null;

/** Metadata keys that hold a database id, and the type of their public global id. */
const METADATA_IDS: Record<string, string> = { userId: 'User', runId: 'Run', agentId: 'Agent' };

/** Metadata as stored, with references to users, runs and agents turned into public global ids. */
export function publicMetadata(metadata: Prisma.JsonValue): Prisma.JsonValue {
  if (!metadata || typeof metadata !== 'object' || Array.isArray(metadata)) return metadata;
  return Object.fromEntries(
    Object.entries(metadata).map(([key, value]) => {
      const type = Object.hasOwn(METADATA_IDS, key) ? METADATA_IDS[key] : undefined;
      return [key, type && typeof value === 'string' ? toGlobalId(type, value) : value];
    }),
  );
}

/** The newest-first log matching `where`, one page per query, keyed on (createdAt, id) so pages never overlap. */
export async function* auditLogPages(
  prisma: { auditLog: Pick<PrismaClient['auditLog'], 'findMany'> },
  where: Prisma.AuditLogWhereInput,
  pageSize = EXPORT_PAGE_SIZE,
): AsyncGenerator<AuditRow[]> {
  let last: AuditRow | undefined;
  for (;;) {
    const page: AuditRow[] = await prisma.auditLog.findMany({
      where: last
        ? { AND: [where, { OR: [{ createdAt: { lt: last.createdAt } }, { createdAt: last.createdAt, id: { lt: last.id } }] }] }
        : where,
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: pageSize,
      include: { actor: { select: { email: true, name: true } } },
    });
    if (page.length > 0) yield page;
    if (page.length < pageSize) return;
    last = page[page.length - 1];
  }
}

const CSV_COLUMNS = ['id', 'createdAt', 'action', 'actorId', 'actorEmail', 'targetType', 'targetId', 'targetLabel', 'ip', 'metadata'];

/**
 * One RFC 4180 field. Text that a spreadsheet would run as a formula (leading = + - @ tab or CR)
 * is prefixed with an apostrophe, as OWASP advises for CSV exports.
 */
export function csvField(value: string | null | undefined): string {
  if (value == null) return '';
  const text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

const csvLine = (fields: (string | null | undefined)[]) => fields.map(csvField).join(',') + '\r\n';

/** `label`: what a person calls the target (AuditTarget.label in the API), null when unknown. */
function exportRecord(row: AuditRow, label: string | null) {
  const target = auditTarget(row);
  return {
    id: toGlobalId('AuditLog', row.id),
    createdAt: row.createdAt.toISOString(),
    action: row.action,
    actor: row.actorId ? { id: toGlobalId('User', row.actorId), email: row.actor?.email ?? null, name: row.actor?.name ?? null } : null,
    target: target ? { ...target, label } : null,
    ip: row.ip,
    metadata: publicMetadata(row.metadata),
  };
}

export const EXPORT_FORMATS = {
  csv: {
    contentType: 'text/csv; charset=utf-8',
    header: csvLine(CSV_COLUMNS),
    line(row: AuditRow, label: string | null) {
      const r = exportRecord(row, label);
      return csvLine([r.id, r.createdAt, r.action, r.actor?.id, r.actor?.email, r.target?.type, r.target?.id, r.target?.label, r.ip, JSON.stringify(r.metadata)]);
    },
  },
  ndjson: {
    contentType: 'application/x-ndjson; charset=utf-8',
    header: '',
    line: (row: AuditRow, label: string | null) => JSON.stringify(exportRecord(row, label)) + '\n',
  },
} as const;

export type ExportFormat = keyof typeof EXPORT_FORMATS;

/** The export body, produced page by page; `labels` names each page's targets (one lookup per page). */
export async function* exportChunks(
  pages: AsyncIterable<AuditRow[]>,
  format: ExportFormat,
  labels: (rows: AuditRow[]) => Promise<(string | null)[]> = async (rows) => rows.map(() => null),
): AsyncGenerator<string> {
  const { header, line } = EXPORT_FORMATS[format];
  if (header) yield header;
  for await (const page of pages) {
    const named = await labels(page);
    yield page.map((row, i) => line(row, named[i] ?? null)).join('');
  }
}

const single = (value: unknown) => (Array.isArray(value) ? value[0] : value);

function dateParam(name: string, value: unknown): Date | undefined {
  const text = single(value);
  if (text === undefined || text === '') return undefined;
  const date = typeof text === 'string' && /^\d{4}-\d{2}-\d{2}(T.+)?$/.test(text) ? new Date(text) : new Date(NaN);
  if (Number.isNaN(date.getTime())) throw ValidationError.field(name, 'Use an ISO 8601 date or date-time, e.g. 2026-11-24 or 2026-11-24T09:30:00Z');
  return date;
}

/** Query string `?action=a&action=b,c&from=…&to=…` to a filter. */
export function filterFromQuery(query: Request['query']): AuditFilter {
  const actions = [query.action]
    .flat()
    .filter((a): a is string => typeof a === 'string')
    .flatMap((a) => a.split(','))
    .filter((a) => a.trim() !== '');
  return parseInput(AuditFilter, { actions, from: dateParam('from', query.from), to: dateParam('to', query.to) });
}

/**
 * `GET /api/organizations/:slug/audit-logs.:format` (csv or ndjson), for ADMIN and above. It
 * authenticates like the GraphQL endpoint (`contextFor`) and streams the log newest first. Errors
 * are thrown for the server's error handler: 401, 403 (audited), 404 for non-members, 400, 429.
 */
export function auditLogExport(contextFor: (req: Request, res: Response) => Promise<Context>): RequestHandler {
  return async (req, res) => {
    const format = req.params.format as string;
    if (!Object.hasOwn(EXPORT_FORMATS, format)) throw new NotFoundError('Export format');
    const ctx = await contextFor(req, res);
    requireViewer(ctx);
    const org = await ctx.prisma.organization.findUnique({ where: { slug: String(req.params.slug).toLowerCase() } });
    if (!org) throw new NotFoundError('Organization');
    await authorize(ctx, org.id, 'audit.read', 'Organization');
    const where = { organizationId: org.id, ...auditLogWhere(filterFromQuery(req.query)) };

    const { contentType } = EXPORT_FORMATS[format as ExportFormat];
    const day = new Date().toISOString().slice(0, 10);
    res.status(200);
    res.setHeader('content-type', contentType);
    res.setHeader('content-disposition', `attachment; filename="audit-log-${org.slug}-${day}.${format}"`);
    res.setHeader('cache-control', 'no-store');
    const pages = auditLogPages(ctx.prisma, where);
    await pipeline(Readable.from(exportChunks(pages, format as ExportFormat, (rows) => labelTargets(ctx.prisma, rows))), res);
  };
}
