// `pnpm worker`: a process that only executes runs (no HTTP), for scaling out on PostgreSQL.
import { loadConfig } from './lib/env.js';
import { createLogger } from './lib/logger.js';
import { closeRuntime, createRuntime } from './runtime.js';

const config = loadConfig();
const logger = createLogger(config.LOG_LEVEL);
if (!config.DATABASE_URL) {
  logger.warn('No DATABASE_URL: a separate worker only makes sense with PostgreSQL; using the embedded database');
}
const rt = await createRuntime(config, logger);
await rt.orchestrator.startWorker();
logger.info({ worker: rt.orchestrator.workerId, concurrency: config.WORKER_CONCURRENCY }, 'worker started');
// Tell a parent process (tests, supervisors) we are consuming.
process.send?.({ ready: true, workerId: rt.orchestrator.workerId });

const shutdown = async () => {
  logger.info('worker draining');
  await closeRuntime(rt);
  process.exit(0);
};
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
