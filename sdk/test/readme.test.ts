import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SignUpDocument, unwrap } from '@hub/sdk';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { newApiToken, sha256 } from '../../api/src/lib/tokens.js';
import { BOOT_TIMEOUT_MS, clientFor, given, startTestServer, type TestServer } from './support.js';

/**
 * The README's ```ts blocks, in order, as one ES module: imports merged and hoisted, the rest kept
 * verbatim. It is type-checked against the built package and then run against a live server.
 */
function readmeScript(markdown: string): string {
  const imports = new Map<string, { default?: string; named: Set<string> }>();
  const bodies: string[] = [];
  for (const [i, match] of [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].entries()) {
    const block = match[1]!;
    const file = ts.createSourceFile(`block-${i}.ts`, block, ts.ScriptTarget.Latest, true);
    let body = block;
    for (const statement of file.statements.filter(ts.isImportDeclaration).reverse()) {
      const from = (statement.moduleSpecifier as ts.StringLiteral).text;
      const entry = imports.get(from) ?? { named: new Set<string>() };
      const clause = statement.importClause;
      if (clause?.name) entry.default = clause.name.text;
      if (clause?.namedBindings && ts.isNamedImports(clause.namedBindings)) {
        for (const element of clause.namedBindings.elements) entry.named.add(element.getText(file));
      }
      imports.set(from, entry);
      body = body.slice(0, statement.getStart(file)) + body.slice(statement.getEnd());
    }
    bodies.push(`// ---- README block ${i + 1} ----\n${body.trim()}\n`);
  }
  const header = [...imports].map(([from, { default: def, named }]) => {
    const parts = [def, named.size ? `{ ${[...named].join(', ')} }` : undefined].filter(Boolean);
    return `import ${parts.join(', ')} from '${from}';`;
  });
  return `${header.join('\n')}\n\n${bodies.join('\n')}`;
}

const apiRequire = createRequire(new URL('../../api/package.json', import.meta.url));
const scriptPath = fileURLToPath(new URL(`./.readme-${randomUUID().slice(0, 8)}.ts`, import.meta.url));
const script = readmeScript(readFileSync(new URL('../README.md', import.meta.url), 'utf8'));

let app: TestServer;
let owner: Awaited<ReturnType<ReturnType<typeof given>['aUser']>>;
/** An API token of grace@example.com, who accepts the members example's invitation with it. */
let graceToken: string;

beforeAll(async () => {
  app = await startTestServer();
  owner = await given(app).aUser('Readme Reader');
  // The members example invites this account, and she accepts with a token of her own (as the factories make them).
  const signUp = await clientFor(app).request(SignUpDocument, {
    input: { email: 'grace@example.com', password: 'correct horse battery', name: 'Grace' },
  });
  unwrap(signUp.signUp);
  const { id: graceId } = await app.rt.prisma.user.findUniqueOrThrow({ where: { email: 'grace@example.com' } });
  graceToken = newApiToken();
  await app.rt.prisma.apiToken.create({ data: { userId: graceId, name: 'readme', prefix: graceToken.slice(0, 12), tokenHash: sha256(graceToken) } });
}, BOOT_TIMEOUT_MS);
afterAll(async () => {
  rmSync(scriptPath, { force: true });
  await app.close();
});

describe('README examples', () => {
  it('has a ts example for every namespace and for streaming, resuming and errors', () => {
    for (const usage of [
      'client.viewer()',
      'client.tokens.create',
      'client.organizations.delete',
      'client.members.invite',
      'asGrace.invitations.preview(link)',
      'asGrace.invitations.accept(link)',
      'client.members.updateRole',
      'client.invitations.list',
      'client.invitations.revoke',
      'client.projects.archive',
      'client.providers.list()',
      'client.agents.update',
      'client.runs.stream(faq.id, { afterSeq: savedSeq })',
      'client.runs.retry',
      'client.runs.updates',
      'err instanceof ValidationError',
    ]) {
      expect(script).toContain(usage);
    }
  });

  // Both compile or run a whole script; give them room on a busy machine.
  it('type-check against the built package, as published', { timeout: 120_000 }, () => {
    writeFileSync(scriptPath, script);
    const program = ts.createProgram([scriptPath], {
      target: ts.ScriptTarget.ES2023,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2023.d.ts'],
      types: ['node'],
      strict: true,
      // The strictest settings integrators use (e.g. @tsconfig/strictest): `token: process.env.HUB_TOKEN` must pass.
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      noUnusedLocals: true,
      esModuleInterop: true,
      skipLibCheck: true,
      noEmit: true,
      // `@hub/sdk` resolves through the package's own `exports` to dist/index.d.ts; `ws` is a dependency of the API package.
      paths: { ws: [fileURLToPath(new URL('index.d.ts', pathToFileURL(apiRequire.resolve('@types/ws/package.json'))))] },
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n') + where(d));
    expect(diagnostics).toEqual([]);
    // The types came from the build, not from src.
    const files = program.getSourceFiles().map((f) => f.fileName);
    expect(files.some((f) => f.endsWith('/sdk/dist/index.d.ts'))).toBe(true);
    expect(files.some((f) => f.includes('/sdk/src/'))).toBe(false);
  });

  it('run against a live server from start to finish', { timeout: 120_000 }, async () => {
    // Only module resolution changes: `ws` is found where the API package installed it.
    writeFileSync(scriptPath, script.replace(/from 'ws';/, `from '${pathToFileURL(apiRequire.resolve('ws')).href}';`));
    const logged: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void logged.push(args.join(' ')));
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const env = { HUB_URL: process.env.HUB_URL, HUB_TOKEN: process.env.HUB_TOKEN, GRACE_TOKEN: process.env.GRACE_TOKEN };
    process.env.HUB_URL = app.graphqlUrl;
    process.env.HUB_TOKEN = owner.token;
    process.env.GRACE_TOKEN = graceToken;
    try {
      await import(pathToFileURL(scriptPath).href);
    } finally {
      log.mockRestore();
      write.mockRestore();
      Object.assign(process.env, env);
      for (const [key, value] of Object.entries(env)) if (value === undefined) delete process.env[key];
    }

    expect(logged).toContain(`Signed in as ${owner.email}`);
    expect(logged).toContain(`CI runs as ${owner.email}`);
    expect(logged).toContain('Created acme-robotics');
    expect(logged).toContain('1 member(s), 0 project(s)');
    expect(logged.some((line) => /^Invited grace@example\.com until \d{4}-/.test(line))).toBe(true);
    expect(logged).toContain('Readme Reader invites you to Acme as MEMBER');
    expect(logged).toContain('Grace <grace@example.com>: ADMIN');
    expect(logged).toContain('Pending: alan@example.com (VIEWER), invited by Readme Reader');
    expect(logged).toContain('[SUCCEEDED]');
    expect(logged).toContain('Started once: true');
    expect(logged).toContain('Cost: $0.000000');
    expect(logged).toContain('name: Enter a name');
    expect(logged.some((line) => line.startsWith('slug: '))).toBe(true);
    expect(logged).toContain('Welcome, Lin');
    expect(logged.some((line) => /^Monthly budget: 25000000 of 25000000 micro-dollars left, resets \d{4}-/.test(line))).toBe(true);
    expect(logged.some((line) => /^OFFLINE\/offline-\w+: 0 micro-dollars over \d+ run\(s\)$/.test(line))).toBe(true);
    expect(logged).toContain('Budget rows: 1');

    // And the examples did what they say.
    const client = clientFor(app, owner.token);
    expect((await client.tokens.list().toArray()).find((t) => t.name === 'nightly-ci')?.active).toBe(false);
    const orgs = await client.organizations.list().toArray();
    expect(orgs.map((o) => o.name)).toEqual(['Acme']);
    expect((await client.members.list('acme-robotics').toArray()).map((m) => m.user.email)).toEqual([owner.email]);
    expect(await client.invitations.list('acme-robotics').toArray()).toEqual([]);
    const [project] = await client.projects.list('acme-robotics').toArray();
    const [agent] = await client.agents.list(project!.id, { includeArchived: true }).toArray();
    expect(agent).toMatchObject({ name: 'Planner', temperature: 0.2, archivedAt: expect.any(String) });
    const runs = await client.runs.list(project!.id).toArray();
    expect(runs.filter((r) => r.input === 'Plan the launch of our help centre')).toHaveLength(1);
  });
});

function where(d: ts.Diagnostic): string {
  if (!d.file || d.start === undefined) return '';
  const { line } = d.file.getLineAndCharacterOfPosition(d.start);
  const source = d.file.text.split('\n');
  const block = source.slice(0, line + 1).reverse().find((l) => l.startsWith('// ---- README block'));
  return ` (${block?.replace(/^\/\/ -+ | -+$/g, '') ?? 'imports'}: ${source[line]!.trim()})`;
}
