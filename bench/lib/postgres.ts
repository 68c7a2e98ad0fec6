/**
 * PostgreSQL for the benchmarks: a throwaway cluster (initdb in a temporary directory, a free port on
 * 127.0.0.1, stopped and deleted at the end) unless BENCH_DATABASE_URL names a server to use. Each
 * benchmark gets a fresh database of its own on that server, dropped when it is done.
 */
import { execFile as execFileCb, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { QueryResult } from 'pg';
import { pg } from './deps.js';

const execFile = promisify(execFileCb);

export interface PostgresInfo {
  source: 'throwaway cluster' | 'BENCH_DATABASE_URL';
  version: string;
  /** Settings that differ from a stock server and matter to the figures. */
  settings: Record<string, string>;
  /** Whether pg_stat_statements could be enabled (query counts per level). */
  statStatements: boolean;
}

export interface PostgresServer {
  info: PostgresInfo;
  /** Admin connection string (database `postgres`). */
  adminUrl: string;
  /** postmaster pid when we started the server (to account its CPU time), else null. */
  postmasterPid: number | null;
  createDatabase(name: string): Promise<string>;
  dropDatabase(name: string): Promise<void>;
  stop(): Promise<void>;
}

function findPgBin(): string {
  if (process.env.BENCH_PG_BIN) return process.env.BENCH_PG_BIN;
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) throw new Error('PostgreSQL binaries not found under /usr/lib/postgresql; install `postgresql` or set BENCH_DATABASE_URL');
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error('no initdb under /usr/lib/postgresql/*/bin');
  return join(base, versions[0]!, 'bin');
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function adminQuery(url: string, sql: string): Promise<QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function serverVersion(url: string): Promise<string> {
  const r = await adminQuery(url, 'SHOW server_version');
  return String(r.rows[0].server_version);
}

function managedDatabases(adminUrl: string, statStatements: boolean) {
  return {
    async createDatabase(name: string) {
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await adminQuery(adminUrl, `CREATE DATABASE "${name}"`);
      const url = withDatabase(adminUrl, name);
      if (statStatements) await adminQuery(url, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements').catch(() => {});
      return url;
    },
    async dropDatabase(name: string) {
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => {});
    },
  };
}

/** Starts a throwaway cluster, or wraps BENCH_DATABASE_URL. */
export async function startPostgres(log: (line: string) => void): Promise<PostgresServer> {
  const given = process.env.BENCH_DATABASE_URL;
  if (given) {
    const version = await serverVersion(given);
    let statStatements = false;
    try {
      const r = await adminQuery(given, "SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'");
      statStatements = String(r.rows[0]?.setting ?? '').includes('pg_stat_statements');
    } catch {
      statStatements = false;
    }
    const settings: Record<string, string> = {};
    for (const name of ['fsync', 'synchronous_commit', 'shared_buffers', 'max_connections']) {
      const r = await adminQuery(given, `SELECT setting, unit FROM pg_settings WHERE name = '${name}'`);
      settings[name] = `${r.rows[0]?.setting ?? '?'}${r.rows[0]?.unit ? ` ${r.rows[0].unit}` : ''}`;
    }
    log(`PostgreSQL ${version} from BENCH_DATABASE_URL`);
    return {
      info: { source: 'BENCH_DATABASE_URL', version, settings, statStatements },
      adminUrl: given,
      postmasterPid: null,
      ...managedDatabases(given, statStatements),
      async stop() {},
    };
  }

  const bin = findPgBin();
  const dir = mkdtempSync(join(tmpdir(), 'hub-bench-pg-'));
  const root = process.getuid?.() === 0;
  const runAs = (cmd: string, args: string[]) =>
    root ? execFile('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]) : execFile(join(bin, cmd), args);
  if (root) {
    const ids = await execFile('id', ['-u', 'postgres']).catch(() => null);
    const gids = await execFile('id', ['-g', 'postgres']).catch(() => null);
    if (!ids || !gids) throw new Error('running as root but there is no `postgres` user to run the server as');
    chownSync(dir, Number(ids.stdout.trim()), Number(gids.stdout.trim()));
  }
  const port = await freePort();
  const fsync = process.env.BENCH_PG_FSYNC === 'on' ? 'on' : 'off';
  const settings: Record<string, string> = {
    fsync,
    synchronous_commit: 'on',
    max_connections: '300',
    shared_buffers: '128MB',
    shared_preload_libraries: 'pg_stat_statements',
  };
  const data = join(dir, 'data');
  await runAs('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-instructions']);
  const opts = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`),
    '-c pg_stat_statements.track=all',
  ].join(' ');
  try {
    await runAs('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', '-o', opts, 'start']);
  } catch (err) {
    const logText = existsSync(join(dir, 'server.log')) ? readFileSync(join(dir, 'server.log'), 'utf8').slice(-2000) : '';
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not start PostgreSQL: ${(err as Error).message}\n${logText}`);
  }
  const adminUrl = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  const version = await serverVersion(adminUrl);
  const pidFile = join(data, 'postmaster.pid');
  const postmasterPid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').split('\n')[0]) : null;
  log(`PostgreSQL ${version}: throwaway cluster in ${dir}, port ${port}, fsync=${fsync}`);
  // If this process dies without cleaning up (SIGKILL, a crash), a detached watchdog stops the cluster
  // and deletes its directory once our pid is gone; on a normal stop we end the watchdog ourselves.
  const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  const pgCtl = `${root ? 'runuser -u postgres -- ' : ''}${q(join(bin, 'pg_ctl'))} -D ${q(data)} -m immediate -w stop`;
  const watchdog = spawn('sh', ['-c', `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ${pgCtl} >/dev/null 2>&1; rm -rf ${q(dir)}`], {
    detached: true,
    stdio: 'ignore',
  });
  watchdog.unref();
  let stopped = false;
  return {
    info: { source: 'throwaway cluster', version, settings, statStatements: true },
    adminUrl,
    postmasterPid,
    ...managedDatabases(adminUrl, true),
    async stop() {
      if (stopped) return;
      stopped = true;
      watchdog.kill();
      await runAs('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop']).catch(() =>
        runAs('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']).catch(() => {}),
      );
      rmSync(dir, { recursive: true, force: true });
      log('PostgreSQL stopped and its directory removed');
    },
  };
}

/** Top statements by calls since the last reset (needs pg_stat_statements in the database). */
export async function topStatements(url: string, limit = 8) {
  const r = await adminQuery(
    url,
    `SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,
            regexp_replace(left(query, 4000), '\\s+', ' ', 'g') AS query
       FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      ORDER BY calls DESC LIMIT ${limit}`,
  );
  return r.rows.map((row) => ({
    calls: Number(row.calls),
    totalMs: Number(row.total_ms),
    meanMs: Number(row.mean_ms),
    query: summarizeSql(String(row.query)),
  }));
}

/** All statement executions since the last reset, and how many of them were pg-boss's. */
export async function statementTotals(url: string) {
  const r = await adminQuery(
    url,
    `SELECT coalesce(sum(calls), 0) AS calls,
            coalesce(sum(calls) FILTER (WHERE query ~ 'pgboss\\.'), 0) AS pgboss
       FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND query !~* '^\\s*(BEGIN|COMMIT|ROLLBACK)'`,
  );
  return { calls: Number(r.rows[0].calls), pgBoss: Number(r.rows[0].pgboss) };
}

export async function resetStatements(url: string) {
  await adminQuery(url, 'SELECT pg_stat_statements_reset()');
}

/** What a lock sampler saw: how often statements waited for a lock, how many at once, and the longest wait. */
export interface LockWaits {
  samples: number;
  /** Samples in which at least one statement waited for a lock. */
  samplesWaiting: number;
  mostAtOnce: number;
  longestMs: number;
}

/**
 * Samples the database's sessions every `intervalMs` on a connection of its own until `stop()`: the
 * statements waiting for a lock (a row, an advisory lock…). Lock waits do not show as CPU; a deadlock, say,
 * shows here as statements waiting up to `deadlock_timeout` (1 s).
 */
export async function lockWaitSampler(url: string, intervalMs = 250): Promise<{ stop(): Promise<LockWaits> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const seen: LockWaits = { samples: 0, samplesWaiting: 0, mostAtOnce: 0, longestMs: 0 };
  let sampling: Promise<void> = Promise.resolve();
  const sample = async () => {
    const r = await client.query(
      `SELECT count(*)::int AS n, coalesce(max(extract(epoch FROM clock_timestamp() - state_change) * 1000), 0)::float8 AS longest
         FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    );
    const { n, longest } = r.rows[0] as { n: number; longest: number };
    seen.samples++;
    if (n > 0) seen.samplesWaiting++;
    seen.mostAtOnce = Math.max(seen.mostAtOnce, n);
    seen.longestMs = Math.max(seen.longestMs, Math.round(longest));
  };
  const timer = setInterval(() => {
    sampling = sampling.then(sample).catch(() => {});
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await sampling;
      await client.end();
      return seen;
    },
  };
}

/** A one-line label for a statement: its verb and main table, plus pg-boss's own markers. */
function summarizeSql(q: string): string {
  const s = q.replace(/\s+/g, ' ').trim();
  if (/pgboss\.job/.test(s) && /FOR UPDATE SKIP LOCKED/i.test(s)) return 'pg-boss fetch (SELECT … FOR UPDATE SKIP LOCKED → UPDATE job)';
  if (/pgboss\.job/.test(s) && /completed_on = now\(\)/.test(s)) return 'pg-boss complete (UPDATE job state=completed)';
  if (/INSERT INTO pgboss\.job/i.test(s)) return 'pg-boss send (INSERT job)';
  return s.length > 110 ? `${s.slice(0, 107)}…` : s;
}
