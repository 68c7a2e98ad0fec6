/**
 * Fan-out: N graphql-transport-ws subscribers (one WebSocket connection each) on one streaming run served
 * by one API process.
 *
 * Latency: the fake provider writes each chunk's send time (wall clock, sub-millisecond:
 * performance.timeOrigin + performance.now()) into the chunk text; every subscriber, in this process,
 * takes the same clock when a message arrives (bench/lib/lean-ws.ts) and, after the stream, computes
 * receive - send for every stamp its TOKEN events carry. So the figure covers provider → SDK parse → persist → publish → fan-out → WebSocket → client,
 * including the time a token waits for the writer's group commit. A second figure uses the event's
 * server `createdAt` (1 ms resolution) to isolate persist + fan-out.
 *
 * Memory: the API process runs alone (bench/api-process.ts); its resident set size is read from
 * /proc/<pid>/status (VmRSS sampled during the stream, VmHWM = the kernel's peak).
 */
import type { FormattedExecutionResult } from 'graphql';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startApiProcess, type ApiProcess } from './lib/api-child.js';
import { connectWs, createAgent, mapLimit, RUN_EVENTS, startRun, type WireEvent } from './lib/client.js';
import { connectFanoutClient, fanoutClientKind, type FanoutClient, type FanoutClientKind } from './lib/lean-ws.js';
import { cpuWindow, type CpuWindow } from './lib/cpu.js';
import { profileTitle, summarizeProfile } from './lib/profile.js';
import type { Benchmark, BenchContext, BenchResult, Table, Target } from './lib/report.js';
import { GATE, STAMP, startStampedOpenAI, type StampedOpenAI } from './lib/stamped-openai.js';
import { loopDelayMonitor, round, roundSummary, summarize, type Summary } from './lib/stats.js';
import { startFloorServer } from './lib/ws-floor.js';

const env = (name: string, def: number) => (process.env[name] ? Number(process.env[name]) : def);

interface Subscriber {
  client: FanoutClient;
  lastSeq: number;
  text: string;
  tokenEvents: number;
  sawRunning: boolean;
  done: boolean;
  status: string | null;
  error: string | null;
  outOfOrder: number;
  liveAtRelease: boolean;
}

interface Samples {
  /** receive - provider send, per stamp (ms) */
  perChunk: number[];
  /** receive - provider send of the oldest stamp in each event */
  perEvent: number[];
  /** receive - event createdAt (server clock, 1 ms) */
  sinceCreated: number[];
}

interface VariantResult {
  database: string;
  subscribers: number;
  connected: number;
  completeAndExact: number;
  liveAtRelease: number;
  /** API CPU time during the stream divided by the events delivered to subscribers (all costs included). */
  apiCpuMicrosPerDelivery: number | null;
  chunks: number;
  chunkIntervalMs: number;
  tokenEventsPerSubscriber: Summary;
  latencyPerChunk: Summary;
  latencyPerEvent: Summary;
  latencySinceCreatedAt: Summary;
  memoryMB: {
    /** PGlite only: the very first start on an empty data directory (initdb + migrations). */
    firstEverStartPeak: number | null;
    startupPeak: number | null;
    afterStartup: number | null;
    afterWarmup: number | null;
    /** every WebSocket connected and acknowledged, no subscription yet */
    connectedIdle: number | null;
    subscribedIdle: number | null;
    heapUsedWarm: number | null;
    heapUsedConnected: number | null;
    heapUsedSubscribed: number | null;
    peakDuringStream: number | null;
    processPeak: number | null;
    heapUsedAfterStream: number | null;
  };
  timingsSeconds: { connect: number; subscribe: number; stream: number };
  cpuDuringStream: CpuWindow;
  apiEventLoopDelayP99Ms: number | null;
  benchEventLoopDelayP99Ms: number;
  fakeMaxLateMs: number;
  errors: string[];
  apiProfile: ReturnType<typeof summarizeProfile> | null;
}

async function runVariant(
  ctx: BenchContext,
  kind: 'postgresql' | 'pglite',
  cfg: { subscribers: number; chunks: number; intervalMs: number; connectParallelism: number; gateMaxMs: number; client: FanoutClientKind },
): Promise<VariantResult> {
  const apiKey = 'sk-bench-openai';
  const fake: StampedOpenAI = await startStampedOpenAI({ apiKey, chunks: cfg.chunks, intervalMs: cfg.intervalMs });
  let api: ApiProcess | undefined;
  let dbName: string | undefined;
  let dataDir: string | undefined;
  const pg = kind === 'postgresql' ? await ctx.postgres() : null;
  const subs: Subscriber[] = [];
  const samples: Samples = { perChunk: [], perEvent: [], sinceCreated: [] };
  const received: { recv: number; text: string; createdAt: string }[] = [];
  let firstStartPeak: number | null = null;
  try {
    const dbEnv: Record<string, string> = {};
    // Every subscriber signs in with the same API token: the per-user connection cap (200 by default) is
    // raised for them, as a deployment serving that many sockets to one account would raise it.
    const apiEnv = { OPENAI_API_KEY: apiKey, OPENAI_BASE_URL: fake.url, WS_CONNECTIONS_PER_USER: String(cfg.subscribers + 50) };
    if (pg) {
      dbName = `hub_bench_fanout_${process.pid}`;
      dbEnv.DATABASE_URL = await pg.createDatabase(dbName);
    } else {
      dataDir = mkdtempSync(join(tmpdir(), 'hub-bench-pglite-'));
      dbEnv.DATA_DIR = dataDir;
      // First start creates the cluster inside PGlite (initdb) and applies the migrations, which peaks far
      // higher than any later start; measure a process that opens an existing database, as a deployment does.
      const init = await startApiProcess({ ...dbEnv, ...apiEnv }, ctx.log);
      firstStartPeak = init.startup?.peakRssMB ?? null;
      await init.stop();
    }
    api = await startApiProcess({ ...dbEnv, ...apiEnv }, ctx.log);
    const afterStartup = api.startup?.rssMB ?? null;
    const startupPeak = api.startup?.peakRssMB ?? null;
    const [org] = await api.seed(1);
    const agentId = await createAgent(api.graphqlUrl, org!.token, org!.projectGid);

    // Warm-up: a few short runs with a handful of subscribers each (JIT, pools). Not measured.
    for (let i = 0; i < 5; i++) {
      const runId = await startRun(api.graphqlUrl, org!.token, agentId, `warm-up ${i}`);
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          const c = await connectWs(api!.wsUrl, org!.token);
          await new Promise<void>((resolve) => {
            c.subscribe({ query: RUN_EVENTS, variables: { runId, afterSeq: 0 } }, { next: () => {}, error: () => resolve(), complete: () => resolve() });
          });
          await c.dispose();
        }),
      );
    }
    await delay(300);
    const afterWarmup = api.memory()?.rssMB ?? null;
    const heapWarm = (await api.stats()).heapUsedMB;

    // Connect every subscriber (one WebSocket each), then start the run and subscribe them all.
    let t = performance.now();
    const errors: string[] = [];
    const clients = await mapLimit(Array.from({ length: cfg.subscribers }), cfg.connectParallelism, async () => {
      try {
        return await connectFanoutClient(cfg.client, api!.wsUrl, org!.token, 60_000);
      } catch (err) {
        errors.push(`connect: ${String((err as Error)?.message ?? err)}`);
        return null;
      }
    });
    const connectSeconds = (performance.now() - t) / 1000;
    await delay(200);
    const connectedIdle = api.memory()?.rssMB ?? null;
    const heapConnected = (await api.stats()).heapUsedMB;
    const runId = await startRun(api.graphqlUrl, org!.token, agentId, `fan-out ${GATE}`);
    t = performance.now();
    let allDone!: () => void;
    const finished = new Promise<void>((r) => (allDone = r));
    let doneCount = 0;
    const connected = clients.filter((c): c is FanoutClient => c !== null);
    const markDone = (s: Subscriber) => {
      if (s.done) return;
      s.done = true;
      if (++doneCount === connected.length) allDone();
    };
    const handle = (s: Subscriber, recv: number, msg: FormattedExecutionResult<Record<string, unknown>, unknown>) => {
      if (msg.errors) {
        s.error = msg.errors.map((e) => e.message).join('; ');
        return;
      }
      const e = msg.data!.runEvents as WireEvent;
      if (e.seq !== s.lastSeq + 1) s.outOfOrder++;
      s.lastSeq = e.seq;
      if (e.type === 'STATUS') {
        if (e.status === 'RUNNING') s.sawRunning = true;
        else if (e.status !== 'QUEUED') s.status = e.status;
        return;
      }
      if (e.type !== 'TOKEN' || !e.text) return;
      s.tokenEvents++;
      s.text += e.text;
      if (s.liveAtRelease) received.push({ recv, text: e.text, createdAt: e.createdAt });
    };
    // Once the stream is released, a message is only stamped and kept: it is parsed and checked after the
    // stream. This process shares the cores with the API, and its own work per message delays the
    // messages still waiting in the other 999 sockets.
    const deferred: { s: Subscriber; recv: number; payload: () => FormattedExecutionResult<Record<string, unknown>, unknown> }[] = [];
    for (const client of connected) {
      const s: Subscriber = { client, lastSeq: 0, text: '', tokenEvents: 0, sawRunning: false, done: false, status: null, error: null, outOfOrder: 0, liveAtRelease: false };
      subs.push(s);
      client.subscribe(
        RUN_EVENTS,
        { runId, afterSeq: 0 },
        {
          next: (recv, payload) => {
            if (s.liveAtRelease) deferred.push({ s, recv, payload });
            else handle(s, recv, payload());
          },
          error: (err) => {
            s.error = String((err as Error)?.message ?? JSON.stringify(err));
            markDone(s);
          },
          complete: () => markDone(s),
        },
      );
    }

    // Everyone subscribed and live (has seen RUNNING) and the provider request is held at the gate. The
    // gate is bounded (the provider adapter times a request out after 60 s without a first token): a
    // subscriber not live by then is left out of the latency figures, and counted.
    await fake.gatedArrived();
    const gateOpenedAt = performance.now();
    while (subs.some((s) => !s.sawRunning && !s.error) && performance.now() - gateOpenedAt < cfg.gateMaxMs) await delay(20);
    const subscribeSeconds = (performance.now() - t) / 1000;
    await delay(200);
    const subscribedIdle = api.memory()?.rssMB ?? null;
    const heapSubscribed = (await api.stats()).heapUsedMB;
    ctx.log(
      `  ${kind}: ${connected.length}/${cfg.subscribers} connected in ${connectSeconds.toFixed(1)} s, subscribed in ${subscribeSeconds.toFixed(1)} s; API RSS ${subscribedIdle?.toFixed(0)} MB; streaming ${cfg.chunks} chunks every ${cfg.intervalMs} ms`,
    );

    // Stream. Sample RSS meanwhile; the kernel's high-water mark (VmHWM) backs it up.
    await api.resetStats();
    await api.profileStart();
    const benchLoop = loopDelayMonitor();
    const endCpu = cpuWindow(api.pid, pg?.postmasterPid ?? null);
    let peakDuringStream = subscribedIdle ?? 0;
    const sampler = setInterval(() => {
      const m = api!.memory();
      if (m && m.rssMB > peakDuringStream) peakDuringStream = m.rssMB;
    }, 25);
    t = performance.now();
    for (const s of subs) s.liveAtRelease = s.sawRunning;
    fake.release();
    const streamBudget = cfg.chunks * cfg.intervalMs + 120_000;
    await Promise.race([finished, delay(streamBudget)]);
    const streamSeconds = (performance.now() - t) / 1000;
    clearInterval(sampler);
    const cpu = endCpu();
    benchLoop.disable();
    const stats = await api.stats().catch(() => null);
    const mem = api.memory();
    const profFile = await api.profileStop(`fanout-${kind}`);
    for (const { s, recv, payload } of deferred) handle(s, recv, payload());
    for (const { recv, text, createdAt } of received) {
      let oldest = Infinity;
      for (const m of text.matchAll(STAMP)) {
        const sent = Number(m[1]);
        samples.perChunk.push(recv - sent);
        if (sent < oldest) oldest = sent;
      }
      if (oldest !== Infinity) samples.perEvent.push(recv - oldest);
      samples.sinceCreated.push(recv - Date.parse(createdAt));
    }
    const profile = profFile ? summarizeProfile(profFile) : null;

    const gated = fake.requests.find((r) => r.gated);
    const expected = gated?.text ?? '';
    const exact = subs.filter((s) => s.status === 'SUCCEEDED' && s.outOfOrder === 0 && s.text === expected).length;
    for (const s of subs) if (s.error) errors.push(s.error);
    const bad = subs.filter((s) => s.status !== 'SUCCEEDED' || s.text !== expected).length;
    if (bad) errors.push(`${bad} subscriber(s) did not receive exactly the provider's text and a SUCCEEDED status`);
    ctx.log(`  ${kind}: stream done in ${streamSeconds.toFixed(1)} s, ${exact}/${connected.length} subscribers got every token exactly once, in order`);

    return {
      database: kind === 'postgresql' ? `PostgreSQL ${pg!.info.version.split(' ')[0]} (pg-boss, LISTEN/NOTIFY)` : 'PGlite (embedded, in-process queue and bus)',
      subscribers: cfg.subscribers,
      connected: connected.length,
      completeAndExact: exact,
      liveAtRelease: subs.filter((s) => s.liveAtRelease).length,
      apiCpuMicrosPerDelivery: (() => {
        const deliveries = subs.reduce((n, s) => n + s.tokenEvents, 0) + 3 * subs.length; // + the attempt's LOG, USAGE and final STATUS
        return cpu.apiSeconds !== null && deliveries ? round((1e6 * cpu.apiSeconds) / deliveries, 1) : null;
      })(),
      chunks: cfg.chunks,
      chunkIntervalMs: cfg.intervalMs,
      tokenEventsPerSubscriber: roundSummary(summarize(subs.map((s) => s.tokenEvents))),
      latencyPerChunk: roundSummary(summarize(samples.perChunk)),
      latencyPerEvent: roundSummary(summarize(samples.perEvent)),
      latencySinceCreatedAt: roundSummary(summarize(samples.sinceCreated)),
      memoryMB: {
        firstEverStartPeak: firstStartPeak === null ? null : round(firstStartPeak, 1),
        startupPeak: startupPeak === null ? null : round(startupPeak, 1),
        afterStartup: afterStartup === null ? null : round(afterStartup, 1),
        afterWarmup: afterWarmup === null ? null : round(afterWarmup, 1),
        connectedIdle: connectedIdle === null ? null : round(connectedIdle, 1),
        heapUsedWarm: round(heapWarm, 1),
        heapUsedConnected: round(heapConnected, 1),
        heapUsedSubscribed: round(heapSubscribed, 1),
        subscribedIdle: subscribedIdle === null ? null : round(subscribedIdle, 1),
        peakDuringStream: round(peakDuringStream, 1),
        processPeak: mem ? round(mem.peakRssMB, 1) : null,
        heapUsedAfterStream: stats ? round(stats.heapUsedMB, 1) : null,
      },
      timingsSeconds: { connect: round(connectSeconds), subscribe: round(subscribeSeconds), stream: round(streamSeconds) },
      cpuDuringStream: cpu,
      apiEventLoopDelayP99Ms: stats ? round(stats.eventLoopDelayMs.p99) : null,
      benchEventLoopDelayP99Ms: round(benchLoop.percentile(99)),
      fakeMaxLateMs: round(gated?.maxLateMs ?? NaN),
      errors: [...new Set(errors)].slice(0, 5),
      apiProfile: profile,
    };
  } finally {
    await mapLimit(subs, 100, async (s) => {
      await s.client.dispose();
    });
    await api?.stop();
    await fake.close();
    if (pg && dbName) await pg.dropDatabase(dbName);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
}

interface FloorResult {
  subscribers: number;
  messagesPerSubscriber: Summary;
  latencyPerChunk: Summary;
  serverCpuMicrosPerDelivery: number | null;
  cpuDuringStream: CpuWindow;
}

/**
 * The same clients against a bare graphql-transport-ws server (bench/lib/ws-floor.ts) sending one message
 * per chunk on the provider's schedule: the best the API could do on this machine, with these clients.
 */
async function runFloor(
  ctx: BenchContext,
  cfg: { subscribers: number; chunks: number; intervalMs: number; connectParallelism: number; client: FanoutClientKind },
): Promise<FloorResult> {
  const server = await startFloorServer();
  const clients: FanoutClient[] = [];
  try {
    const received: { recv: number; payload: () => FormattedExecutionResult<Record<string, unknown>, unknown> }[] = [];
    const counts: number[] = [];
    let done = 0;
    let allDone!: () => void;
    const finished = new Promise<void>((r) => (allDone = r));
    await mapLimit(Array.from({ length: cfg.subscribers }), cfg.connectParallelism, async (_, i) => {
      const client = await connectFanoutClient(cfg.client, server.wsUrl, 'unused', 60_000);
      clients.push(client);
      counts[i] = 0;
      client.subscribe(
        RUN_EVENTS,
        { runId: 'floor', afterSeq: 0 },
        {
          next: (recv, payload) => {
            counts[i]!++;
            received.push({ recv, payload });
          },
          error: () => ++done === cfg.subscribers && allDone(),
          complete: () => ++done === cfg.subscribers && allDone(),
        },
      );
    });
    await server.subscribed(cfg.subscribers);
    await delay(200);
    const endCpu = cpuWindow(server.pid, null);
    await Promise.all([server.stream(cfg.chunks, cfg.intervalMs), Promise.race([finished, delay(cfg.chunks * cfg.intervalMs + 60_000)])]);
    const cpu = endCpu();
    const perChunk: number[] = [];
    for (const { recv, payload } of received) {
      const text = (payload().data!.runEvents as WireEvent).text!;
      for (const m of text.matchAll(STAMP)) perChunk.push(recv - Number(m[1]));
    }
    ctx.log(`  transport floor: ${received.length}/${cfg.subscribers * cfg.chunks} messages delivered by a bare graphql-transport-ws server`);
    return {
      subscribers: cfg.subscribers,
      messagesPerSubscriber: roundSummary(summarize(counts)),
      latencyPerChunk: roundSummary(summarize(perChunk)),
      serverCpuMicrosPerDelivery: cpu.apiSeconds !== null && received.length ? round((1e6 * cpu.apiSeconds) / received.length, 1) : null,
      cpuDuringStream: cpu,
    };
  } finally {
    await mapLimit(clients, 100, async (c) => {
      await c.dispose();
    });
    await server.stop();
  }
}

export const fanout: Benchmark = {
  name: 'fanout',
  description: '1,000 graphql-ws subscribers on one streaming run: delivery latency and API memory',
  async run(ctx): Promise<BenchResult> {
    const cfg = {
      subscribers: env('BENCH_FANOUT_SUBSCRIBERS', ctx.quick ? 200 : 1000),
      chunks: env('BENCH_FANOUT_CHUNKS', ctx.quick ? 50 : 150),
      intervalMs: env('BENCH_FANOUT_INTERVAL_MS', 20),
      connectParallelism: 50,
      gateMaxMs: env('BENCH_FANOUT_GATE_MAX_MS', 40_000),
      client: fanoutClientKind(),
    };
    const which = (process.env.BENCH_FANOUT_DATABASES ?? 'postgresql,pglite').split(',').map((s) => s.trim()) as ('postgresql' | 'pglite')[];
    const variants: VariantResult[] = [];
    for (const kind of which) variants.push(await runVariant(ctx, kind, cfg));
    const floor = process.env.BENCH_FANOUT_FLOOR === '0' ? null : await runFloor(ctx, cfg);

    const tables: Table[] = [
      {
        title: `Delivery latency (ms), provider send → subscriber receive, ${cfg.subscribers} subscribers, ${cfg.chunks} chunks every ${cfg.intervalMs} ms`,
        columns: ['database', 'measure', 'samples', 'p50', 'p90', 'p99', 'max', 'mean'],
        rows: variants.flatMap((v) => [
          [v.database, 'per chunk (each stamp)', v.latencyPerChunk.n, v.latencyPerChunk.p50, v.latencyPerChunk.p90, v.latencyPerChunk.p99, v.latencyPerChunk.max, v.latencyPerChunk.mean],
          ['', 'per TOKEN event (oldest stamp)', v.latencyPerEvent.n, v.latencyPerEvent.p50, v.latencyPerEvent.p90, v.latencyPerEvent.p99, v.latencyPerEvent.max, v.latencyPerEvent.mean],
          ['', 'event createdAt → receive', v.latencySinceCreatedAt.n, v.latencySinceCreatedAt.p50, v.latencySinceCreatedAt.p90, v.latencySinceCreatedAt.p99, v.latencySinceCreatedAt.max, v.latencySinceCreatedAt.mean],
        ]),
      },
      ...(floor
        ? [
            {
              title: `Transport floor: the same ${floor.subscribers} clients, a bare graphql-transport-ws server (no GraphQL, no database), one message per chunk`,
              columns: ['measure', 'samples', 'p50', 'p90', 'p99', 'max', 'mean', 'server µs/delivery', 'bench cpu s', 'others cpu s'],
              rows: [
                [
                  'per chunk (send → receive)',
                  floor.latencyPerChunk.n,
                  floor.latencyPerChunk.p50,
                  floor.latencyPerChunk.p90,
                  floor.latencyPerChunk.p99,
                  floor.latencyPerChunk.max,
                  floor.latencyPerChunk.mean,
                  floor.serverCpuMicrosPerDelivery,
                  floor.cpuDuringStream.benchSeconds,
                  floor.cpuDuringStream.otherSeconds,
                ],
              ],
            } satisfies Table,
          ]
        : []),
      {
        title: 'API process memory (RSS, MB) and load',
        columns: ['database', 'start-up peak', 'after start', 'after warm-up', 'connected', 'subscribed', 'peak in stream', 'process peak', 'events/sub', 'exact subs', 'API cpu s', 'API µs/delivery', 'others cpu s', 'API loop p99', 'bench loop p99'],
        rows: variants.map((v) => [
          v.database,
          v.memoryMB.startupPeak,
          v.memoryMB.afterStartup,
          v.memoryMB.afterWarmup,
          v.memoryMB.connectedIdle,
          v.memoryMB.subscribedIdle,
          v.memoryMB.peakDuringStream,
          v.memoryMB.processPeak,
          v.tokenEventsPerSubscriber.p50,
          `${v.completeAndExact}/${v.subscribers}`,
          v.cpuDuringStream.apiSeconds,
          v.apiCpuMicrosPerDelivery,
          v.cpuDuringStream.otherSeconds,
          v.apiEventLoopDelayP99Ms,
          v.benchEventLoopDelayP99Ms,
        ]),
      },
    ];
    for (const v of variants) {
      if (!v.apiProfile) continue;
      tables.push({
        title: profileTitle(v.apiProfile, `during the stream, ${v.database}`),
        columns: [v.apiProfile.unit, '%', 'where'],
        rows: v.apiProfile.byPackage.map((r) => [r.amount, r.percent, r.name]),
      });
    }
    // A figure from fewer subscribers than asked for, or from subscribers that missed tokens, meets nothing.
    const short = (v: (typeof variants)[number]) =>
      v.connected < v.subscribers || v.completeAndExact < v.subscribers ? ` (only ${v.completeAndExact} of ${v.subscribers} subscribers complete)` : '';
    const targets: Target[] = variants.flatMap((v) => [
      { name: `p99 delivery latency, ${v.database.split(' ')[0]}`, target: '<= 50 ms', actual: `${v.latencyPerChunk.p99} ms${short(v)}`, met: !short(v) && v.latencyPerChunk.p99 <= 50 },
      { name: `API process peak RSS, ${v.database.split(' ')[0]}`, target: '<= 400 MB', actual: `${v.memoryMB.processPeak} MB${short(v)}`, met: !short(v) && (v.memoryMB.processPeak ?? Infinity) <= 400 },
    ]);
    const notes = [
      'Latency per chunk: the fake provider stamps each chunk with its send time; subscribers in this process read the same clock on receipt.',
      cfg.client === 'lean'
        ? 'Subscribers: lean graphql-transport-ws clients on `ws` (receive time taken on arrival, messages parsed and checked after the stream); BENCH_FANOUT_CLIENT=graphql-ws uses the graphql-ws client.'
        : 'Subscribers: the graphql-ws client (every message parsed and dispatched on arrival, which delays the messages waiting in the other sockets); the default is the lean client.',
      'Memory: /proc/<api pid>/status; "process peak" is VmHWM (kernel high-water mark since the process started, start-up included).',
    ];
    if (floor) {
      notes.push(
        `Transport floor: ${floor.subscribers} sockets and these same clients on this machine, one message per chunk (the API sends as many when each chunk is its own event, fewer when chunks merge); the API's latency can at best approach it (BENCH_FANOUT_FLOOR=0 skips it).`,
      );
    }
    for (const v of variants) {
      if (v.liveAtRelease < v.connected) {
        notes.push(`${v.database}: only ${v.liveAtRelease}/${v.connected} subscribers were live when the stream started (the gate waits at most ${cfg.gateMaxMs} ms); the others are left out of the latency figures.`);
      }
      if (v.memoryMB.firstEverStartPeak !== null) {
        notes.push(`${v.database}: the very first start on an empty data directory (PGlite initdb + migrations) peaked at ${v.memoryMB.firstEverStartPeak} MB; the measured process reopened that directory.`);
      }
      for (const e of v.errors) notes.push(`${v.database}: ${e}`);
      const c = v.cpuDuringStream;
      const cores = c.otherSeconds !== null ? c.otherSeconds / c.wallSeconds : 0;
      if (cores > 0.25) notes.push(`WARNING: during the ${v.database} stream other processes kept ${cores.toFixed(2)} cores busy on average; latencies are inflated by CPU contention.`);
    }
    return {
      name: 'fanout',
      title: 'Fan-out: one run, many graphql-ws subscribers',
      config: { ...cfg, databases: which, api: 'WORKER_CONCURRENCY/ORG_CONCURRENCY at their defaults', subscriberConnections: 'one WebSocket per subscriber, one API token (WS_CONNECTIONS_PER_USER raised to subscribers + 50)' },
      figures: { variants, floor },
      tables,
      targets,
      notes,
    };
  },
};
