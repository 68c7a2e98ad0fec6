import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase, usingPostgres } from '../../../test/db.js';
import { startOpenAIFake, type FakeProviderServer } from '../../../test/fakes/index.js';
import { given, type TestOrg, type TestUser } from '../../../test/factories.js';
import { gql, startTestServer, type TestServer } from '../../../test/harness.js';
import { startHubProcess } from '../../../test/processes.js';
import { fromGlobalId, toGlobalId } from '../../lib/ids.js';
import { costMicros, estimateInputTokens, maxCostMicros } from '../../providers/index.js';

const USAGE = { inputTokens: 20, cachedInputTokens: 0, outputTokens: 50 };
const MODEL = 'gpt-4.1';
const MAX_OUTPUT = 100;
const PROMPT = 'Estimate the budget';
const ACTUAL = costMicros('OPENAI', MODEL, USAGE);
const RESERVED = maxCostMicros('OPENAI', MODEL, estimateInputTokens({ messages: [{ role: 'user', content: PROMPT }] }), MAX_OUTPUT);

const SET_BUDGET = `mutation($input: SetBudgetInput!) { setBudget(input: $input) {
  __typename ... on SetBudgetPayload { budget { id period limit spent reserved remaining percentUsed resetsAt } } ... on Error { message } } }`;
const RUN = `query($id: ID!) { run(id: $id) { status error costMicros budgetError { period limit spent reserved requested resetsAt } } }`;

let openai: FakeProviderServer;
let app: TestServer;

async function setup(env: Record<string, string> = {}) {
  const org = await given(app).anOrganization();
  const project = await given(app).aProject(org);
  const agent = await app.rt.prisma.agent.create({
    data: { organizationId: org.id, projectId: project.id, name: 'Metered', provider: 'OPENAI', model: MODEL, maxOutputTokens: MAX_OUTPUT },
  });
  return { org, owner: org.owner, project, agentGid: toGlobalId('Agent', agent.id), ...env };
}

async function setBudget(owner: TestUser, org: TestOrg, limit: bigint, extra: Record<string, unknown> = {}) {
  const res = await owner.gql(SET_BUDGET, { input: { organizationId: org.gid, period: 'DAILY', limit: limit.toString(), ...extra } });
  expect(res.data!.setBudget.__typename, JSON.stringify(res)).toBe('SetBudgetPayload');
  return res.data!.setBudget.budget;
}

async function startRuns(owner: TestUser, agentGid: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  // Start in waves of 25 concurrent requests: all 200 are queued within a second or two.
  for (let i = 0; i < n; i += 25) {
    const wave = await Promise.all(
      Array.from({ length: Math.min(25, n - i) }, () =>
        owner.gql(`mutation($a: ID!, $i: String!) { startRun(input: { agentId: $a, input: $i }) { ... on StartRunPayload { run { id } } } }`, {
          a: agentGid,
          i: PROMPT,
        }),
      ),
    );
    ids.push(...wave.map((r) => fromGlobalId(r.data!.startRun.run.id, 'Run')));
  }
  return ids;
}

/** Polls until every run is final, checking the money invariant at every look. */
async function watchUntilDone(runIds: string[], budgetId: string, limit: bigint) {
  let looks = 0;
  for (;;) {
    const b = await app.rt.prisma.budget.findUniqueOrThrow({ where: { id: budgetId } });
    expect(b.spentMicros).toBeLessThanOrEqual(limit);
    expect(b.spentMicros + b.reservedMicros).toBeLessThanOrEqual(limit);
    looks++;
    const open = await app.rt.prisma.agentRun.count({ where: { id: { in: runIds }, status: { in: ['QUEUED', 'RUNNING'] } } });
    if (open === 0) return looks;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * With every run final: spend equals the ledger, no hold is open, and what is still reserved is exactly the
 * spare allowance worker processes lease (given back once they are idle; `untilReturned` waits for that).
 */
async function expectLedgerReconciles(orgId: string, budgetId: string, { untilReturned = false } = {}) {
  const ledger = await app.rt.prisma.usageRecord.aggregate({ where: { organizationId: orgId }, _sum: { costMicros: true } });
  expect(await app.rt.prisma.budgetReservation.count({ where: { budgetId, status: 'OPEN' } })).toBe(0);
  for (let i = 0; ; i++) {
    // One statement, so one snapshot: a lease given back between two separate reads would look like a mismatch.
    const [row] = await app.rt.db.query<{ spent: string; reserved: string; leased: string }>(
      `SELECT b."spentMicros"::text AS spent, b."reservedMicros"::text AS reserved,
              (SELECT coalesce(sum(l."amountMicros"), 0) FROM "BudgetLease" l WHERE l."budgetId" = b.id)::text AS leased
         FROM "Budget" b WHERE b.id = $1::uuid`,
      [budgetId],
    );
    expect(BigInt(row!.spent)).toBe(ledger._sum.costMicros ?? 0n);
    expect(BigInt(row!.reserved)).toBe(BigInt(row!.leased));
    if (!untilReturned || row!.reserved === '0') return;
    expect(i, 'spare allowance not given back within 10 s').toBeLessThan(500);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  openai = await startOpenAIFake({ apiKey: 'sk-budget', defaultBehavior: { kind: 'reply', text: 'Within budget.', chunks: 3, usage: USAGE } });
  app = await startTestServer({
    env: { OPENAI_API_KEY: 'sk-budget', OPENAI_BASE_URL: openai.url, WORKER_CONCURRENCY: '16', ORG_CONCURRENCY: '16' },
    // This file starts hundreds of runs per organization on purpose.
    runtime: { rateLimits: { rules: { runsOrg: { points: 100_000 }, apiUser: { points: 100_000 } } } },
  });
});
afterAll(async () => {
  await app.close();
  await openai.close();
});

describe('budgets cannot be overspent', () => {
  it('200 runs at once against a budget that fits about 20: never over the limit, the rest BLOCKED and audited', async () => {
    const { org, owner, agentGid } = await setup();
    const limit = RESERVED * 20n;
    const budget = await setBudget(owner, org, limit);
    const ids = await startRuns(owner, agentGid, 200);
    await watchUntilDone(ids, fromGlobalId(budget.id, 'Budget'), limit);

    const runs = await app.rt.prisma.agentRun.findMany({ where: { id: { in: ids } } });
    const succeeded = runs.filter((r) => r.status === 'SUCCEEDED');
    const blocked = runs.filter((r) => r.status === 'BLOCKED');
    expect(succeeded.length + blocked.length).toBe(200);
    // Settled runs release what they did not use, so more than 20 can fit, but never past the limit.
    expect(succeeded.length).toBeGreaterThanOrEqual(20);
    expect(BigInt(succeeded.length) * ACTUAL).toBeLessThanOrEqual(limit);
    expect(succeeded.every((r) => r.costMicros === ACTUAL)).toBe(true);
    expect(await app.rt.prisma.auditLog.count({ where: { organizationId: org.id, action: 'budget.exceeded' } })).toBe(blocked.length);
    // Idle for a moment, the worker gives its spare allowance back: nothing stays reserved.
    await expectLedgerReconciles(org.id, fromGlobalId(budget.id, 'Budget'), { untilReturned: true });

    const one = (await owner.gql(RUN, { id: toGlobalId('Run', blocked[0]!.id) })).data!.run;
    expect(one.status).toBe('BLOCKED');
    expect(one.budgetError).toMatchObject({ period: 'DAILY', limit: limit.toString(), requested: RESERVED.toString() });
    expect(BigInt(one.budgetError.spent) + BigInt(one.budgetError.reserved) + RESERVED).toBeGreaterThan(limit);
  }, 120_000);

  it.runIf(usingPostgres())('the same with two worker processes on PostgreSQL', async () => {
    const db = await getTestDatabase();
    const { org, owner, agentGid } = await setup();
    const limit = RESERVED * 20n;
    const budget = await setBudget(owner, org, limit);
    // Runs go in through an API process without a worker; two other processes execute them.
    const front = await startTestServer({ worker: false, runtime: { rateLimits: { rules: { runsOrg: { points: 100_000 }, apiUser: { points: 100_000 } } } } });
    const viaFront = { ...owner, gql: (q: string, v?: Record<string, unknown>) => gql(front.url, q, v, { token: owner.token }) } as TestUser;
    const env = { DATABASE_URL: db.url!, OPENAI_API_KEY: 'sk-budget', OPENAI_BASE_URL: openai.url, WORKER_CONCURRENCY: '12', ORG_CONCURRENCY: '24' };
    const workers = await Promise.all([startHubProcess(env), startHubProcess(env)]);
    try {
      const ids = await startRuns(viaFront, agentGid, 200);
      await watchUntilDone(ids, fromGlobalId(budget.id, 'Budget'), limit);
      const runs = await app.rt.prisma.agentRun.findMany({ where: { id: { in: ids } }, select: { status: true } });
      expect(runs.filter((r) => r.status === 'SUCCEEDED').length).toBeGreaterThanOrEqual(20);
      expect(runs.every((r) => r.status === 'SUCCEEDED' || r.status === 'BLOCKED')).toBe(true);
      const workersUsed = await app.rt.prisma.runEvent.findMany({
        where: { runId: { in: ids }, type: 'STATUS', payload: { path: ['status'], equals: 'RUNNING' } },
        select: { payload: true },
      });
      const used = new Set(workersUsed.map((e) => (e.payload as { worker: string }).worker));
      for (const w of workers) expect(used.has(w.workerId)).toBe(true);
      await expectLedgerReconciles(org.id, fromGlobalId(budget.id, 'Budget'));
    } finally {
      await Promise.all(workers.map((w) => w.kill()));
      await front.close();
    }
  }, 180_000);
});

describe('settlement', () => {
  it('settles to the reported cost and releases the rest; a failure or retry settles each attempt on its own', async () => {
    const { org, owner, agentGid } = await setup();
    const budget = await setBudget(owner, org, 1_000_000n);
    const budgetId = fromGlobalId(budget.id, 'Budget');

    const [ok] = await startRuns(owner, agentGid, 1);
    await watchUntilDone([ok!], budgetId, 1_000_000n);
    let b = await app.rt.prisma.budget.findUniqueOrThrow({ where: { id: budgetId } });
    expect(b.spentMicros).toBe(ACTUAL);
    expect(RESERVED).toBeGreaterThan(ACTUAL);
    // The hold settled at the reported cost; what stays reserved is the worker's spare allowance, nothing else.
    await expectLedgerReconciles(org.id, budgetId);

    // A fatal provider error: the attempt is reserved, then released at zero cost.
    openai.enqueue({ kind: 'error', status: 400 });
    const [failed] = await startRuns(owner, agentGid, 1);
    await watchUntilDone([failed!], budgetId, 1_000_000n);
    expect((await app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: failed! } })).status).toBe('FAILED');

    // A 429 then a success: two attempts, each held and settled; only the one the provider served is on the ledger.
    openai.enqueue({ kind: 'error', status: 429, retryAfter: 0 });
    const [retried] = await startRuns(owner, agentGid, 1);
    await watchUntilDone([retried!], budgetId, 1_000_000n);
    const ledger = await app.rt.prisma.usageRecord.findMany({ where: { runId: retried! }, select: { attempt: true, costMicros: true } });
    expect(ledger).toEqual([{ attempt: 2, costMicros: ACTUAL }]);
    expect((await app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: retried! } })).costMicros).toBe(ACTUAL);
    b = await app.rt.prisma.budget.findUniqueOrThrow({ where: { id: budgetId } });
    expect(b.spentMicros).toBe(ACTUAL * 2n);
    await expectLedgerReconciles(org.id, budgetId);
  });

  it('a cancelled run and a run whose worker died leave no hold open', async () => {
    const { org, owner, agentGid } = await setup();
    const budget = await setBudget(owner, org, 1_000_000n);
    const budgetId = fromGlobalId(budget.id, 'Budget');
    openai.enqueue({ kind: 'hang' });
    const seen = openai.requests.length;
    const [hanging] = await startRuns(owner, agentGid, 1);
    // The attempt is reserved, and its request is hanging at the provider.
    await openai.waitForRequests(seen + 1, 10_000);
    expect((await app.rt.prisma.budget.findUniqueOrThrow({ where: { id: budgetId } })).reservedMicros).toBeGreaterThanOrEqual(RESERVED);
    await owner.gql(`mutation($id: ID!) { cancelRun(input: { id: $id }) { __typename } }`, { id: toGlobalId('Run', hanging!) });
    await watchUntilDone([hanging!], budgetId, 1_000_000n);
    expect((await app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: hanging! } })).status).toBe('CANCELLED');
    expect(await app.rt.prisma.budgetReservation.count({ where: { runId: hanging!, status: 'OPEN' } })).toBe(0);

    // A dead worker's run: RUNNING, lease expired, a hold still open.
    const agent = await app.rt.prisma.agent.findUniqueOrThrow({ where: { id: fromGlobalId(agentGid, 'Agent') } });
    const orphan = await app.rt.prisma.agentRun.create({
      data: { organizationId: org.id, projectId: agent.projectId, agentId: agent.id, input: PROMPT, status: 'RUNNING', leaseOwner: 'gone', leaseExpiresAt: new Date(Date.now() - 1000), attempts: 3, lastSeq: 0 },
    });
    await app.rt.prisma.$transaction([
      app.rt.prisma.budgetReservation.create({
        data: { organizationId: org.id, projectId: agent.projectId, budgetId, runId: orphan.id, amountMicros: RESERVED, expiresAt: new Date(Date.now() + 60_000) },
      }),
      app.rt.prisma.budget.update({ where: { id: budgetId }, data: { reservedMicros: { increment: RESERVED } } }),
    ]);
    await app.rt.orchestrator.recover();
    expect((await app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: orphan.id } })).status).toBe('FAILED');
    await expectLedgerReconciles(org.id, budgetId);
  });
});

describe('periods, alerts and usage', () => {
  it('a new local day in a non-UTC organization starts a fresh period; the old day stays on the ledger', async () => {
    const { org, owner, agentGid, project } = await setup();
    await app.rt.prisma.organization.update({ where: { id: org.id }, data: { timeZone: 'America/Los_Angeles' } });
    const budget = await setBudget(owner, org, RESERVED * 2n);
    const budgetId = fromGlobalId(budget.id, 'Budget');
    // Just before local midnight yesterday the budget was used up…
    const todayStart = (await app.rt.prisma.budget.findUniqueOrThrow({ where: { id: budgetId } })).windowStart;
    const beforeMidnight = new Date(todayStart.getTime() - 1000);
    await app.rt.prisma.budget.update({ where: { id: budgetId }, data: { spentMicros: RESERVED * 2n, windowStart: new Date(todayStart.getTime() - 24 * 3600_000) } });
    await app.rt.prisma.usageRecord.create({
      data: { organizationId: org.id, projectId: project.id, provider: 'OPENAI', model: MODEL, costMicros: RESERVED * 2n, createdAt: beforeMidnight },
    });
    // …just after it, a run is admitted against the fresh day.
    const [run] = await startRuns(owner, agentGid, 1);
    await watchUntilDone([run!], budgetId, RESERVED * 2n);
    expect((await app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: run! } })).status).toBe('SUCCEEDED');
    const after = await app.rt.prisma.budget.findUniqueOrThrow({ where: { id: budgetId } });
    expect(after.windowStart).toEqual(todayStart);
    expect(after.spentMicros).toBe(ACTUAL);

    // The ledger splits the two local days; the DAY buckets are local dates.
    const usage = await owner.gql(
      `query($slug: String!, $from: DateTime!, $to: DateTime!) { organization(slug: $slug) { usage(from: $from, to: $to, groupBy: DAY) { rows { key cost } total { cost } } } }`,
      { slug: org.slug, from: new Date(todayStart.getTime() - 2 * 86_400_000).toISOString(), to: new Date(Date.now() + 86_400_000).toISOString() },
    );
    const rows = usage.data!.organization.usage.rows as { key: string; cost: string }[];
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => BigInt(r.cost))).toEqual([RESERVED * 2n, ACTUAL]);
    const localDay = new Intl.DateTimeFormat('en-CA', { timeZone: 'America/Los_Angeles' }).format(beforeMidnight);
    expect(rows[0]!.key).toBe(localDay);
  });

  it('announces 50 %, 80 % and 100 % with audit rows, and usage reconciles with the ledger by every grouping', async () => {
    const { org, owner, agentGid } = await setup();
    // Each run costs ACTUAL; the limit leaves room for exactly the holds of the runs we start.
    const budget = await setBudget(owner, org, ACTUAL * 4n + (RESERVED - ACTUAL));
    const budgetId = fromGlobalId(budget.id, 'Budget');
    for (let i = 0; i < 4; i++) {
      const [id] = await startRuns(owner, agentGid, 1);
      await watchUntilDone([id!], budgetId, ACTUAL * 4n + (RESERVED - ACTUAL));
    }
    const alerts = await app.rt.prisma.auditLog.findMany({ where: { organizationId: org.id, action: 'budget.threshold_crossed' }, orderBy: { createdAt: 'asc' } });
    expect(alerts.map((a) => (a.metadata as { percent: number }).percent)).toEqual([50, 80]);
    const from = new Date(Date.now() - 3600_000).toISOString();
    const to = new Date(Date.now() + 3600_000).toISOString();
    const ledger = (await app.rt.prisma.usageRecord.aggregate({ where: { organizationId: org.id }, _sum: { costMicros: true } }))._sum.costMicros!;
    for (const groupBy of ['DAY', 'MODEL', 'PROVIDER', 'PROJECT', 'AGENT']) {
      const res = await owner.gql(
        `query($slug: String!, $from: DateTime!, $to: DateTime!, $g: UsageGroupBy!) { organization(slug: $slug) { usage(from: $from, to: $to, groupBy: $g) { rows { cost } total { cost runs attempts } csv } } }`,
        { slug: org.slug, from, to, g: groupBy },
      );
      const usage = res.data!.organization.usage;
      expect(usage.rows.reduce((s: bigint, r: { cost: string }) => s + BigInt(r.cost), 0n)).toBe(ledger);
      expect(BigInt(usage.total.cost)).toBe(ledger);
      expect(usage.total.runs).toBe(4);
      expect(usage.csv.split('\n')[0]).toBe('key,label,cost_micros,cost_usd,input_tokens,cached_input_tokens,output_tokens,attempts,runs');
    }
    const b = await app.rt.prisma.budget.findUniqueOrThrow({ where: { id: budgetId } });
    expect(b.spentMicros).toBe(ledger);
  });

  it("lists an organization's budgets, or only its organization-wide or per-project ones", async () => {
    const { org, owner, project } = await setup();
    const other = await given(app).aProject(org);
    await setBudget(owner, org, 9_000_000n, { period: 'MONTHLY' });
    await setBudget(owner, org, 1_000_000n, { projectId: project.gid });
    await setBudget(owner, org, 2_000_000n, { projectId: other.gid, period: 'MONTHLY' });
    const list = async (organizationWide?: boolean) => {
      const res = await owner.gql(`query($slug: String!, $w: Boolean) { organization(slug: $slug) { budgets(organizationWide: $w) { limit project { id } } } }`, {
        slug: org.slug,
        w: organizationWide,
      });
      return (res.data!.organization.budgets as { limit: string; project: { id: string } | null }[]).map((b) => `${b.limit}@${b.project?.id ?? 'org'}`);
    };
    expect(await list(true)).toEqual(['9000000@org']);
    expect((await list(false)).sort()).toEqual([`1000000@${project.gid}`, `2000000@${other.gid}`].sort());
    expect(await list()).toHaveLength(3);
  });

  it('only ADMIN and above can set or remove budgets, and every change is audited', async () => {
    const { org, owner } = await setup();
    const member = await given(app).aMemberOf(org, 'MEMBER');
    const denied = await member.gql(SET_BUDGET, { input: { organizationId: org.gid, period: 'MONTHLY', limit: '5000000' } });
    expect(denied.data!.setBudget.__typename).toBe('ForbiddenError');
    const budget = await setBudget(owner, org, 5_000_000n, { period: 'MONTHLY' });
    await setBudget(owner, org, 6_000_000n, { period: 'MONTHLY' });
    const bad = await owner.gql(SET_BUDGET, { input: { organizationId: org.gid, period: 'MONTHLY', limit: '-1' } });
    expect(bad.data!.setBudget.__typename).toBe('ValidationError');
    const removed = await owner.gql(`mutation($id: ID!) { removeBudget(input: { id: $id }) { __typename } }`, { id: budget.id });
    expect(removed.data!.removeBudget.__typename).toBe('RemoveBudgetPayload');
    const actions = await app.rt.prisma.auditLog.findMany({ where: { organizationId: org.id, action: { startsWith: 'budget.' } }, orderBy: { createdAt: 'asc' } });
    expect(actions.map((a) => a.action)).toEqual(['budget.created', 'budget.updated', 'budget.removed']);
  });
});
