import { randomUUID } from 'node:crypto';
import type { PoolClient } from 'pg';
import type { BudgetPeriod } from '../../_generated/prisma/enums.js';
import { whileUnreachable, type Database, type SqlQuery } from '../../lib/db.js';
import type { Logger } from '../../lib/logger.js';
import type { EventBus } from '../../lib/pubsub.js';
import { utcWall } from '../../lib/sql.js';
import type { AttemptInfo, AttemptOutcome } from '../../providers/index.js';
import { RunBlockedError, type AttemptBudget, type LapsedAttempt, type RunContext } from '../../orchestrator/run-executor.js';
import type { AuditAction } from '../audit/actions.js';

export interface BudgetDenial {
  budgetId: string;
  projectId: string | null;
  period: BudgetPeriod;
  limitMicros: string;
  spentMicros: string;
  reservedMicros: string;
  requestedMicros: string;
  resetsAt: string;
}

export const budgetChannel = (organizationId: string) => `budgets:${organizationId}`;
/** Between the guards of every process: "an organization's budgets changed", "give back spare allowance on a budget". */
export const LEASE_CHANNEL = 'budgets:leases';

type LeaseMessage = { changed: string } | { trim: string; from: string };

export interface BudgetGuardOptions {
  /** How long a hold or a lease outlives its last renewal before the sweeper frees it. */
  holdTtlMs?: number;
  /** Spare allowance on a budget that no run of this process reserved from for this long is given back. */
  idleReturnMs?: number;
  /** How long a reservation that does not fit waits for other processes to give back spare allowance before its run is refused. */
  trimWaitMs?: number;
  /** How long the list of budgets that apply to a project is trusted without a change notification. */
  scopeTtlMs?: number;
  /** Housekeeping period: idle returns, lease renewals, holds of runs that stopped heartbeating. */
  tickMs?: number;
}

/** This process's view of one budget and of its own lease on it. */
interface BudgetState {
  id: string;
  organizationId: string;
  projectId: string | null;
  period: BudgetPeriod;
  /** As of the last statement that touched the budget. */
  resetsAt: string;
  limit: bigint;
  spent: bigint;
  reserved: bigint;
  looseLeases: number;
  /** Allowance this process holds in the database (counted in the budget's reservedMicros). */
  lease: bigint;
  /** Held by this process's attempts in flight: within the lease (unless the sweeper freed it). */
  used: bigint;
  holds: number;
  /** Largest attempt seen: sizes the spare allowance. */
  largest: bigint;
  /** Near the limit with other processes around: keep no spare, every reservation goes to the database. */
  exact: boolean;
  /** Exact at least until then (a process asked for spare allowance): no flapping back to leasing. */
  exactUntil: number;
  /** When this process last asked the others for their spare allowance on this budget. */
  askedAt: number;
  /** The next statement gives back the spare allowance (idle budget, shutdown). */
  trim: boolean;
  /** The next statement should include this budget (top-up, renewal). */
  touch: boolean;
  removed: boolean;
  lastReserveAt: number;
  renewedAt: number;
  /** While a statement that may change the lease is in flight: what may be handed out meanwhile. */
  flight: { slack: bigint; taken: bigint } | null;
}

/** One attempt's worst-case cost, held from this process's allowance on every budget that applies. */
interface Hold {
  runId: string;
  budgets: BudgetState[];
  amount: bigint;
  expiresAt: number;
  /** Still counted in its budgets' `used` (not settled, not released). */
  open: boolean;
}

interface Waiter {
  budgets: BudgetState[];
  amount: bigint;
  notBefore: number;
  /** When this process asked the others to give back spare allowance for it. */
  askedAt: number | null;
  retries: number;
  done(denial: BudgetDenial | null): void;
  fail(err: unknown): void;
}

interface LedgerRow {
  organizationId: string;
  projectId: string;
  agentId: string;
  runId: string;
  /** The claim the attempt ran under: its row replaces the recovery sweep's estimate of it (hub_budget_apply). */
  claim: number | null;
  attempt: number;
  provider: string;
  model: string;
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
  costMicros: string;
}

interface Settlement {
  hold: Hold | null;
  actual: bigint;
  ledger: LedgerRow | null;
  done(): void;
  fail(err: unknown): void;
}

/** An audit row written by the next statement (no round trip of its own). */
interface AuditRow {
  row: { organizationId: string; action: AuditAction; targetType: string; targetId: string; metadata: Record<string, unknown> };
  done(): void;
  fail(err: unknown): void;
}

/** What one statement does to one budget (see hub_budget_apply). */
interface Op {
  b: BudgetState;
  json: { id: string; spend: string; shrink: string; keep: string; spare: string; mode: 'keep' | 'exact'; exact: boolean; settled: boolean };
}

interface Batch {
  settlements: Settlement[];
  waiters: Waiter[];
  audits: AuditRow[];
  ops: Map<string, Op>;
}

/** What hub_budget_apply decided: waiters by position, 1-based. */
interface Applied {
  budgets: AppliedBudget[];
  admitted: number[];
  refused: { waiter: number; budgetId: string }[];
}

/** One budget as hub_budget_apply left it (money as text: JSON numbers lose precision past 2^53). */
interface AppliedBudget {
  id: string;
  organizationId: string;
  projectId: string | null;
  period: BudgetPeriod;
  limitMicros: string;
  spentMicros: string;
  reservedMicros: string;
  leaseMicros: string;
  resetsAt: string;
  /** The thresholds this statement crossed, in order (their audit rows are written): budgetAlerts messages. */
  alerts: Record<string, unknown>[];
  looseLeases: number;
}

/** The group commit's own connection (see `statement`): `drop` gives it back, discarded when given an error. */
interface Session {
  client: PoolClient;
  drop(err?: Error): void;
}

const max = (a: bigint, b: bigint) => (a > b ? a : b);
const min = (a: bigint, b: bigint) => (a < b ? a : b);
/** How often a reservation waiting for other processes to give back spare allowance tries again. */
const TRIM_POLL_MS = 10;
/** How often it asks them again (a process that was not asked, or leased anew). */
const TRIM_ASK_EVERY_MS = 100;
/** A budget near its limit stays exact this long after the last request for spare allowance. */
const EXACT_HOLD_MS = 10_000;

/** What a batch's settlements do to one budget: cost to add, and holds that close. */
function settledOn(b: BudgetState, settlements: Settlement[]) {
  let spend = 0n;
  let settling = 0n;
  let settled = false;
  for (const s of settlements) {
    if (!s.hold?.budgets.includes(b)) continue;
    settled = true;
    spend += s.actual;
    if (s.hold.open) settling += s.hold.amount;
  }
  return { spend, settling, settled };
}

/**
 * Admission by reservation, without a database round trip per attempt. Each process leases allowance from
 * every budget it admits runs against: the lease is part of the budget's reservedMicros, so spent + reserved
 * never exceeds a limit in the database, whatever the number of processes. An attempt's worst-case cost is
 * held from that allowance in memory; when the attempt ends, its settlement joins every other one waiting in
 * the process in one statement (hub_budget_apply, see its migration): ledger rows appended, spend added,
 * leases shrunk and topped up, waiting reservations admitted, budgets locked once in id order; one such
 * statement runs at a time. Near a limit the lease tracks exactly what runs hold (see docs/budgets.md);
 * leases are renewed while the process lives, given back when idle or at shutdown, and freed by the sweeper
 * when their process died.
 */
export class BudgetGuard implements AttemptBudget {
  /** Names this process's leases, and its worker (see AttemptBudget.holder). */
  readonly holder = `worker-${randomUUID().slice(0, 8)}`;
  private readonly holdTtlMs: number;
  private readonly idleReturnMs: number;
  private readonly trimWaitMs: number;
  private readonly scopeTtlMs: number;
  private readonly budgets = new Map<string, BudgetState>();
  private readonly scopes = new Map<string, { budgets: BudgetState[]; expiresAt: number }>();
  private readonly loading = new Map<string, Promise<BudgetState[]>>();
  /** Counts budget change announcements: a lookup that overlapped one is not cached. */
  private generation = 0;
  private readonly holdsByRun = new Map<string, Set<Hold>>();
  private settlements: Settlement[] = [];
  private waiters: Waiter[] = [];
  private audits: AuditRow[] = [];
  private running = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly ticker: NodeJS.Timeout;
  /** PostgreSQL: the connection the group commit runs on (see `statement`). */
  private session: Promise<Session> | null = null;
  private closed = false;
  /** Group-commit statements run so far (each settles, leases and audits for everything that was waiting). */
  statements = 0;
  private readonly subscription: Promise<() => Promise<void>>;

  constructor(
    private readonly db: Pick<Database, 'prisma' | 'query' | 'pool'>,
    private readonly bus: EventBus,
    private readonly logger: Logger,
    opts: BudgetGuardOptions = {},
  ) {
    this.holdTtlMs = opts.holdTtlMs ?? 120_000;
    this.idleReturnMs = opts.idleReturnMs ?? 2_000;
    this.trimWaitMs = opts.trimWaitMs ?? 1_000;
    this.scopeTtlMs = opts.scopeTtlMs ?? 30_000;
    this.ticker = setInterval(() => this.tick(), opts.tickMs ?? 250);
    this.ticker.unref();
    this.subscription = bus.subscribe(LEASE_CHANNEL, (m) => this.onMessage(m as LeaseMessage | null));
    this.subscription.catch((err) => logger.error({ err }, 'budget guard could not subscribe'));
  }

  async reserve(run: RunContext, attempt: AttemptInfo): Promise<Hold> {
    const amount = attempt.maxCostMicros;
    if (amount === null) throw new RunBlockedError(`No price is known for ${attempt.provider} ${attempt.model}; refusing to spend blind`);
    const budgets = await this.scopeBudgets(run.organizationId, run.projectId);
    if (budgets.length > 0 && !this.take(budgets, amount, false)) {
      const denial = await new Promise<BudgetDenial | null>((done, fail) => {
        this.waiters.push({ budgets, amount, notBefore: 0, askedAt: null, retries: 0, done, fail });
        this.kick();
      });
      if (denial) {
        await this.audit({ organizationId: run.organizationId, action: 'budget.exceeded', targetType: 'Run', targetId: run.runId, metadata: { ...denial } });
        throw new RunBlockedError(
          `${denial.period === 'DAILY' ? 'Daily' : 'Monthly'} budget${denial.projectId ? ' of the project' : ''} would be exceeded: ` +
            `limit ${denial.limitMicros}, spent ${denial.spentMicros}, reserved ${denial.reservedMicros}, this attempt needs up to ${denial.requestedMicros} micro-dollars; resets at ${denial.resetsAt}`,
          { ...denial },
        );
      }
    }
    const hold: Hold = { runId: run.runId, budgets, amount, expiresAt: Date.now() + this.holdTtlMs, open: budgets.length > 0 };
    if (hold.open) {
      let set = this.holdsByRun.get(run.runId);
      if (!set) this.holdsByRun.set(run.runId, (set = new Set()));
      set.add(hold);
    }
    return hold;
  }

  async settle(handle: unknown, run: RunContext, attempt: AttemptInfo, outcome: AttemptOutcome): Promise<void> {
    const hold = (handle as Hold | null) ?? null;
    const actual = outcome.costMicros ?? 0n;
    const reachedProvider = outcome.usageReported || outcome.emittedText || outcome.usage.inputTokens > 0;
    const ledger: LedgerRow | null = reachedProvider
      ? {
          organizationId: run.organizationId,
          projectId: run.projectId,
          agentId: run.agentId,
          runId: run.runId,
          claim: run.claim ?? null,
          attempt: attempt.number,
          provider: attempt.provider,
          model: attempt.model,
          inputTokens: outcome.usage.inputTokens,
          cachedInputTokens: outcome.usage.cachedInputTokens,
          outputTokens: outcome.usage.outputTokens,
          costMicros: actual.toString(),
        }
      : null;
    if (hold) this.forget(hold);
    if (!ledger && (!hold || hold.budgets.length === 0)) return;
    await new Promise<void>((done, fail) => {
      this.settlements.push({ hold, actual, ledger, done, fail });
      this.kick();
    });
  }

  private audit(row: AuditRow['row']) {
    return new Promise<void>((done, fail) => {
      this.audits.push({ row, done, fail });
      this.kick();
    });
  }

  /** Keeps a live run's holds from being released while its worker is still heartbeating. */
  async extend(runId: string, now = new Date()) {
    for (const h of this.holdsByRun.get(runId) ?? []) h.expiresAt = now.getTime() + this.holdTtlMs;
  }

  /**
   * Frees holds whose run is gone (worker died) or that expired, and the leases of processes that stopped
   * renewing them; returns how many were freed. Holds of reservations made before leases existed (OPEN rows
   * in BudgetReservation) are released too.
   */
  async releaseHolds(where: { runId?: string; expiredBefore?: Date }): Promise<number> {
    let released = 0;
    if (where.runId) released += this.releaseLocal((h) => h.runId === where.runId);
    if (where.expiredBefore) {
      const before = where.expiredBefore.getTime();
      released += this.releaseLocal((h) => h.expiresAt < before);
      const [row] = await this.db.query<{ n: number }>('SELECT hub_budget_sweep($1::timestamp(3)) AS n', [utcWall(where.expiredBefore)]);
      released += Number(row?.n ?? 0);
    }
    return released + (await this.releaseOpenRows(where));
  }

  /**
   * The attempts of a run whose worker died, charged when the recovery sweep takes the run back, in its
   * transaction (`hub_budget_charge`): their cost is spent on every budget that applies and taken out of the
   * dead worker's lease, which holds each attempt's worst case until the sweeper frees it. Spent goes up by
   * what reserved goes down, so `spent + reserved <= limit` holds as for a settlement, and the allowance
   * freed later is only what is left of the lease: nothing is counted twice, spent never passes the limit.
   * The sweeper keeps a lease whose holder still has RUNNING runs (see `hub_budget_sweep`), so the lease is
   * still there when they are taken back.
   */
  async chargeLapsed(query: SqlQuery, holder: string, attempts: LapsedAttempt[]): Promise<bigint> {
    if (attempts.length === 0) return 0n;
    const [row] = await query<{ cost: string }>('SELECT hub_budget_charge($1, $2::timestamp(3), $3::jsonb)::text AS cost', [
      holder,
      utcWall(new Date()),
      JSON.stringify(attempts),
    ]);
    return BigInt(row?.cost ?? 0);
  }

  /**
   * Gives back every spare allowance (what runs in flight still hold stays leased until they settle) and the
   * guard's connection: call it before the database closes.
   */
  async close() {
    this.closed = true;
    clearInterval(this.ticker);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const b of this.budgets.values()) if (b.lease > 0n) b.trim = true;
    this.kick();
    const deadline = Date.now() + 10_000;
    while ((this.running || this.settlements.length > 0 || this.audits.length > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    const session = this.session;
    this.session = null;
    (await session?.catch(() => null))?.drop();
    await (await this.subscription.catch(() => null))?.();
  }

  // ——— admission from the allowance ———

  private async scopeBudgets(organizationId: string, projectId: string): Promise<BudgetState[]> {
    const key = `${organizationId}/${projectId}`;
    const cached = this.scopes.get(key);
    const usable = cached && !cached.budgets.some((b) => b.removed);
    let loading = this.loading.get(key);
    if (!loading && (!usable || cached.expiresAt <= Date.now())) {
      const load = this.loadScope(key, organizationId, projectId).finally(() => this.loading.get(key) === load && this.loading.delete(key));
      this.loading.set(key, (loading = load));
      loading.catch((err) => this.logger.warn({ err }, 'budgets not looked up'));
    }
    // Changes are announced (onMessage drops the entry); the expiry only bounds a missed announcement,
    // so an expired list still serves while it is looked up again.
    return usable ? cached.budgets : loading!;
  }

  private async loadScope(key: string, organizationId: string, projectId: string) {
    const expiresAt = Date.now() + this.scopeTtlMs;
    const generation = this.generation;
    // On the pool, not the group commit's connection: lookups of several scopes run at once, and a
    // connection runs one statement at a time (pg queues the others, which pg 9 refuses).
    const [row] = await this.db.query<{ budgets: Pick<AppliedBudget, 'id' | 'organizationId' | 'projectId' | 'period' | 'limitMicros' | 'spentMicros' | 'reservedMicros'>[] }>(
      `SELECT coalesce(json_agg(json_build_object(
         'id', b.id, 'organizationId', b."organizationId", 'projectId', b."projectId", 'period', b.period,
         'limitMicros', b."limitMicros"::text, 'spentMicros', b."spentMicros"::text, 'reservedMicros', b."reservedMicros"::text) ORDER BY b.id), '[]') AS budgets
       FROM "Budget" b
       WHERE b."organizationId" = $1::uuid AND (b."projectId" IS NULL OR b."projectId" = $2::uuid)`,
      [organizationId, projectId],
    );
    const budgets = (row?.budgets ?? []).map((r) => {
      let b = this.budgets.get(r.id);
      if (!b) {
        b = {
          id: r.id,
          organizationId: r.organizationId,
          projectId: r.projectId,
          period: r.period,
          resetsAt: '',
          limit: 0n,
          spent: 0n,
          reserved: 0n,
          looseLeases: 0,
          lease: 0n,
          used: 0n,
          holds: 0,
          largest: 0n,
          exact: false,
          exactUntil: 0,
          askedAt: 0,
          trim: false,
          touch: false,
          removed: false,
          lastReserveAt: Date.now(),
          renewedAt: Date.now(),
          flight: null,
        };
        this.budgets.set(r.id, b);
      }
      b.limit = BigInt(r.limitMicros);
      b.spent = BigInt(r.spentMicros);
      b.reserved = BigInt(r.reservedMicros);
      return b;
    });
    // A change announced while this lookup ran may not be in it: use it once, do not keep it.
    if (generation === this.generation) this.scopes.set(key, { budgets, expiresAt });
    return budgets;
  }

  /** What a new hold may take from a budget right now. */
  private available(b: BudgetState, committing: boolean) {
    // Over a lowered limit, that much of the lease is not to be used.
    if (committing) return b.lease - b.used + min(b.limit - b.spent - b.reserved, 0n);
    if (b.exact) return 0n;
    return b.flight ? b.flight.slack - b.flight.taken : b.lease - b.used;
  }

  /** Spare allowance worth keeping: enough for the attempts this process has in flight to start again. */
  private spareTarget(b: BudgetState) {
    return b.largest * BigInt(Math.min(64, Math.max(8, b.holds)));
  }

  /** Holds `amount` on every budget from this process's allowance, if it fits on all of them. */
  private take(budgets: BudgetState[], amount: bigint, committing: boolean) {
    // An attempt that costs nothing (the offline provider) always fits: it cannot take a budget past its limit,
    // even one lowered below what is spent, and hub_budget_apply admits it too (a frozen $0 budget lets free runs go on).
    if (amount > 0n) {
      for (const b of budgets) if (!b.removed && this.available(b, committing) < amount) return false;
    }
    const now = Date.now();
    for (const b of budgets) {
      if (b.removed) continue;
      b.used += amount;
      b.holds++;
      if (b.flight) b.flight.taken += amount;
      if (amount > b.largest) b.largest = amount;
      b.lastReserveAt = now;
      if (!committing && !b.exact && this.available(b, false) < this.spareTarget(b) / 2n && !b.touch) {
        // Top up in the background: the statement is built and sent after this reservation has returned.
        b.touch = true;
        setImmediate(() => this.kick());
      }
    }
    return true;
  }

  private forget(hold: Hold) {
    const set = this.holdsByRun.get(hold.runId);
    set?.delete(hold);
    if (set?.size === 0) this.holdsByRun.delete(hold.runId);
  }

  /** Returns holds to their allowance without settling them (their run is gone); a later settle still records the spend. */
  private releaseLocal(match: (h: Hold) => boolean) {
    let n = 0;
    for (const set of [...this.holdsByRun.values()]) {
      for (const h of set) {
        if (!match(h)) continue;
        this.forget(h);
        if (!h.open) continue;
        h.open = false;
        for (const b of h.budgets) {
          b.used -= h.amount;
          b.holds--;
        }
        n++;
      }
    }
    return n;
  }

  // ——— the group commit ———

  /** Starts the group commit unless it runs; what arrives in the same tick (a burst of reservations) goes with it. */
  private kick() {
    if (this.running) return;
    this.running = true;
    queueMicrotask(() => void this.pump());
  }

  private async pump() {
    try {
      for (;;) {
        const batch = this.nextBatch(Date.now());
        if (!batch) break;
        await this.run(batch);
      }
    } finally {
      this.running = false;
    }
  }

  private async run(batch: Batch) {
    let applied: Applied;
    try {
      applied = await this.apply(batch);
    } catch (err) {
      this.abandon(batch, err);
      return;
    }
    try {
      this.commit(batch, applied);
    } catch (err) {
      // A bug: whoever still waits on this batch hears of it rather than hanging.
      this.logger.error({ err }, 'budget guard failed');
      for (const x of [...batch.settlements, ...batch.waiters, ...batch.audits]) x.fail(err);
    }
  }

  /** The next statement: everything waiting, and what each touched budget's lease should become. */
  private nextBatch(now: number): Batch | null {
    const settlements = this.settlements.splice(0);
    const audits = this.audits.splice(0);
    const waiters = this.waiters.filter((w) => w.notBefore <= now);
    if (waiters.length > 0) this.waiters = this.waiters.filter((w) => w.notBefore > now);
    const touched = new Set<BudgetState>();
    for (const s of settlements) for (const b of s.hold?.budgets ?? []) touched.add(b);
    for (const w of waiters) for (const b of w.budgets) touched.add(b);
    for (const b of this.budgets.values()) if (b.touch || b.trim) touched.add(b);
    if (settlements.length === 0 && waiters.length === 0 && audits.length === 0 && touched.size === 0) return null;

    const ops = new Map<string, Op>();
    for (const b of touched) {
      const { spend, settling, settled } = settledOn(b, settlements);
      const base = b.used - settling; // held by attempts still in flight once this batch commits
      const exact = b.exact || b.trim || now - b.lastReserveAt > this.idleReturnMs;
      let waiting = 0n;
      for (const w of waiters) if (w.budgets.includes(b)) waiting += w.amount;
      // Keeping spare allowance, what is spare now (less what the waiting reservations may take of it) may be
      // handed out while the statement runs: it stays leased.
      const slack = exact ? 0n : max(min(b.lease - spend - base, b.lease - b.used) - waiting, 0n);
      b.flight = { slack, taken: 0n };
      ops.set(b.id, {
        b,
        json: {
          id: b.id,
          spend: `${spend}`,
          shrink: `${spend}`,
          keep: `${base + slack}`,
          spare: exact ? '0' : `${this.spareTarget(b)}`,
          mode: exact ? 'exact' : 'keep',
          exact: b.exact,
          settled,
        },
      });
    }
    return { settlements, waiters, audits, ops };
  }

  private async apply(batch: Batch): Promise<Applied> {
    const now = new Date();
    const ops = [...batch.ops.values()];
    const position = new Map(ops.map((o, i) => [o.b, i + 1]));
    const waiters = batch.waiters.map((w) => ({ amount: `${w.amount}`, budgets: w.budgets.map((b) => position.get(b)!) }));
    const ledger = batch.settlements.flatMap((s) => (s.ledger ? [s.ledger] : []));
    this.statements++;
    const [row] = await this.statement<{ r: Applied }>(
      'hub_budget_apply',
      'SELECT hub_budget_apply($1, $2::timestamp(3), $3::timestamp(3), $4::jsonb, $5::jsonb, $6::jsonb, $7::jsonb) AS r',
      [
        this.holder,
        utcWall(now),
        utcWall(new Date(now.getTime() + this.holdTtlMs)),
        JSON.stringify(ops.map((o) => o.json)),
        JSON.stringify(waiters),
        JSON.stringify(ledger),
        JSON.stringify(batch.audits.map((a) => a.row)),
      ],
    );
    return row?.r ?? { budgets: [], admitted: [], refused: [] };
  }

  /**
   * On PostgreSQL the group commit has a connection of its own: its statements run one at a time
   * (`running`), and nothing else is sent on it. This way they never queue behind other work for a pooled
   * connection, and run on a session where the function is compiled and the statements prepared (a fresh
   * session pays ~20 ms for that). Any error discards the connection; the next statement opens another (and
   * waits for one up to UNREACHABLE_WINDOW_MS: a statement that was never sent can be sent later; one that
   * failed on its way is not sent again, since it may have committed).
   */
  private async statement<T>(name: string, text: string, params: unknown[]): Promise<T[]> {
    const pool = this.db.pool;
    if (!pool || this.closed) return this.db.query<T>(text, params);
    // Nothing was sent while no connection opens: try again while the database restarts, rather than lose
    // the settlements' ledger rows.
    const open = await whileUnreachable(async () => {
      const session = (this.session ??= this.openSession(pool));
      try {
        return await session;
      } catch (err) {
        if (this.session === session) this.session = null;
        throw err;
      }
    }, () => true);
    try {
      return (await open.client.query({ name, text, values: params })).rows as T[];
    } catch (err) {
      open.drop(err as Error);
      throw err;
    }
  }

  /**
   * Checks out the group commit's connection. Out of the pool, nobody else listens for its errors: when the
   * server closes it between statements (a restart, a failover), its 'error' event would end the process
   * unheard. Any error drops it (the next statement opens another).
   */
  private openSession(pool: NonNullable<Database['pool']>): Promise<Session> {
    const session: Promise<Session> = pool.connect().then((client) => {
      let dropped = false;
      const drop = (err?: Error) => {
        if (this.session === session) this.session = null;
        if (dropped) return;
        dropped = true;
        client.off('error', drop);
        client.release(err);
      };
      client.on('error', drop);
      return { client, drop };
    });
    return session;
  }

  private commit(batch: Batch, applied: Applied) {
    const now = Date.now();
    for (const a of batch.audits) a.done();
    for (const s of batch.settlements) {
      if (!s.hold?.open) continue;
      s.hold.open = false;
      for (const b of s.hold.budgets) {
        b.used -= s.hold.amount;
        b.holds--;
      }
    }
    const seen = new Set<string>();
    for (const r of applied.budgets) {
      const op = batch.ops.get(r.id);
      if (!op) continue;
      const b = op.b;
      seen.add(r.id);
      b.renewedAt = now;
      b.flight = null;
      b.touch = false;
      b.trim = false;
      b.looseLeases = r.looseLeases;
      b.limit = BigInt(r.limitMicros);
      b.spent = BigInt(r.spentMicros);
      b.reserved = BigInt(r.reservedMicros);
      b.lease = BigInt(r.leaseMicros);
      b.resetsAt = r.resetsAt;
      const free = b.limit - b.spent - b.reserved;
      // Over the limit (lowered): give back the spare at once. Far from it again: spare allowance is worth keeping.
      if (free < 0n) b.exact = true;
      else if (b.exact && now >= b.exactUntil && free * 10n >= b.limit && b.limit > 0n) b.exact = false;
      for (const alert of r.alerts) {
        this.bus.publish(budgetChannel(r.organizationId), alert).catch((err) => this.logger.warn({ err }, 'budget alert not published'));
      }
    }
    for (const op of batch.ops.values()) {
      if (seen.has(op.b.id)) continue;
      // The budget was removed: forget it (its leases went with it).
      op.b.removed = true;
      op.b.flight = null;
      op.b.lease = 0n;
      this.budgets.delete(op.b.id);
      for (const [key, scope] of this.scopes) if (scope.budgets.includes(op.b)) this.scopes.delete(key);
    }

    for (const pos of applied.admitted) {
      const w = batch.waiters[pos - 1]!;
      if (this.take(w.budgets, w.amount, true)) w.done(null);
      // Admitted on a lease the sweeper freed meanwhile: the next statement leases again. Should the statement
      // and this process keep disagreeing, refuse rather than send statements for it forever.
      else if (++w.retries <= 3) this.retryLater(w, now);
      else w.done(this.denial(w.budgets.find((x) => !x.removed && this.available(x, true) < w.amount) ?? w.budgets[0]!, w.amount));
    }
    for (const { waiter, budgetId } of applied.refused) {
      const w = batch.waiters[waiter - 1]!;
      // What the statement kept aside for holds handed out while it ran, and did not go, is this process's too.
      if (this.take(w.budgets, w.amount, true)) {
        w.done(null);
        continue;
      }
      // Refused on a budget where its own allowance and the free headroom do not cover it. (Should the
      // statement and this process's view disagree, the next statement decides again, a few times at most.)
      const fits = (x: BudgetState) => x.removed || x.lease - x.used + x.limit - x.spent - x.reserved >= w.amount;
      const named = w.budgets.find((x) => x.id === budgetId)!;
      const b = [named, ...w.budgets].find((x) => !fits(x));
      if (!b && ++w.retries <= 3) {
        this.retryLater(w, now);
        continue;
      }
      if (b && b.looseLeases > 0 && (w.askedAt === null || now - w.askedAt < this.trimWaitMs)) {
        // Other processes keep spare allowance on this budget: ask them to give it back before refusing.
        w.askedAt ??= now;
        this.goExact(b, now);
        if (now - b.askedAt >= TRIM_ASK_EVERY_MS) {
          b.askedAt = now;
          this.bus.publish(LEASE_CHANNEL, { trim: b.id, from: this.holder }).catch((err) => this.logger.warn({ err }, 'lease trim request not published'));
        }
        this.retryLater(w, now + TRIM_POLL_MS);
        continue;
      }
      w.done(this.denial(b ?? named, w.amount));
    }

    // Near the limit a lease is only what runs hold: allowance granted for reservations that were refused goes back.
    for (const op of batch.ops.values()) if (op.b.exact && !op.b.removed && op.b.lease > op.b.used) op.b.touch = true;

    for (const s of batch.settlements) s.done();
  }

  private abandon(batch: Batch, err: unknown) {
    this.logger.error({ err }, 'budget statement failed');
    for (const op of batch.ops.values()) op.b.flight = null;
    for (const s of batch.settlements) {
      // Nothing was recorded; the hold goes back to the allowance as if its run had died.
      if (s.hold?.open) {
        s.hold.open = false;
        for (const b of s.hold.budgets) {
          b.used -= s.hold.amount;
          b.holds--;
        }
      }
      s.fail(err);
    }
    for (const w of batch.waiters) w.fail(err);
    for (const a of batch.audits) a.fail(err);
  }

  private retryLater(w: Waiter, at: number) {
    w.notBefore = at;
    this.waiters.push(w);
    if (at <= Date.now()) this.kick();
    else this.armRetry();
  }

  /** One timer, for the earliest waiter due later. */
  private armRetry() {
    const now = Date.now();
    const next = Math.min(...this.waiters.filter((x) => x.notBefore > now).map((x) => x.notBefore));
    if (!Number.isFinite(next)) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.kick();
      this.armRetry();
    }, next - now);
  }

  /** Why a reservation does not fit `b`: `reserved` counts what runs hold and other processes' leases, not this process's spare. */
  private denial(b: BudgetState, amount: bigint): BudgetDenial {
    const spare = b.lease - b.used;
    return {
      budgetId: b.id,
      projectId: b.projectId,
      period: b.period,
      limitMicros: b.limit.toString(),
      spentMicros: b.spent.toString(),
      reservedMicros: (b.reserved - spare).toString(),
      requestedMicros: amount.toString(),
      resetsAt: b.resetsAt,
    };
  }

  // ——— housekeeping ———

  private tick() {
    const now = Date.now();
    const expired = this.releaseLocal((h) => h.expiresAt < now);
    if (expired > 0) this.logger.warn({ expired }, 'released budget holds of runs that stopped heartbeating');
    let work = false;
    for (const b of this.budgets.values()) {
      if (b.lease > b.used && !b.trim && now - b.lastReserveAt > this.idleReturnMs) b.trim = work = true;
      if (b.lease > 0n && now - b.renewedAt > this.holdTtlMs / 3) b.touch = work = true;
    }
    if (work) this.kick();
  }

  private onMessage(m: LeaseMessage | null) {
    if (m === null || 'changed' in m) {
      // Budgets were created, changed or removed (or messages may have been missed): look them up again, and
      // admit nothing from spare allowance until a statement has read the new limits.
      this.generation++;
      this.loading.clear();
      for (const key of [...this.scopes.keys()]) if (m === null || key.startsWith(`${m.changed}/`)) this.scopes.delete(key);
      for (const b of this.budgets.values()) if (m === null || b.organizationId === m.changed) b.exact = true;
      return;
    }
    if (m.from === this.holder) return;
    const b = this.budgets.get(m.trim);
    if (!b) return;
    this.goExact(b, Date.now());
    b.touch = true;
    this.kick();
  }

  /** Near the limit, another process needs what is spare: keep none for a while, and until the budget is far from its limit again. */
  private goExact(b: BudgetState, now: number) {
    b.exact = true;
    b.exactUntil = Math.max(b.exactUntil, now + EXACT_HOLD_MS);
  }

  /** Reservations made one row per attempt (before leases): released one by one, under their budgets' locks. */
  private async releaseOpenRows(where: { runId?: string; expiredBefore?: Date }) {
    const prisma = this.db.prisma;
    const open = await prisma.budgetReservation.findMany({
      where: {
        status: 'OPEN',
        ...(where.runId ? { runId: where.runId } : {}),
        ...(where.expiredBefore ? { expiresAt: { lt: where.expiredBefore } } : {}),
      },
      select: { id: true, organizationId: true },
      take: 500,
    });
    let released = 0;
    for (const r of open) {
      released += await prisma.$transaction(async (tx) => {
        await tx.$queryRaw`SELECT id FROM "Budget" WHERE "organizationId" = ${r.organizationId}::uuid ORDER BY id FOR UPDATE`;
        const hold = await tx.budgetReservation.findUnique({ where: { id: r.id } });
        if (!hold || hold.status !== 'OPEN') return 0;
        await tx.budgetReservation.update({ where: { id: r.id }, data: { status: 'RELEASED', closedAt: new Date() } });
        await tx.budget.updateMany({ where: { id: hold.budgetId }, data: { reservedMicros: { decrement: hold.amountMicros } } });
        return 1;
      });
    }
    return released;
  }
}

/** Tells every process's guard that an organization's budgets changed (call after the change committed). */
export function announceBudgetChange(bus: EventBus, organizationId: string) {
  return bus.publish(LEASE_CHANNEL, { changed: organizationId } satisfies LeaseMessage);
}
