/**
 * Orchestration overhead on PostgreSQL.
 *
 * For each run: t0 = performance.now() just before the startRun mutation is POSTed; as soon as the
 * mutation returns the run id the client subscribes to runEvents(afterSeq: 0) on its already-open
 * graphql-ws connection (the subscription replays, so nothing is missed); t1 = performance.now() when
 * the first TOKEN event arrives. The "over the socket" level sends the mutation over that graphql-ws
 * connection instead of POSTing it (the SDK's `operations: 'websocket'`). The fake OpenAI server (in a
 * process of its own, as a provider is another machine: bench/lib/fake-openai-process.ts) records on its
 * clock when the provider request arrived and when it wrote its first content chunk; that provider time to first token is subtracted:
 * overhead = (t1 - t0) - (firstChunkAt - receivedAt).
 *
 * The API runs alone in a child process (bench/api-process.ts) with the pg-boss queue and the
 * LISTEN/NOTIFY bus on a PostgreSQL database of its own; the provider is the real `openai` SDK talking
 * to the fake over HTTP (OPENAI_BASE_URL), so SSE parsing is in the path.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Client } from 'graphql-ws';
import { startApiProcess, type ApiProcess, type ApiStats, type SeededOrg } from './lib/api-child.js';
import { connectWs, createAgent, gql, mapLimit, RUN_EVENTS, RUN_TIMES, startRun, startRunOverSocket, type WireEvent } from './lib/client.js';
import { WebSocket } from './lib/deps.js';
import { cpuWindow, type CpuWindow } from './lib/cpu.js';
import { startFakeOpenAIProcess, type FakeOpenAIProcess, type FakeRequestTiming } from './lib/fake-openai-process.js';
import { startOrchestrationFloor, type OrchestrationFloor } from './lib/orchestration-floor.js';
import { lockWaitSampler, resetStatements, statementTotals, topStatements, type LockWaits, type PostgresServer } from './lib/postgres.js';
import { profileTitle, summarizeProfile } from './lib/profile.js';
import type { Benchmark, BenchContext, BenchResult, Table, Target } from './lib/report.js';
import { perfToWall, round, roundSummary, summarize, wallNow, type Summary } from './lib/stats.js';

const env = (name: string, def: number) => (process.env[name] ? Number(process.env[name]) : def);
/** How many of the busiest level's statements the report lists (BENCH_TOP_STATEMENTS); at least 10 are read, pg-boss's fetch among them. */
const TOP_STATEMENTS = env('BENCH_TOP_STATEMENTS', 8);

interface LevelSpec {
  label: string;
  concurrency: number;
  /**
   * steady: `concurrency` closed loops, each starting its next run when the previous one ends (runs
   * in flight stay at `concurrency`, starts are staggered); runs stream for `provider.long` (~3 s).
   * burst: `rounds` times, start `concurrency` runs at the same instant and wait for all of them.
   */
  mode: 'steady' | 'burst';
  /** burst: rounds; steady with concurrency 1: number of runs. */
  rounds: number;
  /** steady: how long to keep starting runs (after a ramp-up of one stream length, not measured). */
  durationMs?: number;
  /** Spread over all seeded organizations, or all in the first one. */
  singleOrg: boolean;
  /** startRun sent over the organization's open graphql-ws connection instead of POSTed over HTTP (the SDK's `operations: 'websocket'`). */
  overSocket?: boolean;
}

interface Tenant extends SeededOrg {
  agentId: string;
  ws: Client;
}

interface Sample {
  level: string;
  round: number;
  org: number;
  input: string;
  runId: string;
  t0: number;
  tStarted: number;
  tFirstToken: number | null;
  tDone: number | null;
  firstTokenCreatedAt: string | null;
  status: string | null;
  error: string | null;
  /** filled after the round */
  provider?: FakeRequestTiming;
  providerTtft?: number;
  overhead?: number;
  endToEnd?: number;
  mutation?: number;
  toInsert?: number;
  queuePickup?: number;
  claimToProvider?: number;
  firstTokenToClient?: number;
}

function subscribeRun(ws: Client, runId: string, s: Sample, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      s.error ??= 'timed out';
      dispose();
      resolve();
    }, timeoutMs);
    const dispose = ws.subscribe<{ runEvents: WireEvent }>(
      { query: RUN_EVENTS, variables: { runId, afterSeq: 0 } },
      {
        next: (msg) => {
          const now = performance.now();
          if (msg.errors) {
            s.error = msg.errors.map((e) => e.message).join('; ');
            return;
          }
          const e = msg.data!.runEvents;
          if (e.type === 'TOKEN' && s.tFirstToken === null) {
            s.tFirstToken = now;
            s.firstTokenCreatedAt = e.createdAt;
          }
          if (e.type === 'STATUS' && e.status && ['SUCCEEDED', 'FAILED', 'CANCELLED', 'BLOCKED'].includes(e.status)) s.status = e.status;
        },
        error: (err) => {
          s.error = String(err instanceof Error ? err.message : JSON.stringify(err));
          clearTimeout(timer);
          resolve();
        },
        complete: () => {
          s.tDone = performance.now();
          clearTimeout(timer);
          resolve();
        },
      },
    );
  });
}

const LONG = '[stream:long]';

async function oneRun(
  api: ApiProcess,
  tenant: Tenant,
  orgIndex: number,
  level: string,
  roundNo: number,
  samples: Sample[],
  { long = false, overSocket = false }: { long?: boolean; overSocket?: boolean } = {},
) {
  const input = `bench ${level} r${roundNo} ${long ? LONG : ''} ${randomUUID()}`;
  const s: Sample = {
    level,
    round: roundNo,
    org: orgIndex,
    input,
    runId: '',
    t0: 0,
    tStarted: 0,
    tFirstToken: null,
    tDone: null,
    firstTokenCreatedAt: null,
    status: null,
    error: null,
  };
  samples.push(s);
  s.t0 = performance.now();
  try {
    s.runId = overSocket ? await startRunOverSocket(tenant.ws, tenant.agentId, input) : await startRun(api.graphqlUrl, tenant.token, tenant.agentId, input);
  } catch (err) {
    s.error = (err as Error).message;
    return;
  }
  s.tStarted = performance.now();
  await subscribeRun(tenant.ws, s.runId, s, 30_000);
}

/** Joins each finished run with the provider's timing record (kept by the fake until its next reset). */
async function joinProviderTimes(fake: FakeOpenAIProcess, samples: Sample[]) {
  const byInput = new Map<string, FakeRequestTiming>();
  for (const r of await fake.requests()) if (r.input !== null) byInput.set(r.input, r);
  for (const s of samples) {
    const req = byInput.get(s.input);
    if (!req || req.firstChunkAt === null || s.tFirstToken === null || s.error) {
      s.error ??= req ? 'no token' : 'provider never called';
      continue;
    }
    s.provider = req;
    s.providerTtft = req.firstChunkAt - req.receivedAt;
    s.endToEnd = s.tFirstToken - s.t0;
    s.overhead = s.endToEnd - s.providerTtft;
    s.mutation = s.tStarted - s.t0;
  }
}

/**
 * Adds the API's own timestamps of each measured run (for the breakdown). Called once the level's CPU
 * time and statements are read: these look-ups are the benchmark's, not the runs'.
 */
async function addRunTimes(api: ApiProcess, tenants: Tenant[], samples: Sample[]) {
  await mapLimit(
    samples.filter((s) => s.provider),
    16,
    async (s) => {
      const req = s.provider!;
      const t = await gql<{ run: { createdAt: string; startedAt: string | null; firstTokenAt: string | null } }>(
        api.graphqlUrl,
        tenants[s.org]!.token,
        RUN_TIMES,
        { id: s.runId },
      );
      const createdAt = Date.parse(t.run.createdAt);
      const startedAt = t.run.startedAt ? Date.parse(t.run.startedAt) : NaN;
      // API timestamps are JavaScript Dates (1 ms resolution) on the same machine clock as wallNow().
      s.toInsert = createdAt - perfToWall(s.t0);
      s.queuePickup = startedAt - createdAt;
      s.claimToProvider = req.receivedAt - startedAt;
      s.firstTokenToClient = perfToWall(s.tFirstToken!) - req.firstChunkAt!;
    },
  );
}

interface LevelResult {
  label: string;
  mode: LevelSpec['mode'];
  concurrency: number;
  orgs: number;
  runs: number;
  failed: number;
  wallSeconds: number;
  overhead: Summary;
  endToEnd: Summary;
  providerTtft: Summary;
  breakdown: Record<string, Summary>;
  api: { eventLoopDelayP99Ms: number; eventLoopDelayMaxMs: number; eventLoopUtilization: number } | null;
  cpu: CpuWindow;
  runsExecuted: number;
  runsFailed: number;
  /** SQL statements per run (BEGIN/COMMIT excluded), all and pg-boss's alone. */
  statementsPerRun: number | null;
  pgBossStatementsPerRun: number | null;
  /** CPU milliseconds per run (the level's CPU time divided by every run it started). */
  apiCpuMsPerRun: number | null;
  postgresCpuMsPerRun: number | null;
  pgBossFetchesPerRun: number | null;
  topStatements: Awaited<ReturnType<typeof topStatements>> | null;
  /** Statements waiting for a lock, sampled during the level. */
  lockWaits: LockWaits | null;
  errors: string[];
  apiProfile: ReturnType<typeof summarizeProfile> | null;
}

async function runLevel(
  ctx: BenchContext,
  spec: LevelSpec,
  api: ApiProcess,
  tenants: Tenant[],
  fake: FakeOpenAIProcess,
  pg: PostgresServer,
  dbUrl: string,
  timeBudgetMs: number,
  longStreamMs: number,
): Promise<LevelResult> {
  const samples: Sample[] = [];
  const orgCount = spec.singleOrg ? 1 : tenants.length;
  if (pg.info.statStatements) await resetStatements(dbUrl).catch(() => {});
  await api.resetStats();
  await api.profileStart();
  const locks = await lockWaitSampler(dbUrl).catch(() => null);
  const endCpu = cpuWindow(api.pid, pg.postmasterPid, [fake.pid]);
  const started = performance.now();
  let rounds = 0;
  /** Every run started in the window, measured or not (CPU and statements are divided by this). */
  let executed = 0;
  /** Failures of runs started during a steady level's ramp-up (not measured, but reported). */
  const rampErrors: string[] = [];
  if (spec.mode === 'steady' && spec.concurrency > 1) {
    // Closed loops, staggered over one stream length so that starts spread out; runs started during that
    // ramp-up are not measured.
    await fake.reset();
    const ramp = longStreamMs;
    const deadline = started + ramp + (spec.durationMs ?? 20_000);
    const all: Sample[] = [];
    await Promise.all(
      Array.from({ length: spec.concurrency }, async (_, w) => {
        await delay((w * ramp) / spec.concurrency);
        const t = w % orgCount;
        for (let r = 0; performance.now() < deadline; r++) {
          const mine: Sample[] = [];
          executed++;
          await oneRun(api, tenants[t]!, t, spec.label, r, mine, { long: true, overSocket: spec.overSocket });
          if (mine[0]!.t0 >= started + ramp) all.push(...mine);
          else if (mine[0]!.error) rampErrors.push(mine[0]!.error);
        }
      }),
    );
    await delay(250);
    await joinProviderTimes(fake, all);
    samples.push(...all);
    rounds = 1;
  }
  for (let r = 0; r < (spec.mode === 'burst' || spec.concurrency === 1 ? spec.rounds : 0); r++) {
    if (performance.now() - started > timeBudgetMs) break;
    await fake.reset();
    const roundSamples: Sample[] = [];
    if (spec.concurrency === 1) {
      const t = r % orgCount;
      await oneRun(api, tenants[t]!, t, spec.label, r, roundSamples, { overSocket: spec.overSocket });
    } else {
      await Promise.all(
        Array.from({ length: spec.concurrency }, (_, i) => {
          const t = i % orgCount;
          return oneRun(api, tenants[t]!, t, spec.label, r, roundSamples, { overSocket: spec.overSocket });
        }),
      );
    }
    // Let the runs' final writes (usage, job completion) finish before the next round starts.
    await delay(spec.concurrency === 1 ? 20 : 250);
    await joinProviderTimes(fake, roundSamples);
    samples.push(...roundSamples);
    executed += roundSamples.length;
    rounds++;
  }
  const wallSeconds = (performance.now() - started) / 1000;
  const cpu = endCpu();
  const lockWaits = locks ? await locks.stop().catch(() => null) : null;
  const stats: ApiStats | null = await api.stats().catch(() => null);
  const profFile = await api.profileStop(`orchestration-${spec.label.replace(/\W+/g, '-')}`);
  const apiProfile = profFile ? summarizeProfile(profFile) : null;
  const top = pg.info.statStatements ? await topStatements(dbUrl, Math.max(10, TOP_STATEMENTS)).catch(() => null) : null;
  const totals = pg.info.statStatements ? await statementTotals(dbUrl).catch(() => null) : null;
  await addRunTimes(api, tenants, samples);
  const ok = samples.filter((s) => s.overhead !== undefined);
  const pick = (k: keyof Sample) => ok.map((s) => s[k] as number).filter((v) => Number.isFinite(v));
  const fetches = top?.find((t) => t.query.startsWith('pg-boss fetch'));
  const allErrors = [...samples.filter((s) => s.error).map((s) => s.error!), ...rampErrors];
  const errors = [...new Set(allErrors)].slice(0, 5);
  ctx.log(
    `  ${spec.label}: ${ok.length}/${samples.length} measured runs ok, ${executed} started, ${allErrors.length} failed${spec.mode === 'burst' ? ` in ${rounds} round(s)` : ''}, ${wallSeconds.toFixed(1)} s` +
      (errors.length ? `; errors: ${errors.join(' | ')}` : ''),
  );
  return {
    label: spec.label,
    mode: spec.mode,
    concurrency: spec.concurrency,
    orgs: orgCount,
    runs: samples.length,
    failed: samples.length - ok.length,
    wallSeconds: round(wallSeconds),
    overhead: roundSummary(summarize(pick('overhead'))),
    endToEnd: roundSummary(summarize(pick('endToEnd'))),
    providerTtft: roundSummary(summarize(pick('providerTtft'))),
    breakdown: {
      mutationRoundTrip: roundSummary(summarize(pick('mutation'))),
      requestToInsert: roundSummary(summarize(pick('toInsert'))),
      queuePickup: roundSummary(summarize(pick('queuePickup'))),
      claimToProviderRequest: roundSummary(summarize(pick('claimToProvider'))),
      firstTokenToClient: roundSummary(summarize(pick('firstTokenToClient'))),
    },
    api: stats
      ? {
          eventLoopDelayP99Ms: round(stats.eventLoopDelayMs.p99),
          eventLoopDelayMaxMs: round(stats.eventLoopDelayMs.max),
          eventLoopUtilization: round(stats.eventLoopUtilization, 3),
        }
      : null,
    cpu,
    runsExecuted: executed,
    runsFailed: allErrors.length,
    apiCpuMsPerRun: cpu.apiSeconds !== null && executed ? round((1000 * cpu.apiSeconds) / executed, 1) : null,
    postgresCpuMsPerRun: cpu.postgresSeconds !== null && executed ? round((1000 * cpu.postgresSeconds) / executed, 1) : null,
    statementsPerRun: totals && executed ? round(totals.calls / executed, 1) : null,
    pgBossStatementsPerRun: totals && executed ? round(totals.pgBoss / executed, 1) : null,
    pgBossFetchesPerRun: fetches && executed ? round(fetches.calls / executed, 1) : null,
    topStatements: top,
    lockWaits,
    errors,
    apiProfile,
  };
}

interface FloorLevel {
  label: string;
  runs: number;
  failed: number;
  overhead: Summary;
  endToEnd: Summary;
  cpu: CpuWindow;
  /** The floor server's and PostgreSQL's CPU per run started (ms). */
  serverCpuMsPerRun: number | null;
  postgresCpuMsPerRun: number | null;
}

/**
 * The same load (level 1: sequential short runs; level 50: 50 closed loops of long runs) against the bare
 * server of bench/lib/orchestration-floor.ts, started over open WebSockets (one per organization, as the
 * "over the socket" level does). Overhead is taken as for the API: first token at the client − start sent,
 * minus the fake provider's own time to first token.
 */
async function runFloor(
  ctx: BenchContext,
  floor: OrchestrationFloor,
  fake: FakeOpenAIProcess,
  pg: PostgresServer,
  specs: { label: string; concurrency: number; rounds: number; durationMs: number }[],
  connections: number,
  longStreamMs: number,
): Promise<FloorLevel[]> {
  const waiting = new Map<string, { first: (t: number) => void; done: (err?: string) => void }>();
  const sockets = await Promise.all(
    Array.from({ length: connections }, async () => {
      const ws = new WebSocket(floor.wsUrl, { perMessageDeflate: false });
      ws.on('message', (raw: Buffer) => {
        const t = performance.now();
        const m = JSON.parse(String(raw)) as { id: string; seq?: number; done?: boolean; error?: string };
        const w = waiting.get(m.id);
        if (!w) return;
        if (m.seq === 1) w.first(t);
        else if (m.done || m.error) w.done(m.error);
      });
      await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
      return ws;
    }),
  );
  const oneFloorRun = async (ws: InstanceType<typeof WebSocket>, long: boolean) => {
    const id = randomUUID();
    const input = `floor ${long ? LONG : ''} ${id}`;
    const sample = { input, t0: performance.now(), tFirst: null as number | null, error: null as string | null };
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        sample.error ??= 'timed out';
        resolve();
      }, 30_000);
      waiting.set(id, {
        first: (t) => (sample.tFirst = t),
        done: (err) => {
          if (err) sample.error = err;
          clearTimeout(timer);
          resolve();
        },
      });
      ws.send(JSON.stringify({ id, input }));
    });
    waiting.delete(id);
    return sample;
  };
  const results: FloorLevel[] = [];
  try {
    for (const spec of specs) {
      await fake.reset();
      const endCpu = cpuWindow(floor.pid, pg.postmasterPid, [fake.pid]);
      const started = performance.now();
      const measured: Awaited<ReturnType<typeof oneFloorRun>>[] = [];
      let executed = 0;
      if (spec.concurrency === 1) {
        for (let r = 0; r < spec.rounds; r++) {
          executed++;
          measured.push(await oneFloorRun(sockets[r % sockets.length]!, false));
          await delay(20);
        }
      } else {
        const ramp = longStreamMs;
        const deadline = started + ramp + spec.durationMs;
        await Promise.all(
          Array.from({ length: spec.concurrency }, async (_, w) => {
            await delay((w * ramp) / spec.concurrency);
            while (performance.now() < deadline) {
              executed++;
              const sample = await oneFloorRun(sockets[w % sockets.length]!, true);
              if (sample.t0 >= started + ramp) measured.push(sample);
            }
          }),
        );
      }
      const cpu = endCpu();
      const byInput = new Map<string, FakeRequestTiming>();
      for (const r of await fake.requests()) if (r.input !== null) byInput.set(r.input, r);
      const overhead: number[] = [];
      const endToEnd: number[] = [];
      let failed = 0;
      for (const s of measured) {
        const req = byInput.get(s.input);
        if (s.error || s.tFirst === null || !req || req.firstChunkAt === null) {
          failed++;
          continue;
        }
        endToEnd.push(s.tFirst - s.t0);
        overhead.push(s.tFirst - s.t0 - (req.firstChunkAt - req.receivedAt));
      }
      const perRun = (seconds: number | null) => (seconds !== null && executed ? round((1000 * seconds) / executed, 2) : null);
      results.push({
        label: spec.label,
        runs: measured.length,
        failed,
        overhead: roundSummary(summarize(overhead)),
        endToEnd: roundSummary(summarize(endToEnd)),
        cpu,
        serverCpuMsPerRun: perRun(cpu.apiSeconds),
        postgresCpuMsPerRun: perRun(cpu.postgresSeconds),
      });
      ctx.log(`  I/O floor, ${spec.label}: ${measured.length - failed}/${measured.length} measured runs ok, ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
  } finally {
    for (const ws of sockets) ws.close();
  }
  return results;
}

export const orchestration: Benchmark = {
  name: 'orchestration',
  description: 'startRun (HTTP) → first TOKEN on a graphql-ws subscriber, minus provider TTFT, on PostgreSQL',
  async run(ctx): Promise<BenchResult> {
    const quick = ctx.quick;
    const config = {
      database: 'PostgreSQL (pg-boss queue, LISTEN/NOTIFY bus)',
      workerConcurrency: env('BENCH_WORKER_CONCURRENCY', 256),
      orgConcurrency: env('BENCH_ORG_CONCURRENCY', 256),
      organizations: env('BENCH_ORGS', 20),
      provider: {
        fake: 'api/test/fakes OpenAI server in its own process (bench/lib/fake-openai-process.ts) via OPENAI_BASE_URL (real openai SDK, real SSE)',
        firstByteDelayMs: env('BENCH_PROVIDER_FIRST_BYTE_MS', 20),
        chunkDelayMs: env('BENCH_PROVIDER_CHUNK_DELAY_MS', 5),
        chunks: env('BENCH_PROVIDER_CHUNKS', 10),
        /** Steady levels: a run streams this long, like a real completion, so N runs stay in flight. */
        long: { chunkDelayMs: env('BENCH_PROVIDER_LONG_CHUNK_DELAY_MS', 100), chunks: env('BENCH_PROVIDER_LONG_CHUNKS', 30) },
      },
      warmup: { sequentialRuns: quick ? 5 : 30, concurrentRounds: quick ? 1 : 2, concurrency: 50 },
      levels: [
        { label: '1', mode: 'steady', concurrency: 1, rounds: quick ? 20 : env('BENCH_RUNS_AT_1', 100), singleOrg: false },
        { label: '50', mode: 'steady', concurrency: 50, rounds: 0, durationMs: quick ? 5_000 : env('BENCH_STEADY_MS', 20_000), singleOrg: false },
        { label: '50, over the socket', mode: 'steady', concurrency: 50, rounds: 0, durationMs: quick ? 5_000 : env('BENCH_STEADY_MS', 20_000), singleOrg: false, overSocket: true },
        { label: '200', mode: 'steady', concurrency: 200, rounds: 0, durationMs: quick ? 5_000 : env('BENCH_STEADY_MS', 20_000), singleOrg: false },
        { label: '50, one org', mode: 'steady', concurrency: 50, rounds: 0, durationMs: quick ? 5_000 : env('BENCH_STEADY_MS', 20_000), singleOrg: true },
        { label: '50 at once', mode: 'burst', concurrency: 50, rounds: quick ? 1 : env('BENCH_BURST_ROUNDS', 3), singleOrg: false },
      ] satisfies LevelSpec[],
      levelTimeBudgetMs: env('BENCH_LEVEL_BUDGET_MS', 30_000),
      ws: 'one graphql-ws connection per organization, opened before measuring; one subscription per run',
      rateLimits: 'limiter active (PostgreSQL counters), budgets raised to 10,000,000 so the load is not refused',
    };

    const pg = await ctx.postgres();
    const dbName = `hub_bench_orchestration_${process.pid}`;
    const dbUrl = await pg.createDatabase(dbName);
    const apiKey = 'sk-bench-openai';
    const text = Array.from({ length: config.provider.chunks }, (_, i) => `tok${i} `).join('');
    const longText = Array.from({ length: config.provider.long.chunks }, (_, i) => `tok${i} `).join('');
    const fake = await startFakeOpenAIProcess({
      apiKey,
      marker: LONG,
      marked: {
        kind: 'reply',
        text: longText,
        chunks: config.provider.long.chunks,
        firstByteDelayMs: config.provider.firstByteDelayMs,
        chunkDelayMs: config.provider.long.chunkDelayMs,
        usage: { inputTokens: 20, outputTokens: config.provider.long.chunks },
      },
      reply: {
        kind: 'reply',
        text,
        chunks: config.provider.chunks,
        firstByteDelayMs: config.provider.firstByteDelayMs,
        chunkDelayMs: config.provider.chunkDelayMs,
        usage: { inputTokens: 20, outputTokens: config.provider.chunks },
      },
    });
    let api: ApiProcess | undefined;
    const tenants: Tenant[] = [];
    const levels: LevelResult[] = [];
    let idle: { cpu: CpuWindow; fetchesPerSecond: number | null; topStatements: unknown } | null = null;
    let floorLevels: FloorLevel[] = [];
    try {
      api = await startApiProcess(
        {
          DATABASE_URL: dbUrl,
          WORKER_CONCURRENCY: String(config.workerConcurrency),
          ORG_CONCURRENCY: String(config.orgConcurrency),
          OPENAI_API_KEY: apiKey,
          OPENAI_BASE_URL: fake.url,
          ...(process.env.BENCH_QUEUE ? { BENCH_QUEUE: process.env.BENCH_QUEUE } : {}),
        },
        ctx.log,
      );
      const seeded = await api.seed(config.organizations);
      for (const o of seeded) {
        const agentId = await createAgent(api.graphqlUrl, o.token, o.projectGid);
        tenants.push({ ...o, agentId, ws: await connectWs(api.wsUrl, o.token) });
      }
      ctx.log(`  seeded ${tenants.length} organizations (owner, API token, project, OpenAI agent each), ${tenants.length} graphql-ws connections open`);

      // Warm-up: JIT, connection pools, prepared statements, pg-boss queue cache. Not measured.
      const warm: Sample[] = [];
      for (let i = 0; i < config.warmup.sequentialRuns; i++) await oneRun(api, tenants[i % tenants.length]!, i % tenants.length, 'warmup', i, warm);
      for (let r = 0; r < config.warmup.concurrentRounds; r++) {
        await Promise.all(Array.from({ length: config.warmup.concurrency }, (_, i) => oneRun(api!, tenants[i % tenants.length]!, i % tenants.length, 'warmup', r, warm)));
      }
      const warmFailures = warm.filter((s) => s.error || s.status !== 'SUCCEEDED');
      if (warmFailures.length) throw new Error(`warm-up runs failed: ${warmFailures[0]!.error ?? warmFailures[0]!.status}`);
      ctx.log(`  warm-up: ${warm.length} runs`);
      await delay(500);

      // Idle cost: nothing running, the workers only poll.
      if (pg.info.statStatements) await resetStatements(dbUrl).catch(() => {});
      const endIdle = cpuWindow(api.pid, pg.postmasterPid, [fake.pid]);
      await delay(quick ? 2_000 : 5_000);
      const idleCpu = endIdle();
      const idleTop = pg.info.statStatements ? await topStatements(dbUrl, Math.max(10, TOP_STATEMENTS)).catch(() => null) : null;
      const idleFetches = idleTop?.find((t) => t.query.startsWith('pg-boss fetch'));
      idle = { cpu: idleCpu, fetchesPerSecond: idleFetches ? round(idleFetches.calls / idleCpu.wallSeconds, 1) : null, topStatements: idleTop };
      ctx.log(`  idle ${idleCpu.wallSeconds} s: API ${idleCpu.apiSeconds} cpu-s, postgres ${idleCpu.postgresSeconds} cpu-s`);

      // Labels that hold a comma ("50, one org") are chosen with `;` between labels.
      const levelList = process.env.BENCH_LEVELS;
      const only = levelList?.split(levelList.includes(';') ? ';' : ',').map((v) => v.trim());
      const longStreamMs = config.provider.firstByteDelayMs + config.provider.long.chunks * config.provider.long.chunkDelayMs;
      for (const spec of config.levels.filter((l) => !only || only.includes(l.label))) {
        levels.push(await runLevel(ctx, spec, api, tenants, fake, pg, dbUrl, config.levelTimeBudgetMs, longStreamMs));
      }

      // The same load on a bare server doing only the I/O the product guarantees (the API stopped first).
      if (process.env.BENCH_ORCHESTRATION_FLOOR !== '0') {
        for (const t of tenants.splice(0)) await t.ws.dispose();
        await api.stop();
        api = undefined;
        const floor = await startOrchestrationFloor({ databaseUrl: dbUrl, providerUrl: fake.url, apiKey });
        try {
          const specs = [
            { label: '1', concurrency: 1, rounds: config.levels[0]!.rounds, durationMs: 0 },
            { label: '50', concurrency: 50, rounds: 0, durationMs: config.levels[1]!.durationMs! },
          ].filter((f) => !only || only.includes(f.label));
          floorLevels = await runFloor(ctx, floor, fake, pg, specs, config.organizations, longStreamMs);
        } finally {
          await floor.stop();
        }
      }
    } finally {
      for (const t of tenants) await t.ws.dispose();
      await api?.stop();
      await fake.close();
      await pg.dropDatabase(dbName);
    }

    const tables: Table[] = [
      {
        title: 'Orchestration overhead (ms): startRun → first TOKEN at the subscriber, minus provider TTFT',
        columns: ['concurrent', 'mode', 'orgs', 'runs', 'failed', 'p50', 'p90', 'p99', 'max', 'mean', 'e2e p50', 'provider TTFT p50'],
        rows: levels.map((l) => [l.label, l.mode, l.orgs, l.runs - l.failed, `${l.runsFailed}/${l.runsExecuted}`, l.overhead.p50, l.overhead.p90, l.overhead.p99, l.overhead.max, l.overhead.mean, l.endToEnd.p50, l.providerTtft.p50]),
      },
      {
        title: 'Breakdown, p50 / p99 (ms; API timestamps have 1 ms resolution)',
        columns: ['concurrent', 'startRun RTT', 'request→insert', 'queue pickup', 'claim→provider req', 'first chunk→client'],
        rows: levels.map((l) => [
          l.label,
          `${l.breakdown.mutationRoundTrip!.p50} / ${l.breakdown.mutationRoundTrip!.p99}`,
          `${l.breakdown.requestToInsert!.p50} / ${l.breakdown.requestToInsert!.p99}`,
          `${l.breakdown.queuePickup!.p50} / ${l.breakdown.queuePickup!.p99}`,
          `${l.breakdown.claimToProviderRequest!.p50} / ${l.breakdown.claimToProviderRequest!.p99}`,
          `${l.breakdown.firstTokenToClient!.p50} / ${l.breakdown.firstTokenToClient!.p99}`,
        ]),
      },
      {
        title: 'CPU (seconds during the level; "others" = every other process on the machine meanwhile)',
        columns: ['concurrent', 'wall s', 'API', 'postgres', 'bench', 'others', 'API ms/run', 'pg ms/run', 'API loop delay p99 ms', 'SQL/run', 'pg-boss SQL/run'],
        rows: [
          ...levels.map((l) => [
            l.label,
            l.cpu.wallSeconds,
            l.cpu.apiSeconds,
            l.cpu.postgresSeconds,
            l.cpu.benchSeconds,
            l.cpu.otherSeconds,
            l.apiCpuMsPerRun,
            l.postgresCpuMsPerRun,
            l.api?.eventLoopDelayP99Ms ?? null,
            l.statementsPerRun,
            l.pgBossStatementsPerRun,
          ]),
          ...(idle ? [['idle', idle.cpu.wallSeconds, idle.cpu.apiSeconds, idle.cpu.postgresSeconds, idle.cpu.benchSeconds, idle.cpu.otherSeconds, null, null, null, null, idle.fetchesPerSecond === null ? null : `${idle.fetchesPerSecond} fetches/s`]] : []),
        ],
      },
    ];
    if (levels.some((l) => l.lockWaits)) {
      tables.push({
        title: 'Lock waits (pg_stat_activity sampled every 250 ms during the level; a deadlock shows as waits of about 1 s)',
        columns: ['concurrent', 'samples', 'samples with a wait', 'most waiting at once', 'longest wait ms'],
        rows: levels.map((l) => [l.label, l.lockWaits?.samples ?? null, l.lockWaits?.samplesWaiting ?? null, l.lockWaits?.mostAtOnce ?? null, l.lockWaits?.longestMs ?? null]),
      });
    }
    for (const l of levels) {
      if (!l.apiProfile) continue;
      tables.push({
        title: profileTitle(l.apiProfile, `${l.label} concurrent`),
        columns: [l.apiProfile.unit, '%', 'where'],
        rows: l.apiProfile.byPackage.slice(0, 8).map((r) => [r.amount, r.percent, r.name]),
      });
    }
    if (floorLevels.length) {
      tables.push({
        title: 'I/O floor (ms): a bare server doing only the guaranteed I/O (bench/lib/orchestration-floor.ts), started over open WebSockets',
        columns: ['concurrent', 'runs', 'failed', 'p50', 'p90', 'p99', 'max', 'mean', 'e2e p50', 'server ms/run', 'pg ms/run', 'others cpu s'],
        rows: floorLevels.map((f) => [
          f.label,
          f.runs,
          f.failed,
          f.overhead.p50,
          f.overhead.p90,
          f.overhead.p99,
          f.overhead.max,
          f.overhead.mean,
          f.endToEnd.p50,
          f.serverCpuMsPerRun,
          f.postgresCpuMsPerRun,
          f.cpu.otherSeconds,
        ]),
      });
    }
    const at50 = levels.find((l) => l.label === '50');
    const targets: Target[] = at50
      ? [
          { name: 'overhead p50 at 50 concurrent', target: '<= 3 ms', actual: `${at50.overhead.p50} ms`, met: at50.overhead.p50 <= 3 },
          { name: 'overhead p99 at 50 concurrent', target: '<= 15 ms', actual: `${at50.overhead.p99} ms`, met: at50.overhead.p99 <= 15 },
        ]
      : [];
    const busiest = levels.find((l) => l.label === '50') ?? levels.reduce((a, b) => (b.concurrency > a.concurrency ? b : a), levels[0]!);
    if (busiest?.topStatements) {
      tables.push({
        title: `Most frequent SQL statements during the ${busiest.label}-concurrent level (pg_stat_statements)`,
        columns: ['calls', 'calls/run', 'total ms', 'mean ms', 'statement'],
        rows: busiest.topStatements
          .slice(0, TOP_STATEMENTS)
          .map((t) => [t.calls, round(t.calls / Math.max(1, busiest.runsExecuted), 1), t.totalMs, t.meanMs, t.query]),
      });
    }
    const notes = [
      'overhead = (first TOKEN received - startRun sent, benchmark clock) - (fake provider first content chunk - request arrival, the fake process clock).',
      'Reference: LiteLLM publishes p50 12 ms / p99 43 ms proxy overhead.',
    ];
    if (config.levels.some((spec) => spec.overSocket && levels.some((l) => l.label === spec.label))) notes.push('"over the socket": startRun sent over the open graphql-ws connection (the SDK\'s operations: \'websocket\'); every other level POSTs it over HTTP.');
    if (floorLevels.length) {
      notes.push(
        'I/O floor: per run one statement to store the run, the provider request over node:http, one statement to store the first token, one WebSocket message; no GraphQL, queue, budget or SDK. The product can at best approach it on this machine (BENCH_ORCHESTRATION_FLOOR=0 skips it).',
      );
    }
    if (process.env.BENCH_QUEUE) notes.push(`DIAGNOSTIC RUN: BENCH_QUEUE=${process.env.BENCH_QUEUE} replaced the pg-boss queue; not the shipped configuration.`);
    for (const l of levels) {
      const cores = l.cpu.otherSeconds !== null ? l.cpu.otherSeconds / l.cpu.wallSeconds : 0;
      if (cores > 0.25) notes.push(`WARNING: during the ${l.label} level other processes kept ${cores.toFixed(2)} cores busy on average; latencies are inflated by CPU contention.`);
    }
    return {
      name: 'orchestration',
      title: 'Orchestration overhead on PostgreSQL',
      config: { ...config, postgres: pg.info, measuredAt: new Date(wallNow()).toISOString() },
      figures: { levels, idle, floor: floorLevels },
      tables,
      targets,
      notes,
    };
  },
};
