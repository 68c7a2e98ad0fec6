import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadConfig, type Config } from '../src/lib/env.js';
import { createLogger } from '../src/lib/logger.js';
import { repoRoot } from '../src/lib/paths.js';
import { closeRuntime, createRuntime, type Runtime, type RuntimeOptions } from '../src/runtime.js';
import { createServer, type HubServer } from '../src/server.js';
import { getTestDatabase } from './db.js';

export interface TestServer {
  url: string;
  graphqlUrl: string;
  wsUrl: string;
  rt: Runtime;
  server: HubServer;
  close(): Promise<void>;
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig(
    { NODE_ENV: 'test', LOG_LEVEL: 'silent', OFFLINE_TOKEN_DELAY_MS: '0', SEED_DEMO: 'false', ...overrides },
    { dotenv: false },
  );
}

/** Starts the real server (HTTP + WebSocket) on a random port over this worker's test database. */
export async function startTestServer(
  opts: { env?: Record<string, string>; web?: boolean; worker?: boolean; runtime?: RuntimeOptions } = {},
): Promise<TestServer> {
  const config = testConfig(opts.env);
  // On PostgreSQL rate-limit counters live in the database and outlive the per-file reset; a namespace per
  // server keeps one test file's sign-ups from eating another's budget (tests that share limits pass one).
  const rateLimits = { namespace: `test-${randomUUID().slice(0, 8)}`, ...opts.runtime?.rateLimits };
  const rt = await createRuntime(config, createLogger(config.LOG_LEVEL), { database: await getTestDatabase(), ...opts.runtime, rateLimits });
  if (opts.worker !== false) await rt.orchestrator.startWorker();
  let webHandler: RequestHandler | undefined;
  if (opts.web) {
    const file = resolve(repoRoot, 'web/build/handler.js');
    if (!existsSync(file)) throw new Error('web/build is missing: run `pnpm build` first (pnpm test does)');
    webHandler = (await import(pathToFileURL(file).href)).handler as RequestHandler;
  }
  const server = await createServer(rt, { webHandler });
  const url = await server.listen(0, '127.0.0.1');
  return {
    url,
    graphqlUrl: `${url}/graphql`,
    wsUrl: `${url.replace('http', 'ws')}/graphql`,
    rt,
    server,
    async close() {
      await server.close();
      await closeRuntime(rt, { closeDatabase: false });
    },
  };
}

export interface GqlResult<T = Record<string, any>> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
  extensions?: Record<string, unknown>;
  headers: Headers;
}

/** POSTs one GraphQL operation over real HTTP. */
export async function gql<T = Record<string, any>>(
  url: string,
  query: string,
  variables: Record<string, unknown> = {},
  auth: { token?: string; cookie?: string } = {},
): Promise<GqlResult<T>> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (auth.cookie) headers.cookie = auth.cookie;
  const res = await fetch(url.endsWith('/graphql') ? url : `${url}/graphql`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json().catch(() => ({}))) as Omit<GqlResult<T>, 'status' | 'headers'>;
  return { status: res.status, headers: res.headers, ...body };
}
