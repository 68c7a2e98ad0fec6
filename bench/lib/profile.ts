/** Summarises a V8 .cpuprofile: self time per package (or API directory) and per function. */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

const where = (url: string, fn: string) => {
  if (!url) return fn || '(native)';
  const m = /node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith('node:')) return url.replace(/^node:internal\/.*$/, 'node:internal');
  return url.replace(/^file:\/\/.*?\/(api|bench)\//, '$1/').replace(/\/[^/]+$/, '/');
};

export function summarizeProfile(file: string, top = 12) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const time = new Map<number, number>();
  p.samples.forEach((id, i) => time.set(id, (time.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  let total = 0;
  const byWhere = new Map<string, number>();
  const byFn = new Map<string, number>();
  for (const [id, us] of time) {
    const n = byId.get(id)!;
    total += us;
    const w = where(n.callFrame.url, n.callFrame.functionName);
    byWhere.set(w, (byWhere.get(w) ?? 0) + us);
    const f = `${n.callFrame.functionName || '(anonymous)'} (${w}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''})`;
    byFn.set(f, (byFn.get(f) ?? 0) + us);
  }
  const rank = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 1000), percent: Number(((100 * us) / total).toFixed(1)) }));
  return { file, totalMs: Math.round(total / 1000), byPackage: rank(byWhere), byFunction: rank(byFn) };
}
