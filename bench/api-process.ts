/**
 * One API process for the benchmarks, started by bench/lib/api-child.ts: createRuntime + the worker +
 * createServer on 127.0.0.1, configured from its environment (DATABASE_URL for PostgreSQL, DATA_DIR for
 * PGlite). It runs alone so its memory and CPU can be measured without the load generator's. Talks to the
 * parent over IPC: it announces {type: 'ready', url}, then answers {id, cmd} requests (seed, stats,
 * resetStats, stop). Nothing here changes the API: it is the same code `pnpm start` runs, minus the web UI.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { loadConfig } from '../api/src/lib/env.js';
import { createLogger } from '../api/src/lib/logger.js';
import { LocalRunQueue } from '../api/src/orchestrator/queue.js';
import { closeRuntime, createRuntime } from '../api/src/runtime.js';
import { createServer } from '../api/src/server.js';
import { given } from '../api/test/factories.js';
import { loopDelayMonitor } from './lib/stats.js';

if (!process.send) {
  console.error('bench/api-process.ts is started by the benchmarks (it needs an IPC channel)');
  process.exit(2);
}
const send = (msg: unknown) => process.send!(msg);

const config = loadConfig(process.env, { dotenv: false });
const logger = createLogger(config.LOG_LEVEL);
// Diagnostic only (BENCH_QUEUE=local): the in-process queue on PostgreSQL, to isolate pg-boss's share of the
// overhead. Valid for this single process; not a supported deployment mode.
const queue =
  process.env.BENCH_QUEUE === 'local' ? new LocalRunQueue({ concurrency: config.WORKER_CONCURRENCY, perOrg: config.ORG_CONCURRENCY }) : undefined;
// The rate limiter stays in the path (its counters are written on every request), but with budgets no
// benchmark reaches: the defaults (e.g. 120 runs a minute per organization) would turn load into errors.
const unlimited = { points: 10_000_000 };
const rt = await createRuntime(config, logger, {
  queue,
  rateLimits: { rules: { apiUser: unlimited, apiAnonymous: unlimited, runsOrg: unlimited } },
});
await rt.orchestrator.startWorker();
const server = await createServer(rt);
const url = await server.listen(0, '127.0.0.1');

const eld = loopDelayMonitor();
let eluMark = performance.eventLoopUtilization();
let cpuMark = process.cpuUsage();

async function seed(orgs: number) {
  const make = given({ rt, url });
  const out = [];
  for (let i = 0; i < orgs; i++) {
    const org = await make.anOrganization();
    const project = await make.aProject(org);
    out.push({ orgId: org.id, orgGid: org.gid, userId: org.owner.id, token: org.owner.token, projectGid: project.gid });
  }
  return out;
}

function stats() {
  const m = process.memoryUsage();
  const elu = performance.eventLoopUtilization(eluMark);
  const cpu = process.cpuUsage(cpuMark);
  return {
    rssMB: m.rss / 2 ** 20,
    heapUsedMB: m.heapUsed / 2 ** 20,
    heapTotalMB: m.heapTotal / 2 ** 20,
    externalMB: m.external / 2 ** 20,
    arrayBuffersMB: m.arrayBuffers / 2 ** 20,
    eventLoopUtilization: elu.utilization,
    eventLoopDelayMs: { p50: eld.percentile(50), p99: eld.percentile(99), max: eld.max() },
    cpuMs: { user: cpu.user / 1000, system: cpu.system / 1000 },
  };
}

function resetStats() {
  eld.reset();
  eluMark = performance.eventLoopUtilization();
  cpuMark = process.cpuUsage();
}

// CPU profile (BENCH_API_CPU_PROF), allocation profile (BENCH_API_ALLOC_PROF) or live-object profile
// (BENCH_API_LIVE_PROF) of a window: started and stopped by the parent around what it measures. The
// allocation profile samples every 32 KB allocated, garbage included, so it shows what makes the young
// generation fill (and scavenges run). The live profile samples every 4 KB but keeps only what is still
// alive when it is taken, `liveAtMs` into the window (while runs are in flight) after a full collection:
// what was allocated during the window and survives, which is what each scavenge has to copy.
type ProfileKind = 'cpu' | 'alloc' | 'live';
let profiler: { session: Session; kind: ProfileKind; taken: Promise<unknown> | null } | null = null;
async function profileStart(kind: ProfileKind, liveAtMs: number) {
  const session = new Session();
  session.connect();
  if (kind === 'cpu') {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 250 });
    await session.post('Profiler.start');
  } else {
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: kind === 'live' ? 4096 : 32_768,
      includeObjectsCollectedByMajorGC: kind === 'alloc',
      includeObjectsCollectedByMinorGC: kind === 'alloc',
    } as never);
  }
  const state: NonNullable<typeof profiler> = { session, kind, taken: null };
  if (kind === 'live') {
    state.taken = delay(liveAtMs).then(async () => {
      await session.post('HeapProfiler.collectGarbage');
      return (await session.post('HeapProfiler.stopSampling')).profile;
    });
  }
  profiler = state;
}
async function profileStop(file: string) {
  if (!profiler) return null;
  const { session, kind, taken } = profiler;
  const profile = taken
    ? await taken
    : kind === 'cpu'
      ? (await session.post('Profiler.stop')).profile
      : (await session.post('HeapProfiler.stopSampling')).profile;
  session.disconnect();
  profiler = null;
  writeFileSync(file, JSON.stringify(profile));
  return file;
}

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  const force = setTimeout(() => process.exit(1), 20_000);
  force.unref();
  await server.close().catch(() => {});
  await closeRuntime(rt).catch(() => {});
}

process.on('message', (raw) => {
  const msg = raw as { id: number; cmd: string; args?: Record<string, unknown> };
  void (async () => {
    try {
      let result: unknown;
      switch (msg.cmd) {
        case 'seed':
          result = await seed(Number(msg.args?.orgs ?? 1));
          break;
        case 'stats':
          result = stats();
          break;
        case 'resetStats':
          resetStats();
          result = true;
          break;
        case 'profileStart':
          await profileStart((['alloc', 'live'].includes(String(msg.args?.kind)) ? msg.args!.kind : 'cpu') as ProfileKind, Number(msg.args?.liveAtMs ?? 10_000));
          result = true;
          break;
        case 'profileStop':
          result = await profileStop(String(msg.args?.file));
          break;
        case 'stop':
          await stop();
          result = true;
          break;
        default:
          throw new Error(`unknown command ${msg.cmd}`);
      }
      send({ id: msg.id, ok: true, result });
      if (msg.cmd === 'stop') setTimeout(() => process.exit(0), 50);
    } catch (err) {
      send({ id: msg.id, ok: false, error: err instanceof Error ? `${err.message}\n${err.stack}` : String(err) });
    }
  })();
});
process.on('disconnect', () => void stop().then(() => process.exit(0)));

send({ type: 'ready', url, pid: process.pid, database: rt.db.kind, workerConcurrency: config.WORKER_CONCURRENCY });
