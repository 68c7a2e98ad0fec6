import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase, usingPostgres } from '../../test/db.js';
import { given } from '../../test/factories.js';
import { startOpenAIFake, type FakeProviderServer, type RecordedRequest } from '../../test/fakes/index.js';
import { gql, startTestServer, type TestServer } from '../../test/harness.js';
import { startHubProcess, startWorkerProcess, type HubProcess, waitFor } from '../../test/processes.js';
import { collectRunEvents } from '../../test/subscribe.js';
import { openDatabase } from '../lib/db.js';
import { fromGlobalId, toGlobalId } from '../lib/ids.js';
import { costMicros, estimateInputTokens, estimateTextTokens } from '../providers/index.js';

const MODEL = 'gpt-4.1';
const MAX_OUTPUT = 100;
const PROMPT = 'Write the long plan';
const REPORTED = { inputTokens: 20, cachedInputTokens: 0, outputTokens: 50 };
const LIMIT = 10_000_000n;
// A short lease, so that a killed worker's run is found lapsed within seconds.
const ENV = { OPENAI_API_KEY: 'sk-lapsed', RUN_LEASE_MS: '1500' };

let openai: FakeProviderServer;
const cleanup: (() => Promise<unknown> | void)[] = [];
beforeAll(async () => {
  // A reply streamed over about 4 s, with the provider's usage report at its end.
  openai = await startOpenAIFake({
    apiKey: ENV.OPENAI_API_KEY,
    defaultBehavior: { kind: 'reply', text: 'word '.repeat(40), chunks: 40, chunkDelayMs: 100, usage: REPORTED },
  });
});
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
  await openai.close();
});

const START = `mutation($a: ID!, $i: String!) { startRun(input: { agentId: $a, input: $i }) { ... on StartRunPayload { run { id } } } }`;
const SET_BUDGET = `mutation($input: SetBudgetInput!) { setBudget(input: $input) { __typename } }`;

/** Streams the run from `wsUrl` and kills `worker` once a few tokens are stored: the provider has billed the prompt and what it streamed so far. */
async function killMidStream(wsUrl: string, token: string, runGid: string, worker: HubProcess) {
  let killed: Promise<void> | null = null;
  await collectRunEvents(wsUrl, token, runGid, {
    stopAfter: (e) => {
      if (e.type === 'TOKEN' && e.seq >= 6) killed ??= worker.kill();
      return killed !== null;
    },
  });
  await killed;
}

/**
 * With `dead`'s worker killed while streaming the run: `api` (no worker of its own) sweeps twice at once and
 * once more, then `another` worker runs the run again, to the end.
 */
async function expectTheDeadClaimBilledOnce(api: TestServer, runId: string, dead: HubProcess, another: () => Promise<() => Promise<unknown>>) {
  const prisma = api.rt.prisma;
  const run = await prisma.agentRun.findUniqueOrThrow({ where: { id: runId } });
  expect(run).toMatchObject({ status: 'RUNNING', attempts: 1, leaseOwner: dead.workerId });
  const budget = await prisma.budget.findFirstOrThrow({ where: { organizationId: run.organizationId } });
  // The attempt's hold is in the dead process's lease, named after its worker.
  const leaseOf = (holder: string) => prisma.budgetLease.findUniqueOrThrow({ where: { budgetId_holder: { budgetId: budget.id, holder } } });
  const leased = (await leaseOf(dead.workerId)).amountMicros;
  const streamed = (await prisma.runEvent.findMany({ where: { runId, type: 'TOKEN' }, orderBy: { seq: 'asc' } }))
    .map((e) => String((e.payload as { text: string }).text))
    .join('');
  expect(streamed.length).toBeGreaterThan(0);

  // Even long past its expiry, the lease is kept while the dead worker's run is not taken back: it holds what the run spent.
  await api.rt.budget.releaseHolds({ expiredBefore: new Date(Date.now() + 3_600_000) });
  expect((await leaseOf(dead.workerId)).amountMicros).toBe(leased);

  await waitFor(async () => (await prisma.agentRun.findUniqueOrThrow({ where: { id: runId } })).leaseExpiresAt! < new Date());
  // Two sweeps at once, then another: the run is taken back once, and its dead claim recorded once.
  const swept = await Promise.all([api.rt.orchestrator.recover(), api.rt.orchestrator.recover()]);
  expect(swept[0] + swept[1]).toBe(1);
  expect(await api.rt.orchestrator.recover()).toBe(0);

  const usage = { inputTokens: estimateInputTokens({ messages: [{ role: 'user', content: PROMPT }] }), cachedInputTokens: 0, outputTokens: estimateTextTokens(streamed) };
  const estimated = costMicros('OPENAI', MODEL, usage);
  expect(await prisma.usageRecord.findMany({ where: { runId } })).toEqual([
    expect.objectContaining({ claim: 1, attempt: 1, estimated: true, provider: 'OPENAI', model: MODEL, ...usage, costMicros: estimated }),
  ]);
  // Charged out of the dead worker's lease: spent went up by what reserved went down.
  let b = await prisma.budget.findUniqueOrThrow({ where: { id: budget.id } });
  expect(b.spentMicros).toBe(estimated);
  expect((await leaseOf(dead.workerId)).amountMicros).toBe(leased - estimated);
  expect(b.reservedMicros).toBe((await prisma.budgetLease.aggregate({ where: { budgetId: budget.id }, _sum: { amountMicros: true } }))._sum.amountMicros);

  const stop = await another();
  const done = await waitFor(async () => {
    const r = await prisma.agentRun.findUniqueOrThrow({ where: { id: runId } });
    return r.status !== 'RUNNING' && r.status !== 'QUEUED' && r;
  });
  await stop();
  const actual = costMicros('OPENAI', MODEL, REPORTED);
  expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 2, costMicros: estimated + actual });
  expect(await api.rt.orchestrator.recover()).toBe(0);
  expect(await prisma.usageRecord.count({ where: { runId } })).toBe(2);

  // Every lease freed (no worker holds a run any more): nothing was counted twice, the spend is the ledger's.
  await api.rt.budget.releaseHolds({ expiredBefore: new Date(Date.now() + 3_600_000) });
  b = await prisma.budget.findUniqueOrThrow({ where: { id: budget.id } });
  expect(b).toMatchObject({ spentMicros: estimated + actual, reservedMicros: 0n });
}

describe.runIf(usingPostgres())('a worker process killed mid-stream, on PostgreSQL', () => {
  it('leaves the attempt it streamed on the ledger: estimated, in the run’s cost and the budget’s spend, once however often it is swept', async () => {
    const db = await getTestDatabase();
    const env = { ...ENV, OPENAI_BASE_URL: openai.url };
    const api = await startTestServer({ worker: false, env });
    cleanup.push(() => api.close());
    const { owner, ...org } = await given(api).anOrganization();
    const project = await given(api).aProject({ ...org, owner });
    const agent = await api.rt.prisma.agent.create({
      data: { organizationId: org.id, projectId: project.id, name: 'Metered', provider: 'OPENAI', model: MODEL, maxOutputTokens: MAX_OUTPUT },
    });
    expect((await owner.gql(SET_BUDGET, { input: { organizationId: org.gid, period: 'DAILY', limit: LIMIT.toString() } })).data!.setBudget.__typename).toBe('SetBudgetPayload');

    const workerB = await startWorkerProcess({ DATABASE_URL: db.url!, ...env });
    cleanup.push(() => workerB.kill());
    const runGid = (await owner.gql(START, { a: toGlobalId('Agent', agent.id), i: PROMPT })).data!.startRun.run.id as string;
    await killMidStream(api.wsUrl, owner.token, runGid, workerB);

    await expectTheDeadClaimBilledOnce(api, fromGlobalId(runGid, 'Run'), workerB, async () => {
      const workerC = await startWorkerProcess({ DATABASE_URL: db.url!, ...env });
      cleanup.push(() => workerC.kill());
      return () => workerC.kill();
    });
  }, 90_000);
});

describe('the embedded database, its process killed mid-stream', () => {
  it('leaves the attempt it streamed on the ledger: estimated, in the run’s cost and the budget’s spend, once however often it is swept', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hub-lapsed-'));
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const env = { ...ENV, OPENAI_BASE_URL: openai.url };
    const first = await startHubProcess({ DATA_DIR: dataDir, DATABASE_URL: '', SERVE: 'true', ...env });
    cleanup.push(() => first.kill());
    const url = first.url!;
    const signUp = await gql(url, `mutation { signUp(input: { email: "lapsed@example.com", password: "long enough pw", name: "L" }) { __typename } }`);
    const cookie = signUp.headers.get('set-cookie')!.split(';')[0]!;
    const token = (await gql(url, `mutation { createApiToken(input: { name: "t" }) { ... on CreateApiTokenPayload { secret } } }`, {}, { cookie })).data!.createApiToken
      .secret as string;
    const as = (q: string, v: Record<string, unknown> = {}) => gql(url, q, v, { token });
    const org = (await as(`mutation { createOrganization(input: { name: "Lapsed Co" }) { ... on CreateOrganizationPayload { organization { id } } } }`)).data!
      .createOrganization.organization.id;
    const project = (await as(`mutation($o: ID!) { createProject(input: { organizationId: $o, name: "P" }) { ... on CreateProjectPayload { project { id } } } }`, { o: org }))
      .data!.createProject.project.id;
    const agent = (
      await as(
        `mutation($p: ID!, $m: String!, $n: Int!) { createAgent(input: { projectId: $p, name: "A", provider: OPENAI, model: $m, maxOutputTokens: $n }) { ... on CreateAgentPayload { agent { id } } } }`,
        { p: project, m: MODEL, n: MAX_OUTPUT },
      )
    ).data!.createAgent.agent.id;
    expect((await as(SET_BUDGET, { input: { organizationId: org, period: 'DAILY', limit: LIMIT.toString() } })).data!.setBudget.__typename).toBe('SetBudgetPayload');
    const runGid = (await as(START, { a: agent, i: PROMPT })).data!.startRun.run.id as string;
    await killMidStream(`${url.replace('http', 'ws')}/graphql`, token, runGid, first);

    // The database the killed process left, opened here by a process without a worker at first.
    const database = await openDatabase({ dataDir });
    const api = await startTestServer({ worker: false, env, runtime: { database } });
    cleanup.push(async () => {
      await api.close();
      await database.close();
    });
    await expectTheDeadClaimBilledOnce(api, fromGlobalId(runGid, 'Run'), first, async () => {
      await api.rt.orchestrator.startWorker();
      return () => api.rt.orchestrator.stop();
    });
  }, 120_000);
});

describe('what the sweep charges for a dead claim, from the events it stored', () => {
  /** A run its dead worker left RUNNING under its first claim (lease lapsed), with the events that claim stored after its RUNNING one. */
  async function aLapsedRun(api: TestServer, agent: { id: string; organizationId: string; projectId: string }, claimEvents: { type: 'LOG' | 'TOKEN' | 'ERROR'; payload: object }[]) {
    const startedAt = new Date(Date.now() - 5_000);
    const events = [
      { seq: 1, type: 'STATUS' as const, payload: { status: 'QUEUED' } },
      { seq: 2, type: 'STATUS' as const, payload: { status: 'RUNNING', attempt: 1, worker: 'worker-dead' } },
      ...claimEvents.map((e, i) => ({ seq: 3 + i, ...e })),
    ];
    return api.rt.prisma.agentRun.create({
      data: {
        organizationId: agent.organizationId, projectId: agent.projectId, agentId: agent.id, input: PROMPT, status: 'RUNNING', startedAt,
        leaseOwner: 'worker-dead', leaseExpiresAt: new Date(Date.now() - 1_000), attempts: 1, lastSeq: events.length, events: { create: events },
      },
    });
  }
  const note = (attempt: number, model: string) => ({ type: 'LOG' as const, payload: { kind: 'attempt', provider: 'OPENAI', model, attempt, chainIndex: 0 } });

  it('a claim that stored no attempt note: its first attempt at the prompt’s bound, on the primary model; one that ended its attempt: nothing', async () => {
    const api = await startTestServer({ worker: false, env: { ...ENV, OPENAI_BASE_URL: openai.url } });
    cleanup.push(() => api.close());
    const { owner, ...org } = await given(api).anOrganization();
    const project = await given(api).aProject({ ...org, owner });
    const agent = await api.rt.prisma.agent.create({
      data: { organizationId: org.id, projectId: project.id, name: 'Metered', provider: 'OPENAI', model: MODEL, maxOutputTokens: MAX_OUTPUT },
    });

    const silent = await aLapsedRun(api, agent, []);
    // Cut off mid-stream on a fallback model: priced with the model its note names.
    const streaming = await aLapsedRun(api, agent, [note(1, 'gpt-4o-mini'), { type: 'TOKEN', payload: { text: 'partial answer' } }]);
    // The attempt failed (its worker settled it before storing its ERROR), or its worker settled it and died before storing anything more.
    const failed = await aLapsedRun(api, agent, [note(1, MODEL), { type: 'ERROR', payload: { message: 'Bad gateway', kind: 'fatal', attempt: 1 } }]);
    const settled = await aLapsedRun(api, agent, [note(1, MODEL), { type: 'TOKEN', payload: { text: 'whole answer' } }]);
    await api.rt.prisma.usageRecord.create({
      data: { organizationId: org.id, projectId: project.id, agentId: agent.id, runId: settled.id, attempt: 1, provider: 'OPENAI', model: MODEL, outputTokens: 3, costMicros: 7n },
    });

    expect(await api.rt.orchestrator.recover()).toBe(4);
    const input = estimateInputTokens({ messages: [{ role: 'user', content: PROMPT }] });
    const rows = await api.rt.prisma.usageRecord.findMany({ where: { organizationId: org.id, estimated: true } });
    expect(rows.map((r) => ({ runId: r.runId, claim: r.claim, attempt: r.attempt, model: r.model, inputTokens: r.inputTokens, outputTokens: r.outputTokens, costMicros: r.costMicros })).sort((a, b) => a.model.localeCompare(b.model))).toEqual([
      { runId: silent.id, claim: 1, attempt: 1, model: MODEL, inputTokens: input, outputTokens: 0, costMicros: costMicros('OPENAI', MODEL, { inputTokens: input, cachedInputTokens: 0, outputTokens: 0 }) },
      {
        runId: streaming.id, claim: 1, attempt: 1, model: 'gpt-4o-mini', inputTokens: input, outputTokens: estimateTextTokens('partial answer'),
        costMicros: costMicros('OPENAI', 'gpt-4o-mini', { inputTokens: input, cachedInputTokens: 0, outputTokens: estimateTextTokens('partial answer') }),
      },
    ]);
    expect(await api.rt.prisma.usageRecord.count({ where: { runId: { in: [failed.id, settled.id] } } })).toBe(1);
  });
});

/**
 * A server whose worker is alive, with a one-minute run lease renewed every 20 s (a test makes it lapse by
 * hand, as a stalled or dying process would let it), OpenAI at `providerUrl`, and one run of a metered agent
 * started with `prompt`.
 */
async function aRunOnALiveWorker(providerUrl: string, prompt: string) {
  const api = await startTestServer({ env: { ...ENV, OPENAI_BASE_URL: providerUrl, RUN_LEASE_MS: '60000' } });
  cleanup.push(() => api.close());
  const prisma = api.rt.prisma;
  const { owner, ...org } = await given(api).anOrganization();
  const project = await given(api).aProject({ ...org, owner });
  const agent = await prisma.agent.create({
    data: { organizationId: org.id, projectId: project.id, name: 'Metered', provider: 'OPENAI', model: MODEL, maxOutputTokens: MAX_OUTPUT },
  });
  expect((await owner.gql(SET_BUDGET, { input: { organizationId: org.gid, period: 'DAILY', limit: LIMIT.toString() } })).data!.setBudget.__typename).toBe('SetBudgetPayload');
  const runId = fromGlobalId((await owner.gql(START, { a: toGlobalId('Agent', agent.id), i: prompt })).data!.startRun.run.id as string, 'Run');
  return { api, prisma, org, runId };
}

/** Makes the run's lease lapse, and sweeps (the server's own sweeper, every 5 s, may be the one that takes it). */
async function lapse(api: TestServer, runId: string) {
  await api.rt.prisma.agentRun.update({ where: { id: runId }, data: { leaseExpiresAt: new Date(Date.now() - 1_000) } });
  await api.rt.orchestrator.recover();
}

describe('a worker stalled past its lease, not dead', () => {
  it('replaces the sweep’s estimate of its attempt with its own settlement: the attempt is on the ledger and in the spend once', async () => {
    // The provider stalls for 6 s after 8 chunks of this run's first request: meanwhile the worker stores
    // nothing, as a stalled process would not. (Runs of other tests on a shared database may reach this fake
    // too, so the request is told by its prompt.)
    const prompt = `${PROMPT}, stalled`;
    let stalled: RecordedRequest | undefined;
    const stalling = await startOpenAIFake({
      apiKey: ENV.OPENAI_API_KEY,
      defaultBehavior: { kind: 'reply', text: 'word '.repeat(40), chunks: 40, chunkDelayMs: 20, usage: REPORTED },
      respond: (req) => {
        if (stalled || !JSON.stringify(req.body).includes(prompt)) return undefined;
        stalled = req;
        return { kind: 'reply', text: 'word '.repeat(40), chunks: 40, chunkDelayMs: 20, pauseAfterChunks: 8, pauseMs: 6_000, usage: REPORTED };
      },
    });
    cleanup.push(() => stalling.close());
    const { api, prisma, org, runId } = await aRunOnALiveWorker(stalling.url, prompt);
    await waitFor(async () => (stalled?.chunksSent ?? 0) >= 8);
    // What it received is stored: the run's last seq stays put for 300 ms.
    let seq = -1;
    await waitFor(async () => {
      const { lastSeq } = await prisma.agentRun.findUniqueOrThrow({ where: { id: runId } });
      if (lastSeq === seq) return true;
      seq = lastSeq;
      await new Promise((r) => setTimeout(r, 300));
      return false;
    });

    // Its lease lapses during the stall; the sweep takes the run back and estimates the attempt.
    await lapse(api, runId);
    const estimate = await waitFor(() => prisma.usageRecord.findFirst({ where: { runId, claim: 1, attempt: 1 } }), 3_000);
    expect(estimate.estimated).toBe(true);

    // The worker finds its lease gone at its next batch of events, stops, and settles what it received: in place of the estimate.
    const replaced = await waitFor(async () => {
      const rows = await prisma.usageRecord.findMany({ where: { runId, claim: 1 } });
      return rows.length === 1 && !rows[0]!.estimated && rows[0]!;
    });
    expect(replaced.id).toBe(estimate.id);
    expect(replaced.outputTokens).toBeGreaterThanOrEqual(estimate.outputTokens);

    // Taken back, the run runs again to its end under a second claim.
    const done = await waitFor(async () => {
      const r = await prisma.agentRun.findUniqueOrThrow({ where: { id: runId } });
      return r.status === 'SUCCEEDED' && r;
    });
    const ledger = await prisma.usageRecord.findMany({ where: { runId }, orderBy: { claim: 'asc' } });
    expect(ledger.map((r) => [r.claim, r.attempt, r.estimated])).toEqual([
      [1, 1, false],
      [2, 1, false],
    ]);
    const total = ledger.reduce((sum, r) => sum + r.costMicros, 0n);
    expect(done).toMatchObject({ attempts: 2, costMicros: total });
    // The estimate came off the spend again, and what it had taken out of the worker's lease went back into it.
    const budget = await prisma.budget.findFirstOrThrow({ where: { organizationId: org.id } });
    expect(budget.spentMicros).toBe(total);
    const leased = (await prisma.budgetLease.aggregate({ where: { budgetId: budget.id }, _sum: { amountMicros: true } }))._sum.amountMicros ?? 0n;
    expect(budget.reservedMicros).toBe(leased);
    expect(budget.spentMicros + budget.reservedMicros).toBeLessThanOrEqual(LIMIT);
  }, 60_000);
});

describe('a retry whose worker dies before its first token', () => {
  it('is on the ledger, estimated at the prompt’s bound on the retry’s model: its note was stored before the request went out', async () => {
    // The first attempt fails with a 500; the retry is sent and never answered (its worker is as good as dead).
    const prompt = `${PROMPT}, retried`;
    const seen: RecordedRequest[] = [];
    const failing = await startOpenAIFake({
      apiKey: ENV.OPENAI_API_KEY,
      respond: (req) => {
        if (!JSON.stringify(req.body).includes(prompt)) return undefined;
        seen.push(req);
        return seen.length === 1 ? { kind: 'error', status: 500 } : { kind: 'hang' };
      },
    });
    cleanup.push(() => failing.close());
    const { api, prisma, runId } = await aRunOnALiveWorker(failing.url, prompt);

    // The retry's note is stored while its request hangs, with no token of its own.
    await waitFor(async () => seen.length >= 2);
    const notes = await waitFor(async () => {
      const logs = await prisma.runEvent.findMany({ where: { runId, type: 'LOG' }, orderBy: { seq: 'asc' } });
      const attempts = logs.map((e) => e.payload as { kind?: string; attempt?: number }).filter((p) => p.kind === 'attempt');
      return attempts.length === 2 && attempts;
    }, 5_000);
    expect(notes.map((n) => n.attempt)).toEqual([1, 2]);

    // Its lease lapses (the worker stalled or died); the sweep takes the run back and bills the retry.
    await lapse(api, runId);
    const estimate = await waitFor(() => prisma.usageRecord.findFirst({ where: { runId, claim: 1, attempt: 2 } }), 3_000);
    const usage = { inputTokens: estimateInputTokens({ messages: [{ role: 'user', content: prompt }] }), cachedInputTokens: 0, outputTokens: 0 };
    expect(estimate).toMatchObject({ estimated: true, model: MODEL, ...usage, costMicros: costMicros('OPENAI', MODEL, usage) });
  }, 60_000);
});
