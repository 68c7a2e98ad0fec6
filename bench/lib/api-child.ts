/** Parent side of bench/api-process.ts: spawn, IPC requests, and memory read from /proc. */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { buildApi } from '../../scripts/build-api.js';

export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');

export interface SeededOrg {
  orgId: string;
  orgGid: string;
  userId: string;
  token: string;
  projectGid: string;
}

export interface ApiStats {
  rssMB: number;
  heapUsedMB: number;
  heapTotalMB: number;
  externalMB: number;
  arrayBuffersMB: number;
  eventLoopUtilization: number;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  cpuMs: { user: number; system: number };
}

export interface ApiProcess {
  url: string;
  graphqlUrl: string;
  wsUrl: string;
  pid: number;
  database: string;
  /** Memory right after start-up (peak = the start-up high-water mark: migrations, PGlite init). */
  startup: { rssMB: number; peakRssMB: number } | null;
  seed(orgs: number): Promise<SeededOrg[]>;
  stats(): Promise<ApiStats>;
  resetStats(): Promise<void>;
  /**
   * With BENCH_API_CPU_PROF=<dir>: CPU-profile the API process between start and stop; with
   * BENCH_API_ALLOC_PROF=<dir>: sample its allocations instead; with BENCH_API_LIVE_PROF=<dir>: what is still
   * alive BENCH_API_LIVE_PROF_AT_MS (10 s) after the start (else no-ops).
   */
  profileStart(): Promise<void>;
  profileStop(name: string): Promise<string | null>;
  /** Current and peak resident set size from /proc (the kernel's own high-water mark), in MB. */
  memory(): { rssMB: number; peakRssMB: number } | null;
  stop(): Promise<void>;
}

/** Environment every benchmark API process gets; `env` adds the database and provider settings. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  // The system's basics, and product settings a benchmark run may vary (EVENT_HOLD_MS=0 pnpm bench …).
  const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ', 'EVENT_HOLD_MS'];
  const base: NodeJS.ProcessEnv = {};
  for (const k of keep) if (process.env[k] !== undefined) base[k] = process.env[k];
  return {
    ...base,
    NODE_ENV: 'production',
    SESSION_SECRET: randomBytes(32).toString('hex'),
    APP_ORIGIN: 'http://127.0.0.1',
    LOG_LEVEL: process.env.BENCH_API_LOG_LEVEL ?? 'warn',
    SEED_DEMO: 'false',
    ...env,
  };
}

/**
 * bench/api-process.ts compiled as `pnpm build:api` compiles the API (once per benchmark run), into
 * api/dist so that its packages resolve from api/node_modules as the API's own do.
 */
let compiled: Promise<string> | null = null;
const compiledApiProcess = () =>
  (compiled ??= buildApi(['bench/api-process.ts'], 'api/dist/bench').then(() => resolve(repoRoot, 'api/dist/bench/api-process.mjs')));

/** Which profile BENCH_API_CPU_PROF, BENCH_API_ALLOC_PROF or BENCH_API_LIVE_PROF asks for, and where it goes. */
const profiling: { kind: 'cpu' | 'alloc' | 'live'; dir: string } | null = process.env.BENCH_API_CPU_PROF
  ? { kind: 'cpu', dir: process.env.BENCH_API_CPU_PROF }
  : process.env.BENCH_API_ALLOC_PROF
    ? { kind: 'alloc', dir: process.env.BENCH_API_ALLOC_PROF }
    : process.env.BENCH_API_LIVE_PROF
      ? { kind: 'live', dir: process.env.BENCH_API_LIVE_PROF }
      : null;
const PROFILE_SUFFIX = { cpu: 'cpuprofile', alloc: 'heapprofile', live: 'live.heapprofile' } as const;

export async function startApiProcess(env: Record<string, string>, log: (line: string) => void): Promise<ApiProcess> {
  const script = await compiledApiProcess();
  const child: ChildProcess = fork(script, [], {
    cwd: repoRoot,
    env: childEnv(env),
    // As `pnpm start` runs the API (package.json): compiled JavaScript, the same V8 flags.
    // BENCH_API_NODE_FLAGS adds flags for a diagnosis (`--trace-gc`, say); the figures are taken without.
    execArgv: ['--max-semi-space-size=32', '--enable-source-maps', ...(process.env.BENCH_API_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let exited = false;
  const ready = new Promise<{ url: string; pid: number; database: string }>((resolveReady, rejectReady) => {
    child.on('message', (raw) => {
      const msg = raw as { type?: string; id?: number; ok?: boolean; result?: unknown; error?: string; url?: string; pid?: number; database?: string };
      if (msg.type === 'ready') return resolveReady({ url: msg.url!, pid: msg.pid!, database: msg.database! });
      const p = msg.id !== undefined ? pending.get(msg.id) : undefined;
      if (!p) return;
      pending.delete(msg.id!);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`api process: ${msg.error}`));
    });
    child.on('exit', (code, signal) => {
      exited = true;
      const err = new Error(`api process exited (code ${code}, signal ${signal})`);
      rejectReady(err);
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    });
  });
  const timeout = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const info = await ready.finally(() => clearTimeout(timeout));
  const memory = () => {
    const file = `/proc/${info.pid}/status`;
    if (!existsSync(file)) return null;
    const text = readFileSync(file, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return { rssMB: kb('VmRSS') / 1024, peakRssMB: kb('VmHWM') / 1024 };
  };
  const startup = memory();
  log(`API process ${info.pid} on ${info.url} (${info.database}), RSS ${startup?.rssMB.toFixed(0)} MB, start-up peak ${startup?.peakRssMB.toFixed(0)} MB`);

  const call = <T>(cmd: string, args?: Record<string, unknown>, timeoutMs = 120_000) =>
    new Promise<T>((res, rej) => {
      if (exited) return rej(new Error('api process has exited'));
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        rej(new Error(`api process: ${cmd} timed out`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          res(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          rej(e);
        },
      });
      child.send({ id, cmd, args });
    });

  return {
    url: info.url,
    graphqlUrl: `${info.url}/graphql`,
    wsUrl: `${info.url.replace('http', 'ws')}/graphql`,
    pid: info.pid,
    database: info.database,
    seed: (orgs) => call<SeededOrg[]>('seed', { orgs }),
    stats: () => call<ApiStats>('stats'),
    resetStats: () => call<void>('resetStats'),
    async profileStart() {
      if (profiling) await call('profileStart', { kind: profiling.kind, liveAtMs: Number(process.env.BENCH_API_LIVE_PROF_AT_MS ?? 10_000) });
    },
    async profileStop(name) {
      if (!profiling) return null;
      mkdirSync(profiling.dir, { recursive: true });
      return call<string>('profileStop', { file: resolve(profiling.dir, `${name}.${PROFILE_SUFFIX[profiling.kind]}`) });
    },
    startup,
    memory,
    async stop() {
      if (exited) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      await call('stop', undefined, 30_000).catch(() => child.kill('SIGKILL'));
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(killer);
    },
  };
}
