import type { Prisma } from '../../_generated/prisma/client.js';
import type { PrismaClient, SqlQuery } from '../../lib/db.js';
import { utcWall } from '../../lib/sql.js';
import type { AuditAction } from './actions.js';

type Db = Pick<PrismaClient, 'auditLog'> | Prisma.TransactionClient;

export interface AuditEntry {
  organizationId?: string | null;
  actorId?: string | null;
  /** Dotted action name, e.g. "member.role_changed": one of AUDIT_ACTIONS (add a new one there, and to the web's audit page). */
  action: AuditAction;
  targetType?: string;
  targetId?: string;
  metadata?: Record<string, unknown>;
  ip?: string | null;
}

/** Appends one audit row. Pass the transaction client so the row commits with the change it records. */
export async function audit(db: Db, entry: AuditEntry): Promise<void> {
  await db.auditLog.create({
    data: {
      organizationId: entry.organizationId ?? null,
      actorId: entry.actorId ?? null,
      action: entry.action,
      targetType: entry.targetType ?? null,
      targetId: entry.targetId ?? null,
      metadata: (entry.metadata ?? {}) as Prisma.InputJsonValue,
      ip: entry.ip ?? null,
    },
  });
}

/** `audit` on a raw-statement transaction (`db.transaction`), for changes made there: the row commits with them. */
export async function auditWithin(query: SqlQuery, entry: AuditEntry): Promise<void> {
  await query(
    `INSERT INTO "AuditLog" (id, "organizationId", "actorId", action, "targetType", "targetId", metadata, ip, "createdAt")
     VALUES (gen_random_uuid(), $1::uuid, $2::uuid, $3, $4, $5, $6::jsonb, $7, $8::timestamp(3))`,
    [entry.organizationId ?? null, entry.actorId ?? null, entry.action, entry.targetType ?? null, entry.targetId ?? null, JSON.stringify(entry.metadata ?? {}), entry.ip ?? null, utcWall(new Date())],
  );
}
