import { createHash } from 'node:crypto';
import type pg from 'pg';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import type { Database } from './db.js';
import { RateLimitedError } from './errors.js';

/** A budget of `points` per key, refilled `duration` seconds after the key's first point. */
export interface LimitRule {
  points: number;
  duration: number;
}

export const RATE_LIMIT_DEFAULTS = {
  /** Sign-in attempts per client IP. */
  signInIp: { points: 50, duration: 15 * 60 },
  /** Failed sign-ins per account (email); a successful sign-in clears them. */
  signInAccount: { points: 10, duration: 15 * 60 },
  /** Sign-up attempts per client IP. */
  signUpIp: { points: 30, duration: 60 * 60 },
  /** Sign-up attempts per email address. */
  signUpAccount: { points: 5, duration: 60 * 60 },
  /** HTTP requests per signed-in user, all of their tokens and sessions together. */
  apiUser: { points: 1_200, duration: 60 },
  /** HTTP requests per IP from anonymous callers and callers presenting invalid credentials. */
  apiAnonymous: { points: 300, duration: 60 },
  /** Runs started or retried per organization. */
  runsOrg: { points: 120, duration: 60 },
} as const satisfies Record<string, LimitRule>;

export type LimitName = keyof typeof RATE_LIMIT_DEFAULTS;

/**
 * Budgets a process may take from PostgreSQL in blocks (see `RateLimits.consume`): the per-request ones,
 * counted on every HTTP request and WebSocket operation. The others are counted point by point.
 */
const LEASED: ReadonlySet<LimitName> = new Set(['apiUser', 'apiAnonymous']);

/** Points a process takes at once: a hundredth of the budget, between 1 (no leasing) and 50. */
export const leaseSize = (rule: LimitRule) => Math.min(50, Math.max(1, Math.floor(rule.points / 100)));

/** Points a process took from the shared counter and has not spent yet, valid until the window ends. */
interface Allowance {
  left: number;
  until: number;
  /** The last block was cut short: the budget is spent until `until`. */
  spent: boolean;
  /** The block being taken, for callers that arrive meanwhile. */
  taking: Promise<void> | null;
}

const MAX_ALLOWANCES = 10_000;

export interface RateLimitOptions {
  /** Per-rule overrides, e.g. `{ apiUser: { points: 5 } }`. */
  rules?: Partial<Record<LimitName, Partial<LimitRule>>>;
  /** Prefix of every stored key; processes that must share budgets use the same one. */
  namespace?: string;
}

export type RateLimitEngine = 'memory' | 'postgres';
type Limiter = RateLimiterMemory | RateLimiterPostgres;

/** PostgreSQL home of the shared counters: outside `public`, so Prisma's migration history never sees it. */
export const RATE_LIMIT_SCHEMA = 'rate_limit';
export const RATE_LIMIT_TABLE = 'counters';

// Keys are hashed so that emails and IPs are not stored in clear and always fit the table's varchar(255).
const hashKey = (key: string) => createHash('sha256').update(key).digest('base64url');

/** Where a process keeps its unspent block of `name` for `key`. */
const allowanceId = (name: LimitName, key: string) => `${name}\u0000${key}`;

/**
 * The process's rate limiters. On PostgreSQL the counters live in one shared table, so every API
 * process enforces one budget; on the embedded single-process database they are kept in memory.
 */
export class RateLimits {
  private readonly allowances = new Map<string, Allowance>();

  private constructor(
    readonly engine: RateLimitEngine,
    private readonly rules: Record<LimitName, LimitRule>,
    private readonly limiters: Record<LimitName, Limiter>,
    private readonly sweeper?: NodeJS.Timeout,
  ) {}

  static async create(db: Pick<Database, 'kind' | 'pool'>, opts: RateLimitOptions = {}): Promise<RateLimits> {
    const namespace = opts.namespace ?? 'hub';
    const rules = Object.fromEntries(
      (Object.keys(RATE_LIMIT_DEFAULTS) as LimitName[]).map((name) => [name, { ...RATE_LIMIT_DEFAULTS[name], ...opts.rules?.[name] }]),
    ) as Record<LimitName, LimitRule>;
    const names = Object.keys(rules) as LimitName[];

    if (db.kind !== 'postgresql' || !db.pool) {
      const limiters = Object.fromEntries(
        names.map((name) => [name, new RateLimiterMemory({ ...rules[name], keyPrefix: `${namespace}:${name}` })]),
      ) as Record<LimitName, Limiter>;
      return new RateLimits('memory', rules, limiters);
    }

    const pool = db.pool;
    await ensureSchema(pool);
    const limiters = {} as Record<LimitName, Limiter>;
    for (const [i, name] of names.entries()) {
      limiters[name] = await postgresLimiter(pool, {
        ...rules[name],
        keyPrefix: `${namespace}:${name}`,
        // The first limiter creates the shared table (CREATE TABLE IF NOT EXISTS); the others reuse it.
        tableCreated: i > 0,
        // Expired rows are swept by one timer below rather than one per limiter.
        clearExpiredByTimeout: false,
        // If the database is briefly unreachable, fall back to a per-process budget instead of failing requests.
        insuranceLimiter: new RateLimiterMemory({ ...rules[name], keyPrefix: `${namespace}:${name}` }),
      });
    }
    const sweeper = setInterval(() => {
      pool
        .query(`DELETE FROM "${RATE_LIMIT_SCHEMA}"."${RATE_LIMIT_TABLE}" WHERE expire < $1`, [Date.now() - 3_600_000])
        .catch(() => undefined);
    }, 5 * 60_000);
    sweeper.unref();
    return new RateLimits('postgres', rules, limiters, sweeper);
  }

  rule(name: LimitName): LimitRule {
    return this.rules[name];
  }

  /** The error for a budget that refills in `msBeforeNext` milliseconds. */
  static refused(msBeforeNext: number): RateLimitedError {
    return new RateLimitedError(Math.max(1, Math.ceil(msBeforeNext / 1000)));
  }

  /**
   * Counts `points` for `key`; throws RateLimitedError once the budget is spent.
   *
   * The per-request budgets on PostgreSQL are taken in blocks (`leaseSize`): a process counts a block in
   * the shared row with one statement and then spends it in memory, so most requests make no round trip.
   * The shared count never passes the budget by what is spent: a block that overshoots it is cut to what
   * was left. What a process took and did not spend before the window ends is lost to the others (at most
   * a block less than a block per process), and a spent budget is known in memory until it refills.
   */
  async consume(name: LimitName, key: string, points = 1): Promise<void> {
    const rule = this.rules[name];
    const block = leaseSize(rule);
    if (this.engine !== 'postgres' || !LEASED.has(name) || block === 1 || points !== 1) return this.consumeShared(name, key, points);
    const id = allowanceId(name, key);
    for (;;) {
      const now = Date.now();
      let a = this.allowances.get(id);
      if (a && a.until <= now && !a.taking) {
        this.allowances.delete(id);
        a = undefined;
      }
      if (a?.taking) {
        await a.taking;
        continue;
      }
      if (a && a.left > 0) {
        a.left--;
        return;
      }
      if (a?.spent) throw RateLimits.refused(a.until - now);
      const fresh: Allowance = { left: 0, until: 0, spent: false, taking: null };
      fresh.taking = this.takeBlock(name, key, block, fresh).finally(() => (fresh.taking = null));
      if (this.allowances.size >= MAX_ALLOWANCES) this.pruneAllowances(now);
      this.allowances.set(id, fresh);
    }
  }

  /** Counts `block` points in the shared row and keeps what fitted in the budget. */
  private async takeBlock(name: LimitName, key: string, block: number, into: Allowance) {
    const limit = this.rules[name].points;
    let res: RateLimiterRes;
    try {
      res = await this.limiters[name].consume(hashKey(key), block);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) {
        this.allowances.delete(allowanceId(name, key));
        throw err;
      }
      res = err;
    }
    // The row counts everything ever asked for in the window; what this block got is what fitted.
    into.left = Math.max(0, Math.min(block, limit - (res.consumedPoints - block)));
    into.spent = into.left < block;
    into.until = Date.now() + res.msBeforeNext;
  }

  private pruneAllowances(now: number) {
    for (const [id, a] of this.allowances) if (a.until <= now && !a.taking) this.allowances.delete(id);
    // Still full (a flood of distinct keys): forget the oldest; their holders just take a new block.
    for (const id of this.allowances.keys()) {
      if (this.allowances.size < MAX_ALLOWANCES) break;
      this.allowances.delete(id);
    }
  }

  private async consumeShared(name: LimitName, key: string, points: number): Promise<void> {
    try {
      await this.limiters[name].consume(hashKey(key), points);
    } catch (err) {
      if (err instanceof RateLimiterRes) throw RateLimits.refused(err.msBeforeNext);
      throw err;
    }
  }

  /**
   * For a statement that counts the point itself (see hub_start_run): the limiter's row key, budget and
   * window when the counters live in PostgreSQL; null when they are in memory (count with `consume`).
   */
  sqlCounter(name: LimitName, key: string): { key: string; points: number; durationMs: number } | null {
    if (this.engine !== 'postgres') return null;
    const rule = this.rules[name];
    return { key: this.limiters[name].getKey(hashKey(key)), points: rule.points, durationMs: rule.duration * 1000 };
  }

  /** Gives back points counted for an attempt that turned out not to need them. */
  async refund(name: LimitName, key: string, points = 1): Promise<void> {
    await this.limiters[name].reward(hashKey(key), points);
  }

  /** Throws RateLimitedError when `key` has already spent its budget, without counting anything. */
  async ensureAvailable(name: LimitName, key: string): Promise<void> {
    const res = await this.limiters[name].get(hashKey(key));
    if (res && res.consumedPoints >= this.rules[name].points) throw RateLimits.refused(res.msBeforeNext);
  }

  /** Counts one point without ever throwing: for failures whose caller already answers with its own error. */
  async penalize(name: LimitName, key: string): Promise<void> {
    await this.limiters[name].penalty(hashKey(key), 1);
  }

  /** Forgets everything counted for `key`. */
  async reset(name: LimitName, key: string): Promise<void> {
    this.allowances.delete(allowanceId(name, key));
    await this.limiters[name].delete(hashKey(key));
  }

  /** The per-request budget: per user when signed in, per IP otherwise. */
  consumeRequest(viewer: { userId: string } | null, ip: string | null): Promise<void> {
    return viewer ? this.consume('apiUser', viewer.userId) : this.consume('apiAnonymous', ip ?? 'unknown');
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }
}

async function ensureSchema(pool: pg.Pool) {
  try {
    await pool.query(`CREATE SCHEMA IF NOT EXISTS "${RATE_LIMIT_SCHEMA}"`);
  } catch (err) {
    // Two processes creating the schema at the same instant: the loser sees a unique violation.
    if ((err as { code?: string }).code !== '23505') throw err;
  }
}

function postgresLimiter(
  pool: pg.Pool,
  opts: LimitRule & { keyPrefix: string; tableCreated: boolean; clearExpiredByTimeout: boolean; insuranceLimiter: RateLimiterMemory },
): Promise<RateLimiterPostgres> {
  const options = { ...opts, storeClient: pool, storeType: 'pool', schemaName: RATE_LIMIT_SCHEMA, tableName: RATE_LIMIT_TABLE };
  // With tableCreated the library calls back synchronously, before the constructor returns.
  if (opts.tableCreated) return Promise.resolve(new RateLimiterPostgres(options));
  return new Promise((resolve, reject) => {
    const limiter: RateLimiterPostgres = new RateLimiterPostgres(options, (err?: Error) => (err ? reject(err) : resolve(limiter)));
  });
}
