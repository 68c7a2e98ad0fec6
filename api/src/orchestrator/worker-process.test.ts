import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getTestDatabase, usingPostgres } from '../../test/db.js';
import { given } from '../../test/factories.js';
import { gql, startTestServer } from '../../test/harness.js';
import { startHubProcess, startWorkerProcess, type HubProcess, waitFor } from '../../test/processes.js';
import { collectRunEvents, type StreamedEvent } from '../../test/subscribe.js';

const SLOW = { OFFLINE_TOKEN_DELAY_MS: '40', RUN_LEASE_MS: '1500' };
const RUN = `query($id: ID!) { run(id: $id) { status output attempts } }`;

const cleanup: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

const START = `mutation($a: ID!) { startRun(input: { agentId: $a, input: "A long plan please" }) { ... on StartRunPayload { run { id } } } }`;

/** An API process without a worker (runs wait in the queue for worker processes), and an agent that streams long. */
async function anApiWithAnAgent(env: Record<string, string>) {
  const api = await startTestServer({ worker: false, env });
  cleanup.push(() => api.close());
  const { owner, ...org } = await given(api).anOrganization();
  const project = await given(api).aProject({ ...org, owner });
  return { api, owner, agent: await given(api).anOfflineAgent(project, { name: 'Slow' }) };
}

/** The whole log must read 1, 2, 3… with TOKEN text equal to the final output. */
function expectCoherentLog(events: StreamedEvent[], output: string) {
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  expect(events.at(-1)).toMatchObject({ type: 'STATUS', status: 'SUCCEEDED' });
  expect(output.length).toBeGreaterThan(0);
}

describe.runIf(usingPostgres())('several processes on PostgreSQL', () => {
  it('a subscriber on API process A sees, in order and exactly once, a run executed by worker B — and by C after B is killed mid-stream', async () => {
    const db = await getTestDatabase();
    const { api, owner, agent } = await anApiWithAnAgent(SLOW);

    const workerB = await startHubProcess({ DATABASE_URL: db.url!, ...SLOW });
    cleanup.push(() => workerB.kill());
    const runGid = (await owner.gql(START, { a: agent.gid })).data!.startRun.run.id as string;

    // Stream from process A while B executes; kill B after a few tokens.
    let killed: Promise<void> | null = null;
    const streamed = collectRunEvents(api.wsUrl, owner.token, runGid, {
      stopAfter: (e) => {
        if (e.type === 'TOKEN' && e.seq >= 5 && !killed) killed = workerB.kill();
        return false;
      },
    });
    await waitFor(async () => killed !== null);
    await killed;
    const runRow = await api.rt.prisma.agentRun.findFirstOrThrow({ where: { agentId: agent.id } });
    expect(runRow.status).toBe('RUNNING');
    expect(runRow.leaseOwner).toBe(workerB.workerId);

    const workerC: HubProcess = await startHubProcess({ DATABASE_URL: db.url!, ...SLOW });
    cleanup.push(() => workerC.kill());
    const { events, completed } = await streamed;
    expect(completed).toBe(true);
    const run = (await owner.gql(RUN, { id: runGid })).data!.run;
    expect(run).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
    expectCoherentLog(events, run.output);
    // The takeover is on the record, and the stored events of the dead attempt were kept.
    const statuses = events.filter((e) => e.type === 'STATUS').map((e) => e.status);
    expect(statuses).toEqual(['QUEUED', 'RUNNING', 'QUEUED', 'RUNNING', 'SUCCEEDED']);
    expect(events.filter((e) => e.type === 'TOKEN').length).toBeGreaterThan(5);
    // Done: a worker left running would take the next test's runs.
    await workerC.kill();
  }, 90_000);
});

describe.runIf(usingPostgres())('a worker process stopped by its supervisor', () => {
  it('on SIGTERM (`pnpm worker`) hands its run back to the queue after the grace period, and exits; another worker finishes it', async () => {
    const db = await getTestDatabase();
    // A lease far longer than the test: only the hand-over can explain a run queued again in time.
    const env = { OFFLINE_TOKEN_DELAY_MS: '40', RUN_LEASE_MS: '600000', SHUTDOWN_GRACE_MS: '300' };
    const { api, owner, agent } = await anApiWithAnAgent(env);

    const workerB = await startWorkerProcess({ DATABASE_URL: db.url!, ...env });
    cleanup.push(() => workerB.kill());
    const runGid = (await owner.gql(START, { a: agent.gid })).data!.startRun.run.id as string;

    let terminated: Promise<number | null> | null = null;
    let signalledAt = 0;
    const streamed = collectRunEvents(api.wsUrl, owner.token, runGid, {
      stopAfter: (e) => {
        if (e.type === 'TOKEN' && e.seq >= 5 && !terminated) {
          signalledAt = Date.now();
          terminated = workerB.terminate();
        }
        return false;
      },
    });
    await waitFor(async () => terminated !== null);
    expect(await terminated).toBe(0);
    const exitedAfter = Date.now() - signalledAt;
    expect(exitedAfter).toBeLessThan(10_000);
    // Back in the queue, or already taken from it by a worker of another test here: not B's any more.
    const handedOver = await api.rt.prisma.agentRun.findFirstOrThrow({ where: { agentId: agent.id } });
    expect(['QUEUED', 'RUNNING']).toContain(handedOver.status);
    expect(handedOver.leaseOwner).not.toBe(workerB.workerId);

    const workerC = await startWorkerProcess({ DATABASE_URL: db.url!, ...env });
    cleanup.push(() => workerC.kill());
    const { events, completed } = await streamed;
    expect(completed).toBe(true);
    const statuses = events.filter((e) => e.type === 'STATUS');
    expect(statuses.map((e) => [e.status, e.payload.reason ?? e.payload.worker ?? null])).toEqual([
      ['QUEUED', null],
      ['RUNNING', workerB.workerId],
      ['QUEUED', `Worker ${workerB.workerId} shut down; retrying`],
      ['RUNNING', expect.any(String)],
      ['SUCCEEDED', null],
    ]);
    const run = (await owner.gql(RUN, { id: runGid })).data!.run;
    expect(run).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
    expectCoherentLog(events, run.output);
    // Done: a worker left running would take the next test's runs.
    await workerC.kill();
  }, 90_000);
});

describe.runIf(usingPostgres())('a run handed back by workers shutting down', () => {
  it('is not failed as "worker lost" when a worker dies after two deploys: a hand-back on shutdown is not a lost worker', async () => {
    const db = await getTestDatabase();
    const env = { OFFLINE_TOKEN_DELAY_MS: '40', RUN_LEASE_MS: '1500', SHUTDOWN_GRACE_MS: '100' };
    const { api, owner, agent } = await anApiWithAnAgent(env);
    await owner.gql(START, { a: agent.gid });
    const row = () => api.rt.prisma.agentRun.findFirstOrThrow({ where: { agentId: agent.id } });
    /** A worker that claims the run and streams a few tokens of it. */
    const aWorkerStreamingIt = async () => {
      const worker = await startWorkerProcess({ DATABASE_URL: db.url!, ...env });
      cleanup.push(() => worker.kill());
      const from = (await row()).lastSeq;
      await waitFor(async () => {
        const r = await row();
        return r.status === 'RUNNING' && r.leaseOwner === worker.workerId && r.lastSeq >= from + 4;
      });
      return worker;
    };
    // Two deploys: each worker is stopped mid-run and hands the run back.
    for (let deploy = 1; deploy <= 2; deploy++) {
      const worker = await aWorkerStreamingIt();
      expect(await worker.terminate()).toBe(0);
      expect(await row()).toMatchObject({ status: 'QUEUED', attempts: deploy });
    }
    // Then the third worker dies.
    const dying = await aWorkerStreamingIt();
    await dying.kill();
    expect(await row()).toMatchObject({ status: 'RUNNING', attempts: 3, leaseOwner: dying.workerId });

    // Its run is taken over, not failed: one worker was lost, not three.
    const next = await startWorkerProcess({ DATABASE_URL: db.url!, ...env });
    cleanup.push(() => next.kill());
    await waitFor(async () => ['SUCCEEDED', 'FAILED'].includes((await row()).status), 60_000);
    expect(await row()).toMatchObject({ status: 'SUCCEEDED', attempts: 4, errorCode: null });
    const reasons = (await api.rt.prisma.runEvent.findMany({ where: { runId: (await row()).id, type: 'STATUS' }, orderBy: { seq: 'asc' } }))
      .map((e) => e.payload as { status: string; reason?: string })
      .filter((p) => p.status === 'QUEUED' && p.reason)
      .map((p) => p.reason);
    expect(reasons).toEqual([expect.stringContaining('shut down'), expect.stringContaining('shut down'), `Worker ${dying.workerId} stopped responding; retrying`]);
    await next.kill();
  }, 120_000);
});

describe.runIf(usingPostgres())('a run cancelled while its worker is dead', () => {
  it('ends CANCELLED within seconds, long before its lease would lapse, and is not started again', async () => {
    const db = await getTestDatabase();
    // A lease far longer than the test: only the cancel can explain a run ended in time.
    const env = { OFFLINE_TOKEN_DELAY_MS: '40', RUN_LEASE_MS: '600000' };
    const { api, owner, agent } = await anApiWithAnAgent(env);
    const workerB = await startWorkerProcess({ DATABASE_URL: db.url!, ...env });
    cleanup.push(() => workerB.kill());
    const runGid = (await owner.gql(START, { a: agent.gid })).data!.startRun.run.id as string;
    const streamed = collectRunEvents(api.wsUrl, owner.token, runGid, {
      stopAfter: (e) => {
        if (e.type === 'TOKEN' && e.seq >= 4) void workerB.kill();
        return false;
      },
    });
    await waitFor(async () => workerB.child.signalCode === 'SIGKILL');

    const cancelledAt = Date.now();
    expect((await owner.gql(`mutation($id: ID!) { cancelRun(input: { id: $id }) { __typename } }`, { id: runGid })).data!.cancelRun.__typename).toBe('CancelRunPayload');
    // Another worker, whose recovery sweep finds the run.
    const workerC = await startWorkerProcess({ DATABASE_URL: db.url!, ...env });
    cleanup.push(() => workerC.kill());
    const { events, completed } = await streamed;
    expect(completed).toBe(true);
    expect(Date.now() - cancelledAt).toBeLessThan(15_000);
    expect(events.filter((e) => e.type === 'STATUS').map((e) => e.status)).toEqual(['QUEUED', 'RUNNING', 'CANCELLED']);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect((await owner.gql(RUN, { id: runGid })).data!.run).toMatchObject({ status: 'CANCELLED', attempts: 1 });
    await workerC.kill();
  }, 90_000);
});

describe('the embedded database across a crash', () => {
  it('a process killed mid-run leaves no run stuck: the next start recovers it and keeps its events', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hub-crash-'));
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const env = { DATA_DIR: dataDir, SERVE: 'true', ...SLOW, DATABASE_URL: '' };
    const first = await startHubProcess(env);
    cleanup.push(() => first.kill());
    const url = first.url!;
    const signUp = await gql(url, `mutation { signUp(input: { email: "crash@example.com", password: "long enough pw", name: "C" }) { __typename } }`);
    const cookie = signUp.headers.get('set-cookie')!.split(';')[0]!;
    const token = (
      await gql(url, `mutation { createApiToken(input: { name: "t" }) { ... on CreateApiTokenPayload { secret } } }`, {}, { cookie })
    ).data!.createApiToken.secret as string;
    const as = (q: string, v: Record<string, unknown> = {}, u = url) => gql(u, q, v, { token });
    const org = (await as(`mutation { createOrganization(input: { name: "Crash Co" }) { ... on CreateOrganizationPayload { organization { id } } } }`)).data!
      .createOrganization.organization.id;
    const project = (await as(`mutation($o: ID!) { createProject(input: { organizationId: $o, name: "P" }) { ... on CreateProjectPayload { project { id } } } }`, { o: org }))
      .data!.createProject.project.id;
    const agent = (
      await as(`mutation($p: ID!) { createAgent(input: { projectId: $p, name: "A", provider: OFFLINE, model: "offline-large", maxOutputTokens: 400 }) { ... on CreateAgentPayload { agent { id } } } }`, { p: project })
    ).data!.createAgent.agent.id;
    const runGid = (await as(`mutation($a: ID!) { startRun(input: { agentId: $a, input: "Plan a trip" }) { ... on StartRunPayload { run { id } } } }`, { a: agent }))
      .data!.startRun.run.id as string;

    const before = await collectRunEvents(first.url!.replace('http', 'ws') + '/graphql', token, runGid, { stopAfter: (e) => e.type === 'TOKEN' && e.seq >= 4 });
    await first.kill();

    const second = await startHubProcess(env);
    cleanup.push(() => second.kill());
    const after = await collectRunEvents(second.url!.replace('http', 'ws') + '/graphql', token, runGid, { afterSeq: before.events.at(-1)!.seq });
    expect(after.completed).toBe(true);
    const all = [...before.events, ...after.events];
    const run = (await as(RUN, { id: runGid }, second.url!)).data!.run;
    expect(run).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
    expectCoherentLog(all, run.output);
    expect(after.events.some((e) => e.type === 'STATUS' && String(e.payload.reason ?? '').includes('stopped responding'))).toBe(true);
  }, 120_000);
});
