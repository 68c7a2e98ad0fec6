/**
 * `pnpm bench [name…] [--quick]`: runs the benchmarks (all, or the ones named), prints their figures and
 * writes bench/results/<name>.json with the machine, the configuration and the figures.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { repoRoot } from './lib/api-child.js';
import { startPostgres, type PostgresServer } from './lib/postgres.js';
import { machineInfo, renderTable, renderTargets, type BenchContext, type Benchmark } from './lib/report.js';
import { fanout } from './fanout.js';
import { orchestration } from './orchestration.js';
import { budget } from './budget.js';
import { http } from './http.js';

const benchmarks: Benchmark[] = [orchestration, fanout, budget, http];

const args = process.argv.slice(2);
const quick = args.includes('--quick') || process.env.BENCH_QUICK === '1';
const names = args.filter((a) => !a.startsWith('--'));
if (args.includes('--help') || args.includes('-h')) {
  console.log('usage: pnpm bench [name…] [--quick]\n');
  for (const b of benchmarks) console.log(`  ${b.name.padEnd(14)} ${b.description}`);
  process.exit(0);
}
const unknown = names.filter((n) => !benchmarks.some((b) => b.name === n));
if (unknown.length) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; available: ${benchmarks.map((b) => b.name).join(', ')}`);
  process.exit(2);
}
const selected = names.length ? benchmarks.filter((b) => names.includes(b.name)) : benchmarks;

const log = (line: string) => console.log(line);
let pgPromise: Promise<PostgresServer> | undefined;
const ctx: BenchContext = {
  log,
  quick,
  postgres: () => (pgPromise ??= startPostgres(log)),
};

let interrupted = false;
const cleanup = async () => {
  if (pgPromise) await (await pgPromise.catch(() => null))?.stop();
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`\n${sig}: stopping PostgreSQL and exiting`);
    void cleanup().finally(() => process.exit(130));
  });
}

const machine = machineInfo();
/** Which code was measured: the commit, plus the files changed but not committed. */
function codeInfo() {
  try {
    const git = (...a: string[]) => execFileSync('git', a, { cwd: repoRoot, encoding: 'utf8' }).trim();
    const dirty = git('status', '--porcelain', '--', 'api', 'prisma').split('\n').filter(Boolean);
    return { commit: git('rev-parse', 'HEAD'), uncommittedApiFiles: dirty.length, uncommitted: dirty.slice(0, 30) };
  } catch {
    return null;
  }
}
console.log(`Orchestration Hub benchmarks${quick ? ' (quick)' : ''}`);
console.log(`  node ${machine.node} · ${machine.cpuCount} × ${machine.cpuModel} · ${machine.totalMemoryMB} MB RAM · ${machine.platform}\n`);

const outDir = resolve(repoRoot, 'bench/results');
mkdirSync(outDir, { recursive: true });
let failed = false;
try {
  for (const b of selected) {
    console.log(`== ${b.name}: ${b.description}`);
    const startedAt = new Date();
    const t0 = performance.now();
    try {
      const result = await b.run(ctx);
      const durationSeconds = Number(((performance.now() - t0) / 1000).toFixed(1));
      console.log('');
      for (const t of result.tables) console.log(`${renderTable(t)}\n`);
      const targets = renderTargets(result.targets);
      if (targets) console.log(`${targets}\n`);
      for (const n of result.notes) console.log(`  · ${n}`);
      const file = resolve(outDir, `${b.name}.json`);
      const json = {
        name: result.name,
        title: result.title,
        quick,
        startedAt: startedAt.toISOString(),
        durationSeconds,
        machine: { ...machine, loadAverageAtEnd: machineInfo().loadAverage },
        code: codeInfo(),
        config: result.config,
        targets: result.targets,
        figures: result.figures,
        notes: result.notes,
      };
      writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
      console.log(`\n  ${b.name}: ${durationSeconds} s · results written to ${file}\n`);
    } catch (err) {
      failed = true;
      console.error(`  ${b.name} failed:`, err);
    }
  }
} finally {
  await cleanup();
}
process.exit(failed ? 1 : 0);
