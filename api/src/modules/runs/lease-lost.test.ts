import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestUser } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { fromGlobalId } from '../../lib/ids.js';

const START = `mutation($input: StartRunInput!) { startRun(input: $input) { ... on StartRunPayload { run { id } } ... on Error { message } } }`;

/**
 * 150 ms a token: the run streams about 50 events over 7–8 s. Two ways for its old worker to learn of the
 * takeover: a lease renewal (every 200 ms with a 600 ms lease), or its next batch of events, refused because
 * the lease is not its own (the only way with a one-minute lease, renewed every 20 s).
 */
describe.each([
  { how: 'by its lease renewal', RUN_LEASE_MS: '600' },
  { how: 'by its next batch of events', RUN_LEASE_MS: '60000' },
])('a run whose lease another worker took over, found out $how', ({ RUN_LEASE_MS }) => {
  let app: TestServer;
  let owner: TestUser;
  let agentGid: string;

  beforeAll(async () => {
    app = await startTestServer({ env: { OFFLINE_TOKEN_DELAY_MS: '150', RUN_LEASE_MS } });
    const org = await given(app).anOrganization();
    owner = org.owner;
    const project = await given(app).aProject(org);
    agentGid = (await given(app).anOfflineAgent(project)).gid;
  });
  afterAll(async () => {
    await app.close();
  });

  const row = (id: string) => app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id }, select: { status: true, lastSeq: true, leaseOwner: true } });
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('stores no event of its old worker after the takeover, stops its stream, and writes no final state over the new owner', async () => {
    const started = await owner.gql(START, { input: { agentId: agentGid, input: 'A long plan please' } });
    const runId = fromGlobalId(started.data!.startRun.run.id as string, 'Run');
    for (let i = 0; i < 400 && (await row(runId)).lastSeq < 5; i++) await sleep(25);
    expect((await row(runId)).lastSeq).toBeGreaterThanOrEqual(5);

    // What recovery does after a lapse (this worker stalled, or lost the database for longer than the lease).
    await app.rt.prisma.agentRun.update({ where: { id: runId }, data: { leaseOwner: 'worker-elsewhere', leaseExpiresAt: new Date(Date.now() + 60_000) } });
    const takenOver = Date.now();
    // A batch in flight at the takeover was either stored before it (and counts here) or refused.
    const atTakeover = (await row(runId)).lastSeq;
    // Stopped: no new event for 500 ms (the provider sends one every 150 ms).
    let last = atTakeover;
    let stoppedAfter: number | null = null;
    while (stoppedAfter === null && Date.now() - takenOver < 15_000) {
      await sleep(500);
      const now = (await row(runId)).lastSeq;
      if (now === last) stoppedAfter = Date.now() - takenOver;
      last = now;
    }
    // Stopped by whichever comes first, and nothing of its stored after the takeover; left alone, this worker
    // would stream all ~50 events, for another 6–7 s. The new owner's seqs are free for it to use.
    expect(stoppedAfter).not.toBeNull();
    expect(stoppedAfter!).toBeLessThan(3_000);
    expect(last).toBe(atTakeover);
    expect(await row(runId)).toMatchObject({ status: 'RUNNING', leaseOwner: 'worker-elsewhere' });

    // Leave nothing running for the sweepers of other test servers on this database.
    await app.rt.prisma.agentRun.update({ where: { id: runId }, data: { status: 'FAILED', leaseOwner: null, leaseExpiresAt: null } });
  }, 40_000);
});
