import type { Config } from './lib/env.js';
import { openDatabase, type Database, type PrismaClient } from './lib/db.js';
import type { Logger } from './lib/logger.js';
import { createLocalBus, createPgBus, type EventBus } from './lib/pubsub.js';
import { RateLimits, type RateLimitOptions } from './lib/rate-limit.js';
import { EventLog } from './orchestrator/events.js';
import { Orchestrator } from './orchestrator/orchestrator.js';
import { BudgetGuard } from './modules/budgets/budget-guard.js';
import { PgBossRunQueue } from './orchestrator/pgboss-queue.js';
import { LocalRunQueue, type RunQueue } from './orchestrator/queue.js';
import { createProviders, type ProviderRegistry } from './providers/index.js';
import { TokenCache } from './modules/auth/viewer.js';

/** Long-lived process-wide dependencies, built once at start-up and shared by every request. */
export interface Runtime {
  config: Config;
  db: Database;
  prisma: PrismaClient;
  logger: Logger;
  bus: EventBus;
  providers: ProviderRegistry;
  orchestrator: Orchestrator;
  /** Stores run events for every run of this process (group commit across runs). */
  events: EventLog;
  /** Budget admission: this process's allowance leases and its group-committed settlements. */
  budget: BudgetGuard;
  /** Rate limiters: shared through PostgreSQL, or in memory on the embedded database. */
  limits: RateLimits;
  /** API tokens verified recently (revocations are announced on the bus). */
  tokens: TokenCache;
  startedAt: Date;
  version: string;
}

export const VERSION = '0.1.0';

export interface RuntimeOptions {
  /** Use this database instead of opening the configured one (tests share one per worker). */
  database?: Database;
  /** Override the run queue engine (tests, benchmarks). */
  queue?: RunQueue;
  providers?: ProviderRegistry;
  /** Override rate-limit rules or their key namespace (tests pass small budgets). */
  rateLimits?: RateLimitOptions;
}

export async function createRuntime(config: Config, logger: Logger, opts: RuntimeOptions = {}): Promise<Runtime> {
  // Every worker slot may hold a connection for a transaction at once; leave room for API requests.
  const db = opts.database ?? (await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: config.WORKER_CONCURRENCY + 20 }));
  const bus = db.kind === 'postgresql' ? await createPgBus(db.url!, db.pool!, logger) : createLocalBus();
  const providers =
    opts.providers ??
    createProviders({
      openai: { apiKey: config.OPENAI_API_KEY, baseUrl: config.OPENAI_BASE_URL },
      anthropic: { apiKey: config.ANTHROPIC_API_KEY, baseUrl: config.ANTHROPIC_BASE_URL },
      xai: { apiKey: config.XAI_API_KEY, baseUrl: config.XAI_BASE_URL },
      perplexity: { apiKey: config.PERPLEXITY_API_KEY, baseUrl: config.PERPLEXITY_BASE_URL },
      offline: { tokenDelayMs: config.OFFLINE_TOKEN_DELAY_MS },
    });
  const limits = { concurrency: config.WORKER_CONCURRENCY, perOrg: config.ORG_CONCURRENCY };
  const queue =
    opts.queue ?? (db.kind === 'postgresql' ? await PgBossRunQueue.create(db.url!, bus, limits, logger) : new LocalRunQueue(limits, logger));
  const budget = new BudgetGuard(db, bus, logger, { holdTtlMs: Math.max(120_000, config.RUN_LEASE_MS * 2) });
  // Two event statements at once on PostgreSQL (separate connections); the embedded database runs one at a time anyway.
  const events = new EventLog(db.query, bus, db.kind === 'postgresql' ? 2 : 1, config.EVENT_HOLD_MS);
  const orchestrator = new Orchestrator({
    db,
    events,
    bus,
    logger,
    providers,
    queue,
    budget,
    perOrgCap: config.ORG_CONCURRENCY,
    leaseMs: config.RUN_LEASE_MS,
    shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
  });
  const rateLimits = await RateLimits.create(db, opts.rateLimits);
  return { config, db, prisma: db.prisma, logger, bus, providers, orchestrator, events, budget, limits: rateLimits, tokens: new TokenCache(bus), startedAt: new Date(), version: VERSION };
}

/** Stops the worker, returns the budget allowance it leased, then stops the bus and the database. */
export async function closeRuntime(rt: Runtime, { closeDatabase = true } = {}) {
  await rt.orchestrator.stop();
  await rt.budget.close();
  await rt.tokens.close();
  await rt.bus.close();
  rt.limits.close();
  if (closeDatabase) await rt.db.close();
}
