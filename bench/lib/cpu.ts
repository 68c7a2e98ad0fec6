/**
 * CPU accounting from /proc (Linux): who used the machine during a measurement. The machine may be shared
 * with other work; `others` makes that visible instead of silently inflating the latencies.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';

const TICKS = 100; // USER_HZ

function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime+stime of one process (all its threads); with `children`, plus its reaped children's. */
export function processCpuSeconds(pid: number, children = false): number | null {
  const f = statFields(pid);
  if (!f) return null;
  let t = Number(f[11]) + Number(f[12]);
  if (children) t += Number(f[13]) + Number(f[14]);
  return t / TICKS;
}

/** A PostgreSQL server: the postmaster, its live backends, and the backends that already exited. */
export function postgresCpuSeconds(postmasterPid: number | null): number | null {
  if (!postmasterPid || !existsSync('/proc')) return null;
  let total = processCpuSeconds(postmasterPid, true);
  if (total === null) return null;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === postmasterPid) continue;
    const f = statFields(Number(entry));
    if (f && Number(f[1]) === postmasterPid) total += (Number(f[11]) + Number(f[12])) / TICKS;
  }
  return total;
}

/** Busy and total CPU seconds of the whole machine (all cores) since boot. */
export function machineCpuSeconds(): { busy: number; total: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: (total - idle) / TICKS, total: total / TICKS };
  } catch {
    return null;
  }
}

export interface CpuWindow {
  wallSeconds: number;
  apiSeconds: number | null;
  postgresSeconds: number | null;
  benchSeconds: number;
  /** CPU seconds every other process on the machine used meanwhile. */
  otherSeconds: number | null;
  machineBusyPercent: number | null;
}

/** The CPU seconds of the benchmark's own helper processes (e.g. a fake provider), 0 for one that is gone. */
const helpersCpu = (pids: number[]) => pids.reduce((sum, pid) => sum + (processCpuSeconds(pid) ?? 0), 0);

/**
 * Starts a window; calling the returned function closes it. `helperPids`: processes of the benchmark
 * itself (a fake provider), counted in `benchSeconds` with the load generator.
 */
export function cpuWindow(apiPid: number | null, postmasterPid: number | null, helperPids: number[] = []): () => CpuWindow {
  const t0 = performance.now();
  const api0 = apiPid ? processCpuSeconds(apiPid) : null;
  const pg0 = postgresCpuSeconds(postmasterPid);
  const helpers0 = helpersCpu(helperPids);
  const bench0 = process.cpuUsage();
  const m0 = machineCpuSeconds();
  return () => {
    const api1 = apiPid ? processCpuSeconds(apiPid) : null;
    const pg1 = postgresCpuSeconds(postmasterPid);
    const b = process.cpuUsage(bench0);
    const m1 = machineCpuSeconds();
    const apiSeconds = api0 !== null && api1 !== null ? api1 - api0 : null;
    const postgresSeconds = pg0 !== null && pg1 !== null ? pg1 - pg0 : null;
    const benchSeconds = (b.user + b.system) / 1e6 + helpersCpu(helperPids) - helpers0;
    const busy = m0 && m1 ? m1.busy - m0.busy : null;
    const total = m0 && m1 ? m1.total - m0.total : null;
    const r2 = (v: number | null) => (v === null ? null : Number(v.toFixed(2)));
    return {
      wallSeconds: r2((performance.now() - t0) / 1000)!,
      apiSeconds: r2(apiSeconds),
      postgresSeconds: r2(postgresSeconds),
      benchSeconds: r2(benchSeconds)!,
      otherSeconds: busy !== null ? r2(Math.max(0, busy - (apiSeconds ?? 0) - (postgresSeconds ?? 0) - benchSeconds)) : null,
      machineBusyPercent: busy !== null && total ? r2((100 * busy) / total) : null,
    };
  };
}
