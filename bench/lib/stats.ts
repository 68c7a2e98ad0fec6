import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Percentiles by the nearest-rank method over a sorted copy; every figure in milliseconds unless named. */
export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  min: number;
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(values: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return {
    n,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: n ? sorted[n - 1]! : NaN,
    min: n ? sorted[0]! : NaN,
    mean: n ? sum / n : NaN,
  };
}

export const round = (v: number, digits = 2) => (Number.isFinite(v) ? Number(v.toFixed(digits)) : v);

export function roundSummary(s: Summary, digits = 2): Summary {
  return {
    n: s.n,
    p50: round(s.p50, digits),
    p90: round(s.p90, digits),
    p99: round(s.p99, digits),
    max: round(s.max, digits),
    mean: round(s.mean, digits),
    min: round(s.min, digits),
  };
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export const wallNow = () => performance.timeOrigin + performance.now();
export const perfToWall = (perfMs: number) => performance.timeOrigin + perfMs;

/**
 * Event-loop delay in milliseconds beyond the monitor's own timer. Node's histogram records the whole
 * interval between the timer's callbacks, so an idle loop reads `resolutionMs`, not 0: that is taken off.
 */
export function loopDelayMonitor(resolutionMs = 5) {
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  histogram.enable();
  const excess = (ns: number) => Math.max(0, ns / 1e6 - resolutionMs);
  return {
    percentile: (p: number) => excess(histogram.percentile(p)),
    max: () => excess(histogram.max),
    reset: () => histogram.reset(),
    disable: () => histogram.disable(),
  };
}
