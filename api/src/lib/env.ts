import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { config as loadDotenv } from 'dotenv';
import { z } from 'zod';
import { repoRoot } from './paths.js';

const optionalUrl = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .pipe(z.url().optional())
  .optional();
const optionalString = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .optional();
const int = (def: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(def);

const envSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    PORT: int(3000, 0, 65535),
    HOST: z.string().default('0.0.0.0'),
    DATABASE_URL: optionalUrl.refine((v) => v === undefined || /^postgres(ql)?:\/\//.test(v), {
      message: 'must be a postgres:// or postgresql:// URL',
    }),
    DATA_DIR: z.string().default(resolve(repoRoot, '.data')),
    SESSION_SECRET: optionalString.pipe(z.string().min(32, 'must be at least 32 characters').optional()),
    APP_ORIGIN: optionalUrl,
    /** 32-byte key (base64 or hex) for secrets at rest; generated into DATA_DIR in embedded mode. */
    SECRETS_KEY: optionalString,
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    WORKER_CONCURRENCY: int(8, 1, 1000),
    ORG_CONCURRENCY: int(4, 1, 1000),
    /** Run the worker inside the API process (default) or only in `pnpm worker` processes. */
    RUN_WORKER: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
    SEED_DEMO: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
    OFFLINE_TOKEN_DELAY_MS: int(15, 0, 10_000),
    /** How long a silent worker keeps a run before another may take it over. */
    RUN_LEASE_MS: int(30_000, 500, 3_600_000),
    /** On shutdown, how long runs in progress may take to finish before they go back to the queue. */
    SHUTDOWN_GRACE_MS: int(10_000, 0, 600_000),
    /** How long a run's later tokens may wait to share a statement with other runs' events. */
    EVENT_HOLD_MS: int(5, 0, 1_000),
    /** Signed-in WebSocket connections one user may have open in one API process, all their credentials together. */
    WS_CONNECTIONS_PER_USER: int(200, 1, 100_000),
    OPENAI_API_KEY: optionalString,
    OPENAI_BASE_URL: optionalUrl,
    ANTHROPIC_API_KEY: optionalString,
    ANTHROPIC_BASE_URL: optionalUrl,
    XAI_API_KEY: optionalString,
    XAI_BASE_URL: optionalUrl,
    PERPLEXITY_API_KEY: optionalString,
    PERPLEXITY_BASE_URL: optionalUrl,
  })
  .superRefine((env, ctx) => {
    if (env.NODE_ENV !== 'production') return;
    for (const key of ['SESSION_SECRET', 'APP_ORIGIN'] as const) {
      if (!env[key]) ctx.addIssue({ code: 'custom', path: [key], message: 'is required when NODE_ENV=production' });
    }
  });

export type Config = z.infer<typeof envSchema>;

export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates configuration from `env` (plus an optional `.env` at the repository root). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, { dotenv = true } = {}): Config {
  if (dotenv && existsSync(resolve(repoRoot, '.env'))) {
    loadDotenv({ path: resolve(repoRoot, '.env'), quiet: true, processEnv: env as Record<string, string> });
  }
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || 'env'} ${i.message}`));
  }
  return parsed.data;
}
