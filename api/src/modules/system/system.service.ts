import type { Runtime } from '../../runtime.js';

export interface HealthReport {
  ok: boolean;
  database: 'pglite' | 'postgresql';
  databaseLatencyMs: number;
  version: string;
  uptimeSeconds: number;
  time: Date;
}

/** Checks the database round trip; used by /readyz and the `health` query. */
export async function checkHealth(rt: Runtime): Promise<HealthReport> {
  const started = performance.now();
  let ok = true;
  try {
    await rt.prisma.$queryRaw`SELECT 1`;
  } catch (err) {
    rt.logger.error({ err }, 'database health check failed');
    ok = false;
  }
  return {
    ok,
    database: rt.db.kind,
    databaseLatencyMs: Math.round((performance.now() - started) * 100) / 100,
    version: rt.version,
    uptimeSeconds: Math.floor((Date.now() - rt.startedAt.getTime()) / 1000),
    time: new Date(),
  };
}
