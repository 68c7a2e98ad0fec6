import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAIFake, type FakeProviderServer } from '../../../test/fakes/index.js';
import { given, type TestOrg } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { fromGlobalId, toGlobalId } from '../../lib/ids.js';
import { costMicros, estimateInputTokens, maxCostMicros } from '../../providers/index.js';
import { budgetChannel } from './budget-guard.js';

// A $0 budget freezes spending: free (offline) runs go on, paid ones are blocked, and no threshold alert
// claims that "80 %" of nothing was spent (docs/budgets.md, "A zero limit").
const USAGE = { inputTokens: 20, cachedInputTokens: 0, outputTokens: 50 };
const MODEL = 'gpt-4.1';
const ACTUAL = costMicros('OPENAI', MODEL, USAGE);

const SET_BUDGET = `mutation($input: SetBudgetInput!) { setBudget(input: $input) {
  __typename ... on SetBudgetPayload { budget { id limit spent percentUsed } } ... on Error { message } } }`;
const START_RUN = `mutation($a: ID!, $i: String!) { startRun(input: { agentId: $a, input: $i }) { __typename ... on StartRunPayload { run { id } } } }`;

let openai: FakeProviderServer;
let app: TestServer;

beforeAll(async () => {
  openai = await startOpenAIFake({ apiKey: 'sk-zero', defaultBehavior: { kind: 'reply', text: 'Paid for.', chunks: 2, usage: USAGE } });
  app = await startTestServer({ env: { OPENAI_API_KEY: 'sk-zero', OPENAI_BASE_URL: openai.url } });
});
afterAll(async () => {
  await app?.close();
  await openai?.close();
});

/** An organization with a free (offline) agent and a paid (OpenAI) one, and the budget alerts it publishes. */
async function anOrganizationWithAgents() {
  const org = await given(app).anOrganization();
  const project = await given(app).aProject(org);
  const free = await given(app).anOfflineAgent(project, { model: 'offline-small', maxOutputTokens: 50 });
  const paid = await app.rt.prisma.agent.create({
    data: { organizationId: org.id, projectId: project.id, name: 'Metered', provider: 'OPENAI', model: MODEL, maxOutputTokens: 100 },
  });
  const published: { percent: number }[] = [];
  const unsubscribe = await app.rt.bus.subscribe(budgetChannel(org.id), (m) => published.push(m as { percent: number }));
  return { org, freeGid: free.gid, paidGid: toGlobalId('Agent', paid.id), published, unsubscribe };
}

async function setDailyBudget(org: TestOrg, limit: bigint) {
  const res = await org.owner.gql(SET_BUDGET, { input: { organizationId: org.gid, period: 'DAILY', limit: limit.toString() } });
  expect(res.data!.setBudget.__typename, JSON.stringify(res)).toBe('SetBudgetPayload');
  return res.data!.setBudget.budget as { id: string; limit: string; spent: string; percentUsed: number };
}

/** Starts a run and waits until it is final; returns its status. */
async function run(org: TestOrg, agentGid: string, input: string) {
  const res = await org.owner.gql(START_RUN, { a: agentGid, i: input });
  expect(res.data!.startRun.__typename, JSON.stringify(res)).toBe('StartRunPayload');
  const id = fromGlobalId(res.data!.startRun.run.id, 'Run');
  for (let i = 0; ; i++) {
    const r = await app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id } });
    if (!['QUEUED', 'RUNNING'].includes(r.status)) return r.status;
    expect(i, `run ${id} still ${r.status} after 20 s`).toBeLessThan(1000);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const alertsOf = async (orgId: string) =>
  (
    await app.rt.prisma.auditLog.findMany({ where: { organizationId: orgId, action: 'budget.threshold_crossed' }, orderBy: { createdAt: 'asc' } })
  ).map((a) => a.metadata as { percent: number; limitMicros: string; spentMicros: string });

describe('a $0 budget', () => {
  it('lets free runs through without any threshold alert, and blocks paid runs with budget.exceeded', async () => {
    const { org, freeGid, paidGid, published, unsubscribe } = await anOrganizationWithAgents();
    const budget = await setDailyBudget(org, 0n);

    expect(await run(org, freeGid, 'Free one')).toBe('SUCCEEDED');
    expect(await run(org, freeGid, 'Free two')).toBe('SUCCEEDED');
    expect(await run(org, paidGid, 'Paid')).toBe('BLOCKED');
    expect(await run(org, freeGid, 'Free three')).toBe('SUCCEEDED');

    // Nothing was spent, so no threshold of $0 was crossed: no "50 %" or "80 %" (or "100 %") of $0.00 spent.
    expect(await alertsOf(org.id)).toEqual([]);
    expect(published).toEqual([]);
    const exceeded = await app.rt.prisma.auditLog.findMany({ where: { organizationId: org.id, action: 'budget.exceeded' } });
    expect(exceeded).toHaveLength(1);
    const b = await app.rt.prisma.budget.findUniqueOrThrow({ where: { id: fromGlobalId(budget.id, 'Budget') } });
    expect(b.spentMicros).toBe(0n);
    expect(b.alertedPercent).toBe(0);
    await unsubscribe();
  });

  it('lowered to $0 after money was spent: one 100 % alert, never 50 % or 80 % of $0', async () => {
    const { org, freeGid, paidGid, published, unsubscribe } = await anOrganizationWithAgents();
    await setDailyBudget(org, 1_000_000n);
    expect(await run(org, paidGid, 'Paid before the freeze')).toBe('SUCCEEDED');
    expect(ACTUAL * 2n).toBeLessThan(1_000_000n); // under 50 %: no alert yet
    expect(await alertsOf(org.id)).toEqual([]);

    await setDailyBudget(org, 0n);
    expect(await run(org, freeGid, 'Free after the freeze')).toBe('SUCCEEDED');
    expect(await run(org, freeGid, 'Free again')).toBe('SUCCEEDED');

    expect(await alertsOf(org.id)).toEqual([expect.objectContaining({ percent: 100, limitMicros: '0', spentMicros: ACTUAL.toString() })]);
    await expect.poll(() => published.map((m) => m.percent)).toEqual([100]);
    await unsubscribe();
  });

  it('claims nothing while frozen: raised again the same day, it alerts from the first threshold', async () => {
    const { org, freeGid, paidGid } = await anOrganizationWithAgents();
    await setDailyBudget(org, 0n);
    expect(await run(org, freeGid, 'Free while frozen')).toBe('SUCCEEDED');
    // Unfrozen with room for exactly one paid run's hold: what it costs is just over half of that.
    const prompt = 'Paid after the thaw';
    const limit = maxCostMicros('OPENAI', MODEL, estimateInputTokens({ messages: [{ role: 'user', content: prompt }] }), 100);
    expect(ACTUAL * 100n / limit).toBeGreaterThanOrEqual(50n);
    expect(ACTUAL * 100n / limit).toBeLessThan(80n);
    await setDailyBudget(org, limit);
    expect(await run(org, paidGid, prompt)).toBe('SUCCEEDED');
    expect((await alertsOf(org.id)).map((a) => a.percent)).toEqual([50]);
  });
});
