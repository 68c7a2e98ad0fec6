import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../lib/paths.js';
import { AUDIT_ACTIONS } from './actions.js';

const DOTTED = /'([a-z]+\.[a-z_]+)'/g;

async function filesUnder(dir: string, keep: (file: string) => boolean): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name)).filter(keep);
}

/**
 * Every action name the API writes to the audit log, read from its sources: the `action:` of each
 * audit() call (both arms of a ternary too), and the literals of SQL functions that insert audit rows.
 */
async function writtenActions(): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const sources = await filesUnder(path.join(repoRoot, 'api/src'), (f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.includes('_generated'));
  for (const file of sources) {
    const text = await readFile(file, 'utf8');
    for (const [, expression] of text.matchAll(/\baction\s*:\s*([^,\n}]*)/g)) {
      for (const [, name] of expression!.matchAll(DOTTED)) found.set(name!, path.relative(repoRoot, file));
    }
  }
  const migrations = await filesUnder(path.join(repoRoot, 'prisma/migrations'), (f) => f.endsWith('.sql'));
  for (const file of migrations) {
    const text = await readFile(file, 'utf8');
    if (!text.includes('INSERT INTO "AuditLog"')) continue;
    for (const [, name] of text.matchAll(DOTTED)) found.set(name!, path.relative(repoRoot, file));
  }
  return found;
}

describe('audit actions', () => {
  it('lists every action the API writes, in one place', async () => {
    const written = await writtenActions();
    // The scan finds what it should: a broken pattern would find nothing and pass.
    expect(written.size).toBeGreaterThanOrEqual(20);
    for (const name of ['budget.created', 'budget.updated', 'budget.threshold_crossed', 'member.invitation_revoked', 'auth.sign_out_everywhere']) {
      expect([...written.keys()]).toContain(name);
    }
    const known = new Set<string>([...AUDIT_ACTIONS.organization, ...AUDIT_ACTIONS.account]);
    const unknown = [...written].filter(([name]) => !known.has(name)).map(([name, file]) => `${name} (${file})`);
    expect(unknown, 'add these to AUDIT_ACTIONS in api/src/modules/audit/actions.ts, and to web/src/routes/audit/actions.ts').toEqual([]);
  });

  it('files each action once', () => {
    const all = [...AUDIT_ACTIONS.organization, ...AUDIT_ACTIONS.account, ...AUDIT_ACTIONS.retired];
    expect(all.filter((name, i) => all.indexOf(name) !== i)).toEqual([]);
  });
});
