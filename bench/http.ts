/**
 * One GraphQL request over HTTP, on PostgreSQL: what the API's HTTP layer (body, context, Apollo, the request
 * budget) costs an integrator's call, one request at a time (no contention), as latency at the client and CPU
 * in the API process. The query reads the viewer's user: the token cache authenticates it, and its one
 * statement is a primary-key read, so the figures are mostly the layers every `startRun` goes through too.
 */
import { startApiProcess, type ApiProcess } from './lib/api-child.js';
import { resetStatements, statementTotals, topStatements } from './lib/postgres.js';
import { summarizeProfile } from './lib/profile.js';
import type { Benchmark, Table } from './lib/report.js';
import { roundSummary, summarize } from './lib/stats.js';

const QUERY = JSON.stringify({ query: 'query Who { viewer { user { email } } }' });

async function loop(api: ApiProcess, token: string, count: number): Promise<number[]> {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  const ms: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const res = await fetch(api.graphqlUrl, { method: 'POST', headers, body: QUERY });
    const body = (await res.json()) as { data?: { viewer?: { user?: { email?: string } } } };
    ms.push(performance.now() - t0);
    if (res.status !== 200 || !body.data?.viewer?.user?.email) throw new Error(`unexpected answer ${res.status}: ${JSON.stringify(body)}`);
  }
  return ms;
}

export const http: Benchmark = {
  name: 'http',
  description: 'one GraphQL query over HTTP at a time: client latency and API CPU per request',
  async run(ctx) {
    const requests = ctx.quick ? 500 : Number(process.env.BENCH_HTTP_REQUESTS ?? 5_000);
    const warmup = ctx.quick ? 200 : 1_000;
    const pg = await ctx.postgres();
    const dbName = `hub_bench_http_${process.pid}`;
    const dbUrl = await pg.createDatabase(dbName);
    const api = await startApiProcess({ DATABASE_URL: dbUrl }, ctx.log);
    try {
      const [org] = await api.seed(1);
      await loop(api, org!.token, warmup);
      if (pg.info.statStatements) await resetStatements(dbUrl);
      await api.resetStats();
      await api.profileStart();
      const ms = await loop(api, org!.token, requests);
      const stats = await api.stats();
      const profFile = await api.profileStop('http');
      const profile = profFile ? summarizeProfile(profFile) : null;
      // Everything the process ran meanwhile counts, its pg-boss maintenance and recovery sweep included.
      const totals = pg.info.statStatements ? await statementTotals(dbUrl) : null;
      const top = pg.info.statStatements ? await topStatements(dbUrl, 6) : null;
      const statementsPerRequest = totals ? Number((totals.calls / requests).toFixed(3)) : null;
      const latency = roundSummary(summarize(ms), 3);
      const cpuUsPerRequest = Number((((stats.cpuMs.user + stats.cpuMs.system) * 1000) / requests).toFixed(1));
      return {
        name: 'http',
        title: `One GraphQL query over HTTP at a time, ${requests} requests, PostgreSQL ${pg.info.version}`,
        config: { requests, warmup, query: 'viewer { user { email } } with an API token (token cached; one primary-key read of the user)' },
        figures: { latencyMs: latency, apiCpuUsPerRequest: cpuUsPerRequest, statementsPerRequest, topStatements: top, apiEventLoopDelayMs: stats.eventLoopDelayMs, apiProfile: profile },
        tables: [
          {
            title: 'Per request',
            columns: ['figure', 'p50', 'p90', 'p99', 'max', 'mean'],
            rows: [['client latency (ms)', latency.p50, latency.p90, latency.p99, latency.max, latency.mean]],
          },
          {
            title: 'API process',
            columns: ['figure', 'value'],
            rows: [
              ['CPU per request (µs)', cpuUsPerRequest],
              ['SQL statements per request', statementsPerRequest],
            ],
          },
          ...(top ? [{ title: 'Most frequent statements', columns: ['calls', 'mean ms', 'statement'], rows: top.map((t) => [t.calls, t.meanMs, t.query]) }] : []),
          ...(profile
            ? [
                { title: `API ${profile.unit} by package (BENCH_API_CPU_PROF)`, columns: [profile.unit, '%', 'where'], rows: profile.byPackage.map((r) => [r.amount, r.percent, r.name]) },
                { title: `API ${profile.unit} by function`, columns: [profile.unit, '%', 'function'], rows: profile.byFunction.map((r) => [r.amount, r.percent, r.name]) },
              ] satisfies Table[]
            : []),
        ],
        targets: [],
        notes: [
          'No target of its own: a diagnosis of the HTTP layer that the orchestration benchmark\'s startRun also goes through, measured where nothing else competes for the cores.',
          'The client is Node\'s fetch with keep-alive in this process; its own cost is in the latency, not in the API\'s CPU.',
        ],
      };
    } finally {
      await api.stop();
      await pg.dropDatabase(dbName).catch(() => {});
    }
  },
};
