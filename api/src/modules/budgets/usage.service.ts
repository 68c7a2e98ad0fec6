import { Prisma } from '../../_generated/prisma/client.js';
import type { PrismaClient } from '../../lib/db.js';
import { ValidationError } from '../../lib/errors.js';

export type UsageGroupBy = 'DAY' | 'MODEL' | 'PROVIDER' | 'PROJECT' | 'AGENT';

export interface UsageRow {
  key: string;
  label: string;
  costMicros: bigint;
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
  attempts: number;
  runs: number;
}

export interface UsageReport {
  from: Date;
  to: Date;
  groupBy: UsageGroupBy;
  rows: UsageRow[];
  total: UsageRow;
}

const MAX_RANGE_MS = 400 * 24 * 3600_000;

/** Aggregates the usage ledger of an organization over [from, to), grouped for charts and exports. */
export async function usageReport(
  prisma: PrismaClient,
  organization: { id: string; timeZone: string },
  from: Date,
  to: Date,
  groupBy: UsageGroupBy,
): Promise<UsageReport> {
  if (!(from < to)) throw new ValidationError([{ path: ['to'], message: '`to` must be after `from`' }]);
  if (to.getTime() - from.getTime() > MAX_RANGE_MS) throw new ValidationError([{ path: ['from'], message: 'Ask for at most 400 days at once' }]);
  const key = {
    // createdAt is a UTC timestamp without zone: mark it UTC first, then read it on the org's wall clock.
    DAY: Prisma.sql`to_char((u."createdAt" AT TIME ZONE 'UTC') AT TIME ZONE ${organization.timeZone}, 'YYYY-MM-DD')`,
    MODEL: Prisma.sql`u.provider::text || '/' || u.model`,
    PROVIDER: Prisma.sql`u.provider::text`,
    PROJECT: Prisma.sql`coalesce(u."projectId"::text, '')`,
    AGENT: Prisma.sql`coalesce(u."agentId"::text, '')`,
  }[groupBy];
  // Always an aggregate, so it never needs to match the GROUP BY expression.
  const label = {
    DAY: Prisma.sql`max(${key})`,
    MODEL: Prisma.sql`max(${key})`,
    PROVIDER: Prisma.sql`max(${key})`,
    PROJECT: Prisma.sql`coalesce(max(p.name), '(deleted project)')`,
    AGENT: Prisma.sql`coalesce(max(a.name), '(deleted agent)')`,
  }[groupBy];
  const rows = await prisma.$queryRaw<
    { key: string; label: string; cost: bigint; input: bigint; cached: bigint; output: bigint; attempts: bigint; runs: bigint }[]
  >`
    SELECT ${key} AS key, ${label} AS label,
           coalesce(sum(u."costMicros"), 0)::bigint AS cost,
           coalesce(sum(u."inputTokens"), 0)::bigint AS input,
           coalesce(sum(u."cachedInputTokens"), 0)::bigint AS cached,
           coalesce(sum(u."outputTokens"), 0)::bigint AS output,
           count(*)::bigint AS attempts,
           count(DISTINCT u."runId")::bigint AS runs
    FROM "UsageRecord" u
    LEFT JOIN "Project" p ON p.id = u."projectId"
    LEFT JOIN "Agent" a ON a.id = u."agentId"
    WHERE u."organizationId" = ${organization.id}::uuid AND u."createdAt" >= ${from} AND u."createdAt" < ${to}
    GROUP BY 1
    ORDER BY 1`;
  const out: UsageRow[] = rows.map((r) => ({
    key: r.key,
    label: r.label,
    costMicros: BigInt(r.cost),
    inputTokens: Number(r.input),
    cachedInputTokens: Number(r.cached),
    outputTokens: Number(r.output),
    attempts: Number(r.attempts),
    runs: Number(r.runs),
  }));
  // Runs can span groups (a fallback changes the model), so the distinct total needs its own count.
  const [counted] = await prisma.$queryRaw<{ runs: bigint }[]>`
    SELECT count(DISTINCT "runId")::bigint AS runs FROM "UsageRecord"
    WHERE "organizationId" = ${organization.id}::uuid AND "createdAt" >= ${from} AND "createdAt" < ${to}`;
  const total = out.reduce<UsageRow>(
    (t, r) => ({
      ...t,
      costMicros: t.costMicros + r.costMicros,
      inputTokens: t.inputTokens + r.inputTokens,
      cachedInputTokens: t.cachedInputTokens + r.cachedInputTokens,
      outputTokens: t.outputTokens + r.outputTokens,
      attempts: t.attempts + r.attempts,
    }),
    { key: 'total', label: 'Total', costMicros: 0n, inputTokens: 0, cachedInputTokens: 0, outputTokens: 0, attempts: 0, runs: Number(counted?.runs ?? 0n) },
  );
  return { from, to, groupBy, rows: out, total };
}

const csvCell = (v: string | number | bigint) => {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** CSV of a report; cost in both micro-dollars (exact) and dollars (for spreadsheets). */
export function usageCsv(report: UsageReport): string {
  const header = ['key', 'label', 'cost_micros', 'cost_usd', 'input_tokens', 'cached_input_tokens', 'output_tokens', 'attempts', 'runs'];
  const usd = (m: bigint) => `${m / 1_000_000n}.${(m % 1_000_000n).toString().padStart(6, '0')}`;
  const line = (r: UsageRow) =>
    [r.key, r.label, r.costMicros, usd(r.costMicros), r.inputTokens, r.cachedInputTokens, r.outputTokens, r.attempts, r.runs].map(csvCell).join(',');
  return [header.join(','), ...report.rows.map(line), line(report.total)].join('\n') + '\n';
}
