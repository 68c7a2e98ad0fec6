import { cpus, freemem, loadavg, totalmem, release, platform, arch } from 'node:os';

export interface Table {
  title: string;
  columns: string[];
  rows: (string | number | null)[][];
}

export interface Target {
  name: string;
  target: string;
  actual: string;
  met: boolean;
}

export interface BenchResult {
  name: string;
  title: string;
  config: Record<string, unknown>;
  figures: Record<string, unknown>;
  tables: Table[];
  targets: Target[];
  notes: string[];
}

export interface BenchContext {
  log(line: string): void;
  quick: boolean;
  /** Lazily starts PostgreSQL (shared by the benchmarks of one invocation). */
  postgres(): Promise<import('./postgres.js').PostgresServer>;
}

export interface Benchmark {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<BenchResult>;
}

export function machineInfo() {
  const c = cpus();
  return {
    node: process.version,
    platform: `${platform()} ${release()} ${arch()}`,
    cpuCount: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    totalMemoryMB: Math.round(totalmem() / 2 ** 20),
    freeMemoryMB: Math.round(freemem() / 2 ** 20),
    loadAverage: loadavg().map((v) => Number(v.toFixed(2))),
  };
}

const fmt = (v: string | number | null) => (v === null || v === undefined ? '–' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v);

export function renderTable(t: Table): string {
  const cells = [t.columns, ...t.rows.map((r) => r.map(fmt))];
  const widths = t.columns.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const numeric = t.columns.map((_, i) => t.rows.every((r) => typeof r[i] === 'number' || r[i] === null));
  const line = (r: (string | number | null)[]) =>
    r.map((c, i) => (numeric[i] ? String(c).padStart(widths[i]!) : String(c).padEnd(widths[i]!))).join('  ');
  const out = [`  ${t.title}`, `  ${line(t.columns)}`, `  ${widths.map((w) => '-'.repeat(w)).join('  ')}`];
  for (const r of cells.slice(1)) out.push(`  ${line(r)}`);
  return out.join('\n');
}

export function renderTargets(targets: Target[]): string {
  if (targets.length === 0) return '';
  return renderTable({
    title: 'Targets',
    columns: ['target', 'wanted', 'measured', 'met'],
    rows: targets.map((t) => [t.name, t.target, t.actual, t.met ? 'yes' : 'NO']),
  });
}
