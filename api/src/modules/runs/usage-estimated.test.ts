import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestProject, type TestUser } from '../../../test/factories.js';
import { startOpenAIFake, type FakeProviderServer } from '../../../test/fakes/index.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { collectRunEvents } from '../../../test/subscribe.js';

// An OpenAI-compatible server that ignores `stream_options.include_usage` answers without a usage report:
// the run is billed at our bound, and says so.

const RUN = `query($id: ID!) { run(id: $id) { status usage { inputTokens outputTokens } usageEstimated } }`;
let openai: FakeProviderServer;
let app: TestServer;
let owner: TestUser;
let project: TestProject;

beforeAll(async () => {
  openai = await startOpenAIFake({ apiKey: 'sk-usage' });
  app = await startTestServer({ env: { OPENAI_API_KEY: 'sk-usage', OPENAI_BASE_URL: openai.url } });
  const org = await given(app).anOrganization();
  owner = org.owner;
  project = await given(app).aProject(org);
}, 180_000);
afterAll(async () => {
  await app?.close();
  await openai?.close();
});

async function finishedRun() {
  const created = await owner.gql(`mutation($input: CreateAgentInput!) { createAgent(input: $input) { ... on CreateAgentPayload { agent { id } } } }`, {
    input: { projectId: project.gid, name: 'Compatible', provider: 'OPENAI', model: 'gpt-4o-mini', maxOutputTokens: 50 },
  });
  const started = await owner.gql(`mutation($input: StartRunInput!) { startRun(input: $input) { ... on StartRunPayload { run { id } } } }`, {
    input: { agentId: created.data!.createAgent.agent.id, input: 'Summarise the plan' },
  });
  const id = started.data!.startRun.run.id as string;
  const { events } = await collectRunEvents(app.wsUrl, owner.token, id);
  return { run: (await owner.gql(RUN, { id })).data!.run, usageEvent: events.find((e) => e.type === 'USAGE')?.payload as Record<string, unknown> };
}

describe('a run whose provider sent no usage report', () => {
  it('is marked estimated, in its row and its USAGE event; with the report it is not', async () => {
    openai.enqueue({ kind: 'reply', text: 'word '.repeat(40), omitUsage: true });
    const estimated = await finishedRun();
    expect(estimated.run).toMatchObject({ status: 'SUCCEEDED', usageEstimated: true, usage: { outputTokens: 50 } });
    expect(estimated.usageEvent).toMatchObject({ estimated: true, outputTokens: 50 });

    openai.enqueue({ kind: 'reply', text: 'word '.repeat(40), usage: { inputTokens: 12, outputTokens: 40 } });
    const reported = await finishedRun();
    expect(reported.run).toMatchObject({ status: 'SUCCEEDED', usageEstimated: false, usage: { inputTokens: 12, outputTokens: 40 } });
    expect(reported.usageEvent).toMatchObject({ estimated: false });
  });
});
