import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestUser } from '../../../test/factories.js';
import { gql, startTestServer, type TestServer } from '../../../test/harness.js';
import { fromGlobalId } from '../../lib/ids.js';

const START = `mutation($input: StartRunInput!) { startRun(input: $input) { ... on StartRunPayload { run { id } } ... on Error { message } } }`;
// 100 ms a token: the run would stream for about 10 s.
const ENV = { OFFLINE_TOKEN_DELAY_MS: '100' };

let app: TestServer;
let next: TestServer | undefined;
let owner: TestUser;
let agentGid: string;

beforeAll(async () => {
  app = await startTestServer({ env: ENV });
  const org = await given(app).anOrganization();
  owner = org.owner;
  const project = await given(app).aProject(org);
  agentGid = (await given(app).anOfflineAgent(project)).gid;
});
afterAll(async () => {
  await next?.close();
  await app.close();
});

const row = (id: string) =>
  app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id }, select: { status: true, lastSeq: true, leaseOwner: true, attempts: true, output: true } });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a worker that shuts down with a run in progress', () => {
  it('gives it a grace period, then puts it back in the queue at once; the next worker runs it from the start', async () => {
    const started = await owner.gql(START, { input: { agentId: agentGid, input: 'A long plan please' } });
    const runId = fromGlobalId(started.data!.startRun.run.id as string, 'Run');
    for (let i = 0; i < 400 && (await row(runId)).lastSeq < 4; i++) await sleep(25);
    expect((await row(runId)).lastSeq).toBeGreaterThanOrEqual(4);

    const stopping = Date.now();
    await app.rt.orchestrator.stop(300);
    const stoppedAfter = Date.now() - stopping;
    // The grace period, then the hand-over: not the ~10 s the run had left, nor a lease to lapse (30 s).
    expect(stoppedAfter).toBeGreaterThanOrEqual(300);
    expect(stoppedAfter).toBeLessThan(3_000);
    const handedOver = await row(runId);
    expect(handedOver).toMatchObject({ status: 'QUEUED', leaseOwner: null, attempts: 1 });
    const last = await app.rt.prisma.runEvent.findFirstOrThrow({ where: { runId }, orderBy: { seq: 'desc' } });
    expect(last).toMatchObject({ seq: handedOver.lastSeq, type: 'STATUS' });
    expect(last.payload).toEqual({ status: 'QUEUED', reason: `Worker ${app.rt.orchestrator.workerId} shut down; retrying` });
    // What the first attempt used is in the ledger.
    expect(await app.rt.prisma.usageRecord.count({ where: { runId } })).toBe(1);

    // Another worker (here: another server on the same database) takes it from the queue.
    next = await startTestServer({ env: ENV });
    for (let i = 0; i < 1200 && (await row(runId)).status !== 'SUCCEEDED'; i++) await sleep(25);
    const done = await row(runId);
    expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
    const events = await app.rt.prisma.runEvent.findMany({ where: { runId }, orderBy: { seq: 'asc' } });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const running = events.filter((e) => e.type === 'STATUS' && (e.payload as { status: string }).status === 'RUNNING');
    expect(running.map((e) => (e.payload as { attempt: number }).attempt)).toEqual([1, 2]);
    // The output is the second attempt's, whole.
    const secondTokens = events.filter((e) => e.seq > running[1]!.seq && e.type === 'TOKEN').map((e) => (e.payload as { text: string }).text);
    expect(secondTokens.join('')).toBe(done.output);
  }, 60_000);

  it('ends a run its user cancelled meanwhile as CANCELLED, rather than queueing it again', async () => {
    // Started through the second server, whose worker is the one running now.
    const started = await gql(next!.url, START, { input: { agentId: agentGid, input: 'Another long plan' } }, { token: owner.token });
    const runId = fromGlobalId(started.data!.startRun.run.id as string, 'Run');
    for (let i = 0; i < 400 && (await row(runId)).lastSeq < 4; i++) await sleep(25);
    expect((await row(runId)).status).toBe('RUNNING');
    // The cancel is recorded; its message has not reached the worker when the shutdown begins.
    await app.rt.prisma.agentRun.update({ where: { id: runId }, data: { cancelRequested: true } });
    await next!.rt.orchestrator.stop(100);
    expect(await row(runId)).toMatchObject({ status: 'CANCELLED', leaseOwner: null, attempts: 1 });
    const last = await app.rt.prisma.runEvent.findFirstOrThrow({ where: { runId }, orderBy: { seq: 'desc' } });
    expect(last.payload).toMatchObject({ status: 'CANCELLED' });
  }, 60_000);

  it('hands over every run in progress at once, however many, without a listener warning', async () => {
    const many = await startTestServer({ env: { ...ENV, WORKER_CONCURRENCY: '16', ORG_CONCURRENCY: '16' } });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) {
        const started = await gql(many.url, START, { input: { agentId: agentGid, input: `Plan ${i}` } }, { token: owner.token });
        ids.push(fromGlobalId(started.data!.startRun.run.id as string, 'Run'));
      }
      for (const id of ids) for (let i = 0; i < 400 && (await row(id)).lastSeq < 3; i++) await sleep(25);
      expect((await Promise.all(ids.map(row))).map((r) => r.status)).toEqual(ids.map(() => 'RUNNING'));
      await many.rt.orchestrator.stop(100);
      expect((await Promise.all(ids.map(row))).map((r) => r.status)).toEqual(ids.map(() => 'QUEUED'));
      await sleep(10);
      expect(warnings.map((w) => `${w.name}: ${w.message}`)).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await many.close();
    }
  }, 60_000);
});
