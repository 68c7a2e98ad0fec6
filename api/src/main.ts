// `pnpm start`: one process serving the API, the web UI and the background worker.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { RequestHandler } from 'express';
import { DEMO, seedDemo } from '../../prisma/seed.js';
import { ConfigError, loadConfig } from './lib/env.js';
import { createLogger } from './lib/logger.js';
import { repoRoot } from './lib/paths.js';
import { closeRuntime, createRuntime } from './runtime.js';
import { createServer } from './server.js';

async function loadWebHandler(): Promise<RequestHandler | undefined> {
  const file = resolve(repoRoot, 'web/build/handler.js');
  if (!existsSync(file)) return undefined;
  return (await import(pathToFileURL(file).href)).handler as RequestHandler;
}

async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.LOG_LEVEL);
  const rt = await createRuntime(config, logger);
  const seeded = config.SEED_DEMO ? await seedDemo(rt.prisma) : false;
  const webHandler = await loadWebHandler();
  if (!webHandler) logger.warn('web/build not found: run `pnpm build` to serve the UI');
  const server = await createServer(rt, { webHandler });
  if (config.RUN_WORKER) await rt.orchestrator.startWorker();
  const url = await server.listen(config.PORT, config.HOST);

  const db = rt.db.kind === 'pglite' ? `embedded PGlite at ${resolve(config.DATA_DIR, 'pglite')}` : 'PostgreSQL';
  console.log(`\n  Orchestration Hub is running at ${url}\n  GraphQL API: ${url}/graphql  ·  database: ${db}`);
  console.log(`  Worker: ${config.RUN_WORKER ? `in this process (${config.WORKER_CONCURRENCY} at once)` : 'off (run `pnpm worker`)'}`);
  if (config.SEED_DEMO) {
    console.log(`  Demo sign-in: ${DEMO.email} / ${DEMO.password}${seeded ? '  (demo data created)' : ''}\n`);
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: draining requests');
    // Runs get SHUTDOWN_GRACE_MS to finish, then go back to the queue: allow for that, and a little more.
    const force = setTimeout(() => process.exit(1), config.SHUTDOWN_GRACE_MS + 10_000).unref();
    await server.close();
    await closeRuntime(rt);
    clearTimeout(force);
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
