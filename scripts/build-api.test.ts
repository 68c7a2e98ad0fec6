// The product as `pnpm start` runs it: the compiled API (scripts/build-api.ts) on the embedded database,
// with the demo data, started as its own process. A newcomer's first command depends on this path.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../api/src/lib/paths.js';
import { buildApi } from './build-api.js';

// A build of its own next to the real one (api/dist), so a concurrent `pnpm start` is not disturbed.
const OUT = 'api/dist/test-start';

describe('the compiled API, started as `pnpm start` starts it', () => {
  let dataDir: string;
  let child: ChildProcess;
  let url: string;
  let output = '';

  beforeAll(async () => {
    await buildApi(['api/src/main.ts'], OUT);
    dataDir = await mkdtemp(path.join(tmpdir(), 'hub-start-'));
    // A newcomer's environment: no NODE_ENV, no DATABASE_URL.
    const { NODE_ENV: _mode, DATABASE_URL: _db, ...env } = process.env;
    child = spawn(process.execPath, ['--max-semi-space-size=32', '--enable-source-maps', path.join(repoRoot, OUT, 'main.mjs')], {
      cwd: tmpdir(), // not the repository: the build must find its files on its own
      env: { ...env, DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', SEED_DEMO: 'true', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not started in 90 s:\n${output}`)), 90_000);
      const check = () => {
        const m = /running at (http:\/\/\S+)/.exec(output);
        if (m && output.includes('Demo sign-in:')) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      };
      child.stdout!.on('data', check);
      child.once('exit', (code) => reject(new Error(`exited with ${code}:\n${output}`)));
    });
  }, 120_000);

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
    await rm(path.join(repoRoot, OUT), { recursive: true, force: true });
  });

  const gql = async (query: string, variables: Record<string, unknown> = {}, cookie?: string) => {
    const res = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(cookie ? { cookie } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    return { cookie: res.headers.get('set-cookie')?.split(';')[0], body: (await res.json()) as { data?: any; errors?: unknown[] } };
  };

  it('serves health, the API with the demo account, and stops cleanly on SIGTERM', async () => {
    expect(output).toContain('Demo sign-in:');
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' });
    const [, email, password] = /Demo sign-in: (\S+) \/ (\S+)/.exec(output)!;
    const signIn = await gql(
      'mutation($input: SignInInput!) { signIn(input: $input) { __typename ... on AuthPayload { viewer { user { email } } } } }',
      { input: { email, password } },
    );
    expect(signIn.body.data?.signIn).toMatchObject({ __typename: 'AuthPayload', viewer: { user: { email } } });
    const orgs = await gql('{ viewer { organizations(first: 5) { edges { node { name } } } } }', {}, signIn.cookie);
    expect(orgs.body.data?.viewer.organizations.edges.length).toBeGreaterThan(0);

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 60_000);
});
