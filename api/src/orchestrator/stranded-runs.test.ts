import PgBoss from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase, usingPostgres } from '../../test/db.js';
import { given, type TestUser } from '../../test/factories.js';
import { startTestServer, type TestServer } from '../../test/harness.js';
import { fromGlobalId } from '../lib/ids.js';

// A short lease, so that the recovery sweep (every half lease) and its bounds fit in a test.
const ENV = { OFFLINE_TOKEN_DELAY_MS: '5', RUN_LEASE_MS: '1500' };
const START = `mutation($a: ID!) { startRun(input: { agentId: $a, input: "Plan a trip" }) { ... on StartRunPayload { run { id } } } }`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Makes every claim of a run throw, as when the database cannot be reached while a job is handled (the claim's
 * function is renamed away). Returns the undo, which may be called more than once.
 */
async function breakClaims(query: (text: string) => Promise<unknown>) {
  await query(`ALTER FUNCTION hub_claim_run(uuid, text, integer, integer, timestamp(3)) RENAME TO hub_claim_run_away`);
  let restored = false;
  return async () => {
    if (restored) return;
    restored = true;
    await query(`ALTER FUNCTION hub_claim_run_away(uuid, text, integer, integer, timestamp(3)) RENAME TO hub_claim_run`);
  };
}

/** A run queued by an API process without a worker: QUEUED, with its pg-boss job. */
describe.runIf(usingPostgres())('a QUEUED run whose job will not deliver it', () => {
  let api: TestServer;
  let owner: TestUser;
  let agentGid: string;
  const servers: TestServer[] = [];

  beforeAll(async () => {
    api = await startTestServer({ worker: false, env: ENV });
    const org = await given(api).anOrganization();
    owner = org.owner;
    agentGid = (await given(api).anOfflineAgent(await given(api).aProject(org))).gid;
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await api.close();
  });

  const query = <T,>(text: string, params: unknown[] = []) => api.rt.db.query<T>(text, params);
  const run = (id: string) => api.rt.prisma.agentRun.findUniqueOrThrow({ where: { id }, select: { status: true, attempts: true } });
  const jobStates = async (runId: string) =>
    (await query<{ state: string }>(`SELECT state::text FROM pgboss.job WHERE name = 'agent-runs' AND data->>'runId' = $1 ORDER BY created_on`, [runId])).map(
      (j) => j.state,
    );
  const startQueued = async () => fromGlobalId((await owner.gql(START, { a: agentGid })).data!.startRun.run.id as string, 'Run');
  const statuses = async (runId: string) =>
    (await api.rt.prisma.runEvent.findMany({ where: { runId, type: 'STATUS' }, orderBy: { seq: 'asc' } })).map((e) => (e.payload as { status: string }).status);

  it('is run once its job has failed for good (every claim threw, the database out of reach meanwhile)', async () => {
    const restore = await breakClaims(query);
    let worker: TestServer | undefined;
    try {
      const runId = await startQueued();
      worker = await startTestServer({ env: ENV });
      // The first delivery and its 5 retries all fail: pg-boss fails the job for good.
      for (let i = 0; i < 400 && !(await jobStates(runId)).includes('failed'); i++) await sleep(100);
      expect(await jobStates(runId)).toEqual(['failed']);
      expect(await run(runId)).toMatchObject({ status: 'QUEUED', attempts: 0 });
      await restore();

      // The database is back: the run is found and run, once.
      for (let i = 0; i < 200 && (await run(runId)).status !== 'SUCCEEDED'; i++) await sleep(50);
      expect(await run(runId)).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
      expect(await statuses(runId)).toEqual(['QUEUED', 'RUNNING', 'SUCCEEDED']);
    } finally {
      await restore();
      // Its worker would take the next test's run.
      await worker?.close();
    }
  }, 90_000);

  it('is run within about a lease when the process that fetched its job died before claiming it', async () => {
    const runId = await startQueued();
    // A process fetches the job, and dies before it claims the run: the job stays active, unclaimed.
    const { url } = await getTestDatabase();
    const dead = new PgBoss({ connectionString: url!, schema: 'pgboss', max: 1, supervise: false, schedule: false });
    await dead.start();
    const fetched = await dead.fetch<{ runId: string }>('agent-runs', { batchSize: 10 });
    await dead.stop({ graceful: false, wait: true });
    expect(fetched.map((j) => j.data.runId)).toContain(runId);
    expect(await jobStates(runId)).toEqual(['active']);

    const startedAt = Date.now();
    servers.push(await startTestServer({ env: ENV }));
    // Not after pg-boss's expiry of the job (15 minutes), but after about a lease (1.5 s here).
    for (let i = 0; i < 300 && (await run(runId)).status !== 'SUCCEEDED'; i++) await sleep(50);
    expect(await run(runId)).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    expect(await statuses(runId)).toEqual(['QUEUED', 'RUNNING', 'SUCCEEDED']);
  }, 60_000);
});

/** The embedded database's in-process queue: a job whose delivery failed must not be lost until the next start. */
describe.runIf(!usingPostgres())('a QUEUED run whose delivery failed, on the embedded database', () => {
  it('is delivered again, and run once, when its claim works again', async () => {
    const api = await startTestServer({ worker: false, env: ENV });
    let worker: TestServer | undefined;
    let restore = async () => {};
    try {
      const org = await given(api).anOrganization();
      const agentGid = (await given(api).anOfflineAgent(await given(api).aProject(org))).gid;
      const runId = fromGlobalId((await org.owner.gql(START, { a: agentGid })).data!.startRun.run.id as string, 'Run');
      restore = await breakClaims((text) => api.rt.db.query(text));
      // A worker starts: it queues the waiting run, and its claim fails.
      worker = await startTestServer({ env: ENV });
      await sleep(300);
      const run = () => api.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: runId }, select: { status: true, attempts: true } });
      expect(await run()).toMatchObject({ status: 'QUEUED', attempts: 0 });
      await restore();
      for (let i = 0; i < 200 && (await run()).status !== 'SUCCEEDED'; i++) await sleep(50);
      expect(await run()).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
    } finally {
      await restore();
      await worker?.close();
      await api.close();
    }
  }, 60_000);
});
