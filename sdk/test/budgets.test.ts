import { BudgetExceededError, ForbiddenError, ValidationError, type HubClient } from '@hub/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAIFake, type FakeProviderServer } from '../../api/test/fakes/index.js';
import { BOOT_TIMEOUT_MS, clientFor, given, startTestServer, type TestServer } from './support.js';

let openai: FakeProviderServer;
let app: TestServer;

beforeAll(async () => {
  openai = await startOpenAIFake({ apiKey: 'sk-sdk', defaultBehavior: { kind: 'reply', text: 'Paid answer.', usage: { inputTokens: 30, outputTokens: 20 } } });
  app = await startTestServer({ env: { OPENAI_API_KEY: 'sk-sdk', OPENAI_BASE_URL: openai.url } });
}, BOOT_TIMEOUT_MS);
afterAll(async () => {
  await app.close();
  await openai.close();
});

describe('budgets and usage', () => {
  let client: HubClient;
  let slug: string;
  let organizationId: string;
  let agentId: string;

  beforeAll(async () => {
    const org = await given(app).anOrganization();
    const project = await given(app).aProject(org);
    client = clientFor(app, org.owner.token);
    slug = org.slug;
    organizationId = org.gid;
    agentId = (await client.agents.create({ projectId: project.gid, name: 'Paid', provider: 'OPENAI', model: 'gpt-4.1', maxOutputTokens: 100 })).id;
  });
  afterAll(() => client.close());

  it('sets, lists and removes a budget; bad amounts and lower roles get typed errors', async () => {
    const budget = await client.budgets.set({ organizationId, period: 'MONTHLY', limit: '25000000' });
    expect(budget).toMatchObject({ period: 'MONTHLY', limit: '25000000', spent: '0', reserved: '0', remaining: '25000000', viewerCanEdit: true });
    expect((await client.budgets.list(slug)).map((b) => b.id)).toEqual([budget.id]);
    expect((await client.budgets.list(slug, { organizationWide: true })).map((b) => b.id)).toEqual([budget.id]);
    expect(await client.budgets.list(slug, { organizationWide: false })).toEqual([]);
    // Request options merged into the same object leave organizationWide as it was.
    expect(await client.budgets.list(slug, { organizationWide: false, signal: new AbortController().signal, timeoutMs: 10_000 })).toEqual([]);
    await expect(client.budgets.set({ organizationId, period: 'DAILY', limit: '-5' })).rejects.toBeInstanceOf(ValidationError);

    const org = { id: (await app.rt.prisma.organization.findUniqueOrThrow({ where: { slug } })).id, gid: organizationId, slug, owner: null as never };
    const viewer = await given(app).aMemberOf(org, 'VIEWER');
    const asViewer = clientFor(app, viewer.token);
    await expect(asViewer.budgets.set({ organizationId, period: 'DAILY', limit: '1' })).rejects.toBeInstanceOf(ForbiddenError);
    await asViewer.close();

    expect(await client.budgets.remove(budget.id)).toBe(budget.id);
    expect(await client.budgets.list(slug)).toEqual([]);
  });

  it('runs.wait rejects a BLOCKED run with BudgetExceededError carrying the budget', async () => {
    await client.budgets.set({ organizationId, period: 'DAILY', limit: '10' });
    const run = await client.runs.start({ agentId, input: 'This will not fit' });
    const err = await client.runs.wait(run.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ code: 'BUDGET_EXCEEDED', period: 'DAILY', limit: '10', spent: '0', projectScoped: false });
    expect(Date.parse((err as BudgetExceededError).resetsAt)).toBeGreaterThan(Date.now());
    expect((await client.runs.get(run.id)).status).toBe('BLOCKED');
  });

  it('reports usage that reconciles with the budget', async () => {
    const [budget] = await client.budgets.list(slug);
    await client.budgets.set({ organizationId, period: 'DAILY', limit: '100000000' });
    const done = await client.runs.wait((await client.runs.start({ agentId, input: 'Now it fits' })).id);
    expect(done.status).toBe('SUCCEEDED');
    const report = await client.usage.report(slug, { from: new Date(Date.now() - 3600_000), to: new Date(Date.now() + 3600_000), groupBy: 'MODEL' });
    expect(report.rows).toEqual([expect.objectContaining({ key: 'OPENAI/gpt-4.1', cost: done.costMicros, runs: 1 })]);
    const [after] = await client.budgets.list(slug);
    expect(after!.id).toBe(budget!.id);
    expect(after!.spent).toBe(report.total.cost);
    expect(report.csv.split('\n')[1]).toContain('OPENAI/gpt-4.1');
  });
});
