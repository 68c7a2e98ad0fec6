// A real hub process for tests that kill or run several processes: API (when SERVE=true) and/or worker,
// configured entirely from the environment. Reports { url, workerId } to its parent over IPC.
import { loadConfig } from '../src/lib/env.js';
import { createLogger } from '../src/lib/logger.js';
import { createRuntime } from '../src/runtime.js';
import { createServer } from '../src/server.js';

const config = loadConfig(process.env, { dotenv: false });
const rt = await createRuntime(config, createLogger(config.LOG_LEVEL));
let url: string | null = null;
if (process.env.SERVE === 'true') url = await (await createServer(rt)).listen(0, '127.0.0.1');
if (config.RUN_WORKER) await rt.orchestrator.startWorker();
process.send?.({ ready: true, url, workerId: rt.orchestrator.workerId });
