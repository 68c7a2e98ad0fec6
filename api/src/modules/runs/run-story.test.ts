import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestProject, type TestUser } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { collectRunEvents } from '../../../test/subscribe.js';
import { fromGlobalId, toGlobalId } from '../../lib/ids.js';

// What a run tells about itself: which provider each attempt ran on and why an entry was skipped, what it
// used when it was cut short, and whether it can be retried. The server has no provider keys: only the
// offline provider is configured.

const CREATE_AGENT = `mutation($input: CreateAgentInput!) { createAgent(input: $input) {
  __typename ... on CreateAgentPayload { agent { id } } ... on Error { message } } }`;
const START = `mutation($input: StartRunInput!) { startRun(input: $input) { __typename ... on StartRunPayload { run { id } } } }`;
const RUN = `query($id: ID!) { run(id: $id) { id status output provider model costMicros attempts
  usage { inputTokens cachedInputTokens outputTokens } usageEstimated viewerCanRetry } }`;
const CANCEL = `mutation($id: ID!) { cancelRun(input: { id: $id }) { __typename } }`;
const RETRY = `mutation($id: ID!) { retryRun(input: { id: $id }) { __typename
  ... on RetryRunPayload { run { id } } ... on ValidationError { message issues { path message } } } }`;

let app: TestServer;
let owner: TestUser;
let project: TestProject;

async function createAgent(input: Record<string, unknown>) {
  const res = await owner.gql(CREATE_AGENT, { input: { projectId: project.gid, name: 'Agent', maxOutputTokens: 400, ...input } });
  expect(res.data!.createAgent.__typename, JSON.stringify(res.data)).toBe('CreateAgentPayload');
  return res.data!.createAgent.agent.id as string;
}

async function startRun(agentId: string, input = 'Plan the launch') {
  const res = await owner.gql(START, { input: { agentId, input } });
  expect(res.data?.startRun?.__typename, JSON.stringify(res)).toBe('StartRunPayload');
  return res.data!.startRun.run.id as string;
}

const getRun = async (id: string) => (await owner.gql(RUN, { id })).data!.run;

/** The agent of the brief: OpenAI (no key here) first, the offline provider as its fallback. */
const withOfflineFallback = () =>
  createAgent({ provider: 'OPENAI', model: 'gpt-5', fallbackChain: [{ provider: 'OFFLINE', model: 'offline-small' }] });

beforeAll(async () => {
  // Slow enough to cancel a run mid-stream.
  app = await startTestServer({ env: { OFFLINE_TOKEN_DELAY_MS: '30' } });
  const org = await given(app).anOrganization();
  owner = org.owner;
  project = await given(app).aProject(org);
});
afterAll(async () => {
  await app?.close();
});

describe('a run whose primary provider is not configured', () => {
  it('says live, before its first token, that the primary was skipped and which fallback streams', async () => {
    const agentId = await withOfflineFallback();
    const runId = await startRun(agentId);
    const { events, completed } = await collectRunEvents(app.wsUrl, owner.token, runId);
    expect(completed).toBe(true);

    const story = events.filter((e) => e.type === 'LOG');
    expect(story.map((e) => e.payload)).toEqual([
      {
        kind: 'skip',
        provider: 'OPENAI',
        model: 'gpt-5',
        chainIndex: 0,
        reason: 'unconfigured',
        detail: 'not configured (no OPENAI_API_KEY)',
        message: 'OpenAI gpt-5 (primary) skipped: not configured (no OPENAI_API_KEY)',
      },
      {
        kind: 'attempt',
        provider: 'OFFLINE',
        model: 'offline-small',
        chainIndex: 1,
        attempt: 1,
        attemptForEntry: 1,
        message: 'Attempt 1: Offline offline-small (fallback 1)',
      },
    ]);
    // Both come before the output: a page following the run can name the streaming model from its start.
    const firstToken = events.find((e) => e.type === 'TOKEN')!;
    expect(story.every((e) => e.seq < firstToken.seq)).toBe(true);
    expect(events.find((e) => e.type === 'USAGE')!.payload).toMatchObject({ provider: 'OFFLINE', model: 'offline-small', attempts: 1, estimated: false });

    const run = await getRun(runId);
    expect(run).toMatchObject({ status: 'SUCCEEDED', provider: 'OFFLINE', model: 'offline-small', attempts: 1, usageEstimated: false });
    expect(run.usage.outputTokens).toBeGreaterThan(0);

    // Read again later, without its tokens, the story is the same.
    const STORY = `query($id: ID!) { run(id: $id) { events(types: [LOG]) { seq payload } } }`;
    const stored = (await owner.gql(STORY, { id: runId })).data!.run.events as { seq: number; payload: unknown }[];
    expect(stored).toEqual(story.map((e) => ({ seq: e.seq, payload: e.payload })));
  });
});

describe('a run cancelled while it streams', () => {
  it('keeps the estimate of what it used, flagged as estimated, and the model it ran on', async () => {
    const agentId = await withOfflineFallback();
    const runId = await startRun(agentId, 'Write a long plan with many steps');
    await collectRunEvents(app.wsUrl, owner.token, runId, { stopAfter: (e) => e.type === 'TOKEN' && (e.text?.length ?? 0) > 0 && e.seq >= 8 });
    expect((await owner.gql(CANCEL, { id: runId })).data!.cancelRun.__typename).toBe('CancelRunPayload');
    const { events } = await collectRunEvents(app.wsUrl, owner.token, runId);
    expect(events.at(-1)).toMatchObject({ type: 'STATUS', status: 'CANCELLED' });

    const run = await getRun(runId);
    expect(run).toMatchObject({ status: 'CANCELLED', provider: 'OFFLINE', model: 'offline-small', usageEstimated: true, costMicros: '0' });
    expect(run.output.length).toBeGreaterThan(0);
    expect(run.usage.inputTokens).toBeGreaterThan(0);
    expect(run.usage.outputTokens).toBeGreaterThan(0);
    expect(run.usage.outputTokens).toBeLessThan(400);
    // The same figures as the usage ledger settled, and as the run's last USAGE event, which says they are estimated.
    const ledger = await app.rt.prisma.usageRecord.findMany({ where: { runId: fromGlobalId(runId, 'Run') } });
    expect(ledger).toHaveLength(1);
    expect(ledger[0]).toMatchObject({ provider: 'OFFLINE', inputTokens: run.usage.inputTokens, outputTokens: run.usage.outputTokens });
    expect(events.filter((e) => e.type === 'USAGE').map((e) => e.payload)).toEqual([
      expect.objectContaining({ provider: 'OFFLINE', model: 'offline-small', outputTokens: run.usage.outputTokens, estimated: true }),
    ]);

    // In a list too: the flag comes with each run of the page.
    const LIST = `query($id: ID!) { project(id: $id) { runs(first: 10) { edges { node { id status usageEstimated } } } } }`;
    const nodes = (await owner.gql(LIST, { id: project.gid })).data!.project.runs.edges.map((e: { node: unknown }) => e.node);
    expect(nodes).toContainEqual({ id: runId, status: 'CANCELLED', usageEstimated: true });
    expect(nodes.filter((n: { status: string }) => n.status === 'SUCCEEDED').every((n: { usageEstimated: boolean }) => !n.usageEstimated)).toBe(true);
  });
});

describe('retrying a run of an archived agent', () => {
  it('is not offered, and the retry mutation still refuses it', async () => {
    const agentId = await createAgent({ provider: 'OFFLINE', model: 'offline-small' });
    const runId = await startRun(agentId, 'Once');
    await expect.poll(async () => (await getRun(runId)).status, { timeout: 10_000, interval: 20 }).toBe('SUCCEEDED');
    expect((await getRun(runId)).viewerCanRetry).toBe(true);

    await owner.gql(`mutation($id: ID!) { archiveAgent(input: { id: $id }) { __typename } }`, { id: agentId });
    expect((await getRun(runId)).viewerCanRetry).toBe(false);
    // The mutation's own check, for a client that offers it anyway.
    const retry = (await owner.gql(RETRY, { id: runId })).data!.retryRun;
    // On the input's own field: retryRun takes the run's id, no agentId.
    expect(retry).toEqual({
      __typename: 'ValidationError',
      message: 'id: This agent is archived',
      issues: [{ path: ['id'], message: 'This agent is archived' }],
    });
  });
});

describe('retrying a run of an archived project', () => {
  it('is not offered while the project is archived, as the retry mutation refuses it', async () => {
    const agentId = await createAgent({ provider: 'OFFLINE', model: 'offline-small', maxOutputTokens: 20 });
    const runId = await startRun(agentId, 'Before the archive');
    await expect.poll(async () => (await getRun(runId)).status, { timeout: 10_000, interval: 20 }).toBe('SUCCEEDED');
    const PROJECT = `mutation($id: ID!) { archiveProject(input: { id: $id }) { __typename } }`;
    expect((await owner.gql(PROJECT, { id: project.gid })).data!.archiveProject.__typename).toBe('ArchiveProjectPayload');
    try {
      const retry = (await owner.gql(RETRY, { id: runId })).data!.retryRun;
      expect(retry).toMatchObject({ __typename: 'ValidationError', issues: [{ path: ['id'] }] });
      expect((await getRun(runId)).viewerCanRetry).toBe(false);
    } finally {
      await owner.gql(`mutation($id: ID!) { restoreProject(input: { id: $id }) { __typename } }`, { id: project.gid });
    }
    expect((await getRun(runId)).viewerCanRetry).toBe(true);
  });
});

describe('retrying a run', () => {
  it('starts one retry, however often and however concurrently it is asked for, and answers that retry each time', async () => {
    const agentId = await createAgent({ provider: 'OFFLINE', model: 'offline-small', maxOutputTokens: 20 });
    const runId = await startRun(agentId, 'Once more');
    await expect.poll(async () => (await getRun(runId)).status, { timeout: 10_000, interval: 20 }).toBe('SUCCEEDED');
    // A caller's own idempotency key never stands for a retry, whatever it says.
    const own = await owner.gql(START, { input: { agentId, input: 'Something else', idempotencyKey: `retry of ${fromGlobalId(runId, 'Run')}` } });
    expect(own.data!.startRun.__typename).toBe('StartRunPayload');

    // A double click, or an integrator repeating a retry whose answer got lost: one paid run, not two.
    const retries = await Promise.all([owner.gql(RETRY, { id: runId }), owner.gql(RETRY, { id: runId })]);
    const ids = retries.map((r) => r.data!.retryRun.run?.id);
    expect(ids[0]).toBeTruthy();
    expect(ids[1]).toBe(ids[0]);
    expect((await owner.gql(RETRY, { id: runId })).data!.retryRun).toEqual({ __typename: 'RetryRunPayload', run: { id: ids[0] } });
    expect(await app.rt.prisma.agentRun.count({ where: { parentRunId: fromGlobalId(runId, 'Run') } })).toBe(1);

    // The retry itself can be retried, once, as any run.
    await expect.poll(async () => (await getRun(ids[0])).status, { timeout: 10_000, interval: 20 }).toBe('SUCCEEDED');
    const again = (await owner.gql(RETRY, { id: ids[0] })).data!.retryRun.run.id;
    expect(again).not.toBe(ids[0]);
    expect(await app.rt.prisma.agentRun.count({ where: { parentRunId: fromGlobalId(ids[0], 'Run') } })).toBe(1);
  });
});

describe('who started and who cancelled a run', () => {
  const WHO = `query($id: ID!) { run(id: $id) { status startedBy { id name } cancelledBy { id name } } }`;

  it('names the member who started it, the first who cancelled it (queued or running), and who retried it', async () => {
    const member = await given(app).aMemberOf(project.org, 'MEMBER', 'Cass Canceller');
    const agentId = await withOfflineFallback();
    const me = { id: toGlobalId('User', owner.id), name: expect.any(String) };
    const them = { id: toGlobalId('User', member.id), name: 'Cass Canceller' };

    // Running: the owner starts it, the member cancels it first, the owner's later cancel changes nothing.
    const running = await startRun(agentId, 'Write a long plan with many steps');
    await collectRunEvents(app.wsUrl, owner.token, running, { stopAfter: (e) => e.type === 'TOKEN' });
    expect((await member.gql(CANCEL, { id: running })).data!.cancelRun.__typename).toBe('CancelRunPayload');
    expect((await owner.gql(CANCEL, { id: running })).data!.cancelRun.__typename).toBe('CancelRunPayload');
    await expect.poll(async () => (await owner.gql(WHO, { id: running })).data!.run.status, { timeout: 10_000, interval: 20 }).toBe('CANCELLED');
    expect((await owner.gql(WHO, { id: running })).data!.run).toEqual({ status: 'CANCELLED', startedBy: me, cancelledBy: them });

    // Queued: cancelled at once, by whoever asked.
    const row = await app.rt.prisma.agentRun.create({
      data: { organizationId: project.org.id, projectId: project.id, agentId: fromGlobalId(agentId, 'Agent'), createdById: member.id, input: 'Queued' },
    });
    const queued = toGlobalId('Run', row.id);
    expect((await owner.gql(CANCEL, { id: queued })).data!.cancelRun.__typename).toBe('CancelRunPayload');
    expect((await owner.gql(WHO, { id: queued })).data!.run).toEqual({ status: 'CANCELLED', startedBy: them, cancelledBy: me });

    // A retry was started by whoever retried it, and is nobody's cancel.
    const retried = (await member.gql(RETRY, { id: running })).data!.retryRun.run.id as string;
    expect((await member.gql(WHO, { id: retried })).data!.run).toMatchObject({ startedBy: them, cancelledBy: null });

    // A deleted account leaves the run, unnamed.
    await app.rt.prisma.user.delete({ where: { id: member.id } });
    expect((await owner.gql(WHO, { id: running })).data!.run).toMatchObject({ cancelledBy: null });
    expect((await owner.gql(WHO, { id: queued })).data!.run).toMatchObject({ startedBy: null });
  });
});
