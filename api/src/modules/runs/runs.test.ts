import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAIFake, startAnthropicFake, type FakeProviderServer } from '../../../test/fakes/index.js';
import { given, type TestProject, type TestUser } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { usingPostgres } from '../../../test/db.js';
import { collectRunEvents } from '../../../test/subscribe.js';
import { fromGlobalId, toGlobalId } from '../../lib/ids.js';
import { costMicros } from '../../providers/index.js';

const CREATE_AGENT = `mutation($input: CreateAgentInput!) { createAgent(input: $input) {
  __typename ... on CreateAgentPayload { agent { id } } ... on Error { message } ... on ValidationError { issues { path message } } } }`;
const START = `mutation($input: StartRunInput!) { startRun(input: $input) {
  __typename ... on StartRunPayload { run { id status } } ... on Error { message } } }`;
const RUN = `query($id: ID!) { run(id: $id) { id status output error errorCode provider model costMicros attempts
  usage { inputTokens outputTokens cachedInputTokens } startedAt firstTokenAt finishedAt lastSeq } }`;

let openai: FakeProviderServer;
let anthropic: FakeProviderServer;
let app: TestServer;
let owner: TestUser;
let project: TestProject;

async function createAgent(input: Record<string, unknown>) {
  const res = await owner.gql(CREATE_AGENT, { input: { projectId: project.gid, name: 'Agent', maxOutputTokens: 200, ...input } });
  expect(res.data!.createAgent.__typename, JSON.stringify(res.data)).toBe('CreateAgentPayload');
  return res.data!.createAgent.agent.id as string;
}

async function startRun(agentId: string, input = 'Summarise the plan', extra: Record<string, unknown> = {}) {
  const res = await owner.gql(START, { input: { agentId, input, ...extra } });
  expect(res.data?.startRun?.__typename, JSON.stringify(res)).toBe('StartRunPayload');
  return res.data!.startRun.run.id as string;
}

const getRun = async (id: string, as = owner) => (await as.gql(RUN, { id })).data!.run;

async function waitForStatus(id: string, statuses: string[], timeoutMs = 10_000, as = owner) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const run = await getRun(id, as);
    if (statuses.includes(run.status)) return run;
    if (Date.now() > until) throw new Error(`run ${id} still ${run.status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  openai = await startOpenAIFake({ apiKey: 'sk-test-openai' });
  anthropic = await startAnthropicFake({ apiKey: 'sk-ant-test' });
  app = await startTestServer({
    env: {
      OFFLINE_TOKEN_DELAY_MS: '4',
      OPENAI_API_KEY: 'sk-test-openai',
      OPENAI_BASE_URL: openai.url,
      ANTHROPIC_API_KEY: 'sk-ant-test',
      ANTHROPIC_BASE_URL: anthropic.url,
      ORG_CONCURRENCY: '2',
    },
  });
  const org = await given(app).anOrganization();
  owner = org.owner;
  project = await given(app).aProject(org);
});
afterAll(async () => {
  await app.close();
  await openai.close();
  await anthropic.close();
});

describe('runs on the offline provider', () => {
  it('streams every token live, in order, ending with the final status, and stores the output', async () => {
    const agentId = await createAgent({ provider: 'OFFLINE', model: 'offline-small' });
    const runId = await startRun(agentId);
    const { events, completed } = await collectRunEvents(app.wsUrl, owner.token, runId);
    expect(completed).toBe(true);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events[0]).toMatchObject({ type: 'STATUS', status: 'QUEUED' });
    expect(events.at(-1)).toMatchObject({ type: 'STATUS', status: 'SUCCEEDED' });
    const text = events.filter((e) => e.type === 'TOKEN').map((e) => e.text).join('');
    const run = await getRun(runId);
    expect(run.output).toBe(text);
    expect(text.length).toBeGreaterThan(50);
    expect(run).toMatchObject({ status: 'SUCCEEDED', provider: 'OFFLINE', model: 'offline-small', costMicros: '0', attempts: 1 });
    expect(run.usage.outputTokens).toBeGreaterThan(0);
    expect(new Date(run.firstTokenAt) >= new Date(run.startedAt)).toBe(true);
  });

  it('a client that reconnects mid-run with its last seq misses nothing and sees nothing twice', async () => {
    const agentId = await createAgent({ provider: 'OFFLINE', model: 'offline-large' });
    const runId = await startRun(agentId, 'Write a long plan with many steps');
    const first = await collectRunEvents(app.wsUrl, owner.token, runId, { stopAfter: (e) => e.type === 'TOKEN' && e.seq >= 4 });
    expect(first.completed).toBe(false);
    const lastSeen = first.events.at(-1)!.seq;
    const second = await collectRunEvents(app.wsUrl, owner.token, runId, { afterSeq: lastSeen });
    expect(second.completed).toBe(true);
    const all = [...first.events, ...second.events];
    expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
    const run = await getRun(runId);
    expect(all.filter((e) => e.type === 'TOKEN').map((e) => e.text).join('')).toBe(run.output);
    // Subscribing after the end replays the whole stored log and completes.
    const replay = await collectRunEvents(app.wsUrl, owner.token, runId);
    expect(replay.events.map((e) => e.seq)).toEqual(all.map((e) => e.seq));
  });

  it('Run.events serves the page asked for: first 0 is none, a negative first a ValidationError', async () => {
    const agentId = await createAgent({ provider: 'OFFLINE', model: 'offline-small' });
    const runId = await startRun(agentId);
    await waitForStatus(runId, ['SUCCEEDED']);
    const EVENTS = `query($id: ID!, $first: Int) { run(id: $id) { events(first: $first) { seq } } }`;
    const events = (first: number) => owner.gql(EVENTS, { id: runId, first });
    expect((await events(2)).data!.run.events).toEqual([{ seq: 1 }, { seq: 2 }]);
    expect((await events(0)).data!.run.events).toEqual([]);
    const negative = await events(-1);
    expect(negative.errors?.map((e) => [e.message, e.extensions?.code, e.extensions?.issues])).toEqual([
      ['first: Ask for 0 events or more', 'VALIDATION_FAILED', [{ path: ['first'], message: 'Ask for 0 events or more' }]],
    ]);
  });

  it('the same idempotency key returns the same run', async () => {
    const agentId = await createAgent({ provider: 'OFFLINE', model: 'offline-small' });
    const [a, b] = await Promise.all([
      startRun(agentId, 'once', { idempotencyKey: 'key-1' }),
      startRun(agentId, 'once', { idempotencyKey: 'key-1' }),
    ]);
    expect(a).toBe(b);
    expect(await app.rt.prisma.agentRun.count({ where: { idempotencyKey: 'key-1' } })).toBe(1);
  });

  it('refuses a reused idempotency key with another input or agent as a conflict, creating nothing', async () => {
    const agentId = await createAgent({ provider: 'OFFLINE', model: 'offline-small' });
    const otherAgentId = await createAgent({ provider: 'OFFLINE', model: 'offline-small' });
    const first = await startRun(agentId, 'write the summary', { idempotencyKey: 'key-conflict' });
    const runsBefore = await app.rt.prisma.agentRun.count();
    const CONFLICT = `mutation($input: StartRunInput!) { startRun(input: $input) {
      __typename ... on StartRunPayload { run { id } } ... on ConflictError { code field message } } }`;
    const attempt = (input: Record<string, unknown>) =>
      owner.gql(CONFLICT, { input: { idempotencyKey: 'key-conflict', ...input } }).then((r) => r.data?.startRun ?? r.errors);
    for (const other of [{ agentId, input: 'delete everything' }, { agentId: otherAgentId, input: 'write the summary' }]) {
      expect(await attempt(other)).toEqual({
        __typename: 'ConflictError',
        code: 'CONFLICT',
        field: 'idempotencyKey',
        message: 'This idempotency key already started a run with another agent or input: use a new key for a new run',
      });
    }
    // The same start again is still the same run.
    expect(await attempt({ agentId, input: 'write the summary' })).toEqual({ __typename: 'StartRunPayload', run: { id: first } });
    expect(await app.rt.prisma.agentRun.count()).toBe(runsBefore);
  });

  it('checks who starts what in the statement that creates the run: archived agent, viewer, outsider, bad input', async () => {
    const agentId = await createAgent({ provider: 'OFFLINE', model: 'offline-small' });
    const viewer = await given(app).aMemberOf(project.org, 'VIEWER');
    const outsider = await given(app).aUser();
    const runsBefore = await app.rt.prisma.agentRun.count();
    const start = (who: TestUser, input: string) => who.gql(START, { input: { agentId, input } }).then((r) => r.data!.startRun);

    // A viewer is refused (and the denial audited) even with input that would not pass validation.
    expect(await start(viewer, 'go')).toMatchObject({ __typename: 'ForbiddenError' });
    expect(await start(viewer, '')).toMatchObject({ __typename: 'ForbiddenError' });
    const denials = await app.rt.prisma.auditLog.count({ where: { actorId: viewer.id, action: 'access.denied' } });
    expect(denials).toBe(2);
    // Someone outside the organization learns nothing, not even that the agent exists.
    expect(await start(outsider, 'go')).toMatchObject({ __typename: 'NotFoundError' });
    expect(await start(owner, '')).toMatchObject({ __typename: 'ValidationError' });
    // Only spaces and line breaks are nothing to do either.
    expect(await start(owner, ' \n\t ')).toMatchObject({ __typename: 'ValidationError', message: 'input: Give the agent something to do' });

    await owner.gql(`mutation($id: ID!) { archiveAgent(input: { id: $id }) { __typename } }`, { id: agentId });
    expect(await start(owner, 'go')).toMatchObject({ __typename: 'ValidationError', message: 'agentId: This agent is archived' });
    expect(await app.rt.prisma.agentRun.count()).toBe(runsBefore);
  });

  it('refuses input that cannot be stored (a NUL character) as a ValidationError on input, creating nothing', async () => {
    const agentId = await createAgent({ provider: 'OFFLINE', model: 'offline-small' });
    const runsBefore = await app.rt.prisma.agentRun.count();
    const res = await owner.gql(`mutation($input: StartRunInput!) { startRun(input: $input) {
      __typename ... on ValidationError { issues { path message } } } }`, { input: { agentId, input: 'a file\u0000with a NUL', idempotencyKey: 'k\u0000' } });
    expect(res.errors).toBeUndefined();
    expect(res.data!.startRun.__typename).toBe('ValidationError');
    const issues: { path: string[] }[] = res.data!.startRun.issues;
    expect(issues.sort((a, b) => a.path[0]!.localeCompare(b.path[0]!))).toEqual([
      { path: ['idempotencyKey'], message: 'Remove the NUL characters (U+0000): text cannot hold them' },
      { path: ['input'], message: 'Remove the NUL characters (U+0000): text cannot hold them' },
    ]);
    expect(await app.rt.prisma.agentRun.count()).toBe(runsBefore);
  });

  it('holds the per-organization concurrency cap', async () => {
    const agentId = await createAgent({ provider: 'OFFLINE', model: 'offline-small' });
    const gids = await Promise.all(Array.from({ length: 6 }, (_, i) => startRun(agentId, `task ${i}`)));
    const ids = gids.map((g) => fromGlobalId(g, 'Run'));
    let maxRunning = 0;
    for (;;) {
      const running = await app.rt.prisma.agentRun.count({ where: { id: { in: ids }, status: 'RUNNING' } });
      maxRunning = Math.max(maxRunning, running);
      const done = await app.rt.prisma.agentRun.count({ where: { id: { in: ids }, status: 'SUCCEEDED' } });
      if (done === ids.length) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(maxRunning).toBeLessThanOrEqual(2);
    expect(maxRunning).toBeGreaterThan(0);
  });

  it('a run started while other processes hold the organization at its cap waits in the queue, then runs', async () => {
    const agentId = await createAgent({ provider: 'OFFLINE', model: 'offline-small' });
    const agent = await app.rt.prisma.agent.findFirstOrThrow({ where: { projectId: project.id }, orderBy: { createdAt: 'desc' } });
    // Two runs held by a worker of another process (live leases): this process's own slots are all free,
    // so startRun tries to claim its run at once, and the claim finds the organization at its cap of 2.
    const elsewhere = await Promise.all(
      [1, 2].map(() =>
        app.rt.prisma.agentRun.create({
          data: {
            organizationId: agent.organizationId, projectId: project.id, agentId: agent.id, input: 'held elsewhere',
            status: 'RUNNING', leaseOwner: 'worker-elsewhere', leaseExpiresAt: new Date(Date.now() + 60_000), attempts: 1,
          },
        }),
      ),
    );
    const runId = fromGlobalId(await startRun(agentId, 'wait your turn'), 'Run');
    await new Promise((r) => setTimeout(r, 300));
    const waiting = await app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: runId }, include: { events: true } });
    expect(waiting).toMatchObject({ status: 'QUEUED', attempts: 0, leaseOwner: null });
    expect(waiting.events.map((e) => [e.seq, e.type, e.payload])).toEqual([[1, 'STATUS', { status: 'QUEUED' }]]);

    await app.rt.prisma.agentRun.updateMany({ where: { id: { in: elsewhere.map((r) => r.id) } }, data: { status: 'SUCCEEDED', leaseOwner: null, leaseExpiresAt: null } });
    const done = await waitForStatus(toGlobalId('Run', runId), ['SUCCEEDED', 'FAILED']);
    expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
  });
});

describe('runs on real provider SDKs against local fakes', () => {
  it('runs on OpenAI through OPENAI_BASE_URL, charging the cost from the streamed usage report', async () => {
    openai.enqueue({ kind: 'reply', text: 'Hello from the fake OpenAI.', chunks: 4, usage: { inputTokens: 120, cachedInputTokens: 20, outputTokens: 9 } });
    const agentId = await createAgent({ provider: 'OPENAI', model: 'gpt-4o-mini' });
    const runId = await startRun(agentId);
    const run = await waitForStatus(runId, ['SUCCEEDED', 'FAILED']);
    expect(run).toMatchObject({ status: 'SUCCEEDED', output: 'Hello from the fake OpenAI.', provider: 'OPENAI', model: 'gpt-4o-mini' });
    const expected = costMicros('OPENAI', 'gpt-4o-mini', { inputTokens: 120, cachedInputTokens: 20, outputTokens: 9 });
    expect(BigInt(run.costMicros)).toBe(expected);
    const req = openai.requests.at(-1)!;
    expect(req.body.model).toBe('gpt-4o-mini');
    expect(req.body.stream_options).toEqual({ include_usage: true });
    expect(req.headers.authorization).toBe('Bearer sk-test-openai');
    const ledger = await app.rt.prisma.usageRecord.findMany({ where: { runId: (await app.rt.prisma.agentRun.findFirstOrThrow({ where: { output: run.output } })).id } });
    expect(ledger).toHaveLength(1);
    expect(ledger[0]).toMatchObject({ inputTokens: 120, cachedInputTokens: 20, outputTokens: 9, costMicros: expected });
  });

  it('retries a 429 honouring Retry-After, then falls back to Anthropic when OpenAI keeps failing', async () => {
    openai.enqueue({ kind: 'error', status: 429, retryAfter: 0 });
    openai.enqueue({ kind: 'error', status: 500 });
    openai.enqueue({ kind: 'error', status: 500 });
    anthropic.enqueue({ kind: 'reply', text: 'Fallback answer.', usage: { inputTokens: 50, outputTokens: 3 } });
    const agentId = await createAgent({
      provider: 'OPENAI',
      model: 'gpt-4o-mini',
      fallbackChain: [{ provider: 'ANTHROPIC', model: 'claude-haiku-4-5' }],
    });
    const runId = await startRun(agentId);
    const run = await waitForStatus(runId, ['SUCCEEDED', 'FAILED'], 20_000);
    expect(run).toMatchObject({ status: 'SUCCEEDED', output: 'Fallback answer.', provider: 'ANTHROPIC', model: 'claude-haiku-4-5' });
    const replay = await collectRunEvents(app.wsUrl, owner.token, runId);
    expect(replay.events.filter((e) => e.type === 'ERROR')).toHaveLength(3);
  });

  it("after the agent changes, its next run sends the new settings, not those its request was built ahead with", async () => {
    const agentId = await createAgent({ provider: 'OPENAI', model: 'gpt-4o-mini', systemPrompt: 'Answer in English.' });
    openai.enqueue({ kind: 'reply', text: 'First.' });
    expect((await waitForStatus(await startRun(agentId), ['SUCCEEDED', 'FAILED'])).status).toBe('SUCCEEDED');
    const update = await owner.gql(
      `mutation($input: UpdateAgentInput!) { updateAgent(input: $input) { __typename } }`,
      { input: { id: agentId, systemPrompt: 'Answer in French.' } },
    );
    expect(update.data?.updateAgent.__typename, JSON.stringify(update)).toBe('UpdateAgentPayload');
    const before = openai.requests.length;
    openai.enqueue({ kind: 'reply', text: 'Deuxième.' });
    const run = await waitForStatus(await startRun(agentId), ['SUCCEEDED', 'FAILED']);
    expect(run).toMatchObject({ status: 'SUCCEEDED', output: 'Deuxième.' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const sent = openai.requests.slice(before).map((r) => [r.body.model, (r.body.messages as { content: string }[])[0]!.content]);
    expect(sent).toEqual([['gpt-4o-mini', 'Answer in French.']]);
  });

  it("fails with the provider's message on a non-retryable error", async () => {
    openai.enqueue({ kind: 'error', status: 400, message: 'Invalid request: messages is malformed' });
    const agentId = await createAgent({ provider: 'OPENAI', model: 'gpt-4o-mini' });
    const runId = await startRun(agentId);
    const run = await waitForStatus(runId, ['SUCCEEDED', 'FAILED']);
    expect(run.status).toBe('FAILED');
    expect(run.error).toContain('messages is malformed');
  });
});

describe('durability', () => {
  it('fails a run after three lost workers, not counting claims handed back on shutdown, and says so', async () => {
    await createAgent({ provider: 'OFFLINE', model: 'offline-small' });
    const agent = await app.rt.prisma.agent.findFirstOrThrow({ where: { projectId: project.id }, orderBy: { createdAt: 'desc' } });
    // Left RUNNING by a dead worker after `attempts` claims, `handovers` of them handed back by deploys.
    const orphan = (input: string, attempts: number, handovers: number) =>
      app.rt.prisma.agentRun.create({
        data: {
          organizationId: agent.organizationId, projectId: project.id, agentId: agent.id, input, status: 'RUNNING',
          leaseOwner: 'worker-dead', leaseExpiresAt: new Date(Date.now() - 1000), attempts, handovers, lastSeq: 0,
        },
      });
    const thirdLoss = await orphan('lost three times', 5, 2);
    const secondLoss = await orphan('lost twice', 4, 2);
    expect(await app.rt.orchestrator.recover()).toBe(2);
    expect(await app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: thirdLoss.id } })).toMatchObject({
      status: 'FAILED',
      errorCode: 'WORKER_LOST',
      error: 'Worker worker-dead stopped responding; gave up after losing 3 workers',
    });
    const retried = await waitForStatus(toGlobalId('Run', secondLoss.id), ['SUCCEEDED', 'FAILED']);
    expect(retried).toMatchObject({ status: 'SUCCEEDED', attempts: 5 });
  });

  it('re-queues a run whose worker stopped renewing its lease, keeping its stored events', async () => {
    const agentId = await createAgent({ provider: 'OFFLINE', model: 'offline-small' });
    const agent = await app.rt.prisma.agent.findFirstOrThrow({ where: { projectId: project.id }, orderBy: { createdAt: 'desc' } });
    // A run left RUNNING by a dead worker: lease expired, two events already stored.
    const run = await app.rt.prisma.agentRun.create({
      data: {
        organizationId: agent.organizationId, projectId: project.id, agentId: agent.id, input: 'orphaned',
        status: 'RUNNING', leaseOwner: 'worker-dead', leaseExpiresAt: new Date(Date.now() - 1000), attempts: 1, lastSeq: 2,
        events: { create: [{ seq: 1, type: 'STATUS', payload: { status: 'QUEUED' } }, { seq: 2, type: 'STATUS', payload: { status: 'RUNNING' } }] },
      },
    });
    expect(agentId).toBeTruthy();
    expect(await app.rt.orchestrator.recover()).toBe(1);
    const done = await waitForStatus(toGlobalId('Run', run.id), ['SUCCEEDED', 'FAILED']);
    expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
    const events = await app.rt.prisma.runEvent.findMany({ where: { runId: run.id }, orderBy: { seq: 'asc' } });
    expect(events.slice(0, 3).map((e) => [e.seq, (e.payload as { status?: string }).status])).toEqual([
      [1, 'QUEUED'],
      [2, 'RUNNING'],
      [3, 'QUEUED'],
    ]);

    // The run's story without its tokens: only the types asked for, in order, with their seqs.
    const STORY = `query($id: ID!, $types: [RunEventType!]) { run(id: $id) { events(afterSeq: 0, types: $types) { seq type status } } }`;
    const story = (await owner.gql(STORY, { id: toGlobalId('Run', run.id), types: ['STATUS'] })).data!.run.events as { seq: number; type: string; status: string }[];
    expect(story.map((e) => e.status)).toEqual(['QUEUED', 'RUNNING', 'QUEUED', 'RUNNING', 'SUCCEEDED']);
    expect(story.map((e) => e.seq)).toEqual(events.filter((e) => e.type === 'STATUS').map((e) => e.seq));
    expect(events.some((e) => e.type === 'TOKEN')).toBe(true);
    const all = (await owner.gql(STORY, { id: toGlobalId('Run', run.id) })).data!.run.events as unknown[];
    expect(all).toHaveLength(events.length);
  });

  // Needs a second connection writing while the sweep waits: PostgreSQL (PGlite has one connection).
  it.runIf(usingPostgres())('leaves a run whose stalled worker stored an event meanwhile to the next sweep, without taking its seq', async () => {
    const agent = await app.rt.prisma.agent.create({ data: { organizationId: project.org.id, projectId: project.id, name: 'Stalled', provider: 'OFFLINE', model: 'offline-small' } });
    const run = await app.rt.prisma.agentRun.create({
      data: {
        organizationId: agent.organizationId, projectId: project.id, agentId: agent.id, input: 'stalled',
        status: 'RUNNING', leaseOwner: 'worker-stalled', leaseExpiresAt: new Date(Date.now() - 1000), attempts: 1, lastSeq: 1,
        events: { create: [{ seq: 1, type: 'STATUS', payload: { status: 'RUNNING' } }] },
      },
    });
    // The stalled worker wakes up: it holds the run's row while it stores seq 2, as its event write does.
    let sweep!: Promise<number>;
    await app.rt.prisma.$transaction(async (tx) => {
      await tx.$queryRaw`SELECT 1 FROM "AgentRun" WHERE id = ${run.id}::uuid FOR UPDATE`;
      sweep = app.rt.orchestrator.recover();
      await new Promise((resolve) => setTimeout(resolve, 300)); // the sweep has read lastSeq 1 and waits for the row
      await tx.runEvent.create({ data: { runId: run.id, seq: 2, type: 'TOKEN', payload: { text: 'late' } } });
      await tx.agentRun.update({ where: { id: run.id }, data: { lastSeq: 2 } });
    });
    expect(await sweep).toBe(0);
    expect(await app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: run.id } })).toMatchObject({ status: 'RUNNING', lastSeq: 2 });
    // The next sweep takes it, after the worker's event.
    expect(await app.rt.orchestrator.recover()).toBe(1);
    const events = await app.rt.prisma.runEvent.findMany({ where: { runId: run.id }, orderBy: { seq: 'asc' } });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.slice(0, 3).map((e) => e.type)).toEqual(['STATUS', 'TOKEN', 'STATUS']);
    expect(events[2]!.payload).toMatchObject({ status: 'QUEUED' });
  });
});

// Its own server: at 40 ms a token the run streams for about 3 s, so the cancel always finds it running (at the
// suite's 4 ms a token, a busy machine could finish the run before the cancel arrived).
describe('cancelling a run on the offline provider', () => {
  let slow: TestServer;
  let who: TestUser;
  let agentGid: string;
  beforeAll(async () => {
    slow = await startTestServer({ env: { OFFLINE_TOKEN_DELAY_MS: '40' } });
    const org = await given(slow).anOrganization();
    who = org.owner;
    agentGid = (await given(slow).anOfflineAgent(await given(slow).aProject(org), { maxOutputTokens: 2000 })).gid;
  });
  afterAll(async () => {
    await slow?.close();
  });

  it('stops it within a second and keeps what was produced', async () => {
    const res = await who.gql(START, { input: { agentId: agentGid, input: 'Write a very long plan' } });
    const runId = res.data!.startRun.run.id as string;
    await collectRunEvents(slow.wsUrl, who.token, runId, { stopAfter: (e) => e.type === 'TOKEN' });
    const asked = Date.now();
    const cancelled = await who.gql(`mutation($id: ID!) { cancelRun(input: { id: $id }) { __typename } }`, { id: runId });
    expect(cancelled.data!.cancelRun.__typename).toBe('CancelRunPayload');
    const run = await waitForStatus(runId, ['CANCELLED', 'SUCCEEDED'], 10_000, who);
    expect(run.status).toBe('CANCELLED');
    expect(Date.now() - asked).toBeLessThan(1000);
    expect(run.output.length).toBeGreaterThan(0);
    const replay = await collectRunEvents(slow.wsUrl, who.token, runId);
    expect(replay.events.at(-1)).toMatchObject({ type: 'STATUS', status: 'CANCELLED' });
  });
});
