/**
 * Summarises a V8 profile of the API process per package (or API directory) and per function: a
 * `.cpuprofile` by self time, a `.heapprofile` (sampled allocations, garbage included) by bytes allocated.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface CpuProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface HeapProfileNode {
  callFrame: CallFrame;
  selfSize: number;
  children: HeapProfileNode[];
}

const where = (url: string, fn: string) => {
  if (!url) return fn || '(native)';
  const m = /node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith('node:')) return url.replace(/^node:internal\/.*$/, 'node:internal');
  return url.replace(/^file:\/\/.*?\/(api|bench)\//, '$1/').replace(/\/[^/]+$/, '/');
};

/** Self amounts per call frame: microseconds of a CPU profile, bytes of an allocation profile. */
function selfAmounts(file: string): { kind: 'cpu' | 'alloc' | 'live'; amounts: [CallFrame, number][] } {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as
    | { nodes: CpuProfileNode[]; samples: number[]; timeDeltas: number[] }
    | { head: HeapProfileNode };
  if ('head' in raw) {
    const amounts: [CallFrame, number][] = [];
    const walk = (n: HeapProfileNode) => {
      if (n.selfSize > 0) amounts.push([n.callFrame, n.selfSize]);
      n.children.forEach(walk);
    };
    walk(raw.head);
    return { kind: file.endsWith('.live.heapprofile') ? 'live' : 'alloc', amounts };
  }
  const byId = new Map(raw.nodes.map((n) => [n.id, n]));
  const time = new Map<number, number>();
  raw.samples.forEach((id, i) => time.set(id, (time.get(id) ?? 0) + (raw.timeDeltas[i] ?? 0)));
  return { kind: 'cpu', amounts: [...time].map(([id, us]) => [byId.get(id)!.callFrame, us]) };
}

export function summarizeProfile(file: string, top = 12) {
  const { kind, amounts } = selfAmounts(file);
  let total = 0;
  const byWhere = new Map<string, number>();
  const byFn = new Map<string, number>();
  for (const [frame, amount] of amounts) {
    total += amount;
    const w = where(frame.url, frame.functionName);
    byWhere.set(w, (byWhere.get(w) ?? 0) + amount);
    const f = `${frame.functionName || '(anonymous)'} (${w}${frame.url ? `:${frame.lineNumber + 1}` : ''})`;
    byFn.set(f, (byFn.get(f) ?? 0) + amount);
  }
  // CPU in milliseconds, allocations in megabytes.
  const scale = kind === 'cpu' ? 1 / 1000 : 1 / 1_048_576;
  const round = (v: number) => Number((v * scale).toFixed(kind === 'cpu' ? 0 : 2));
  const rank = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, v]) => ({ name, amount: round(v), percent: Number(((100 * v) / total).toFixed(1)) }));
  return {
    file,
    kind,
    /** What `total` and each `amount` count. */
    unit: kind === 'cpu' ? 'self ms' : kind === 'live' ? 'MB alive' : 'MB allocated',
    total: round(total),
    byPackage: rank(byWhere),
    byFunction: rank(byFn),
  };
}

/** The title of a profile's table: what was sampled, how much, and where the file is. */
export const profileTitle = (p: ReturnType<typeof summarizeProfile>, during: string) =>
  `API ${p.kind === 'cpu' ? 'CPU' : p.kind === 'live' ? 'live-object' : 'allocation'} profile, ${during} (${p.total} ${p.unit === 'self ms' ? 'ms sampled' : p.unit}; ${p.file})`;
