import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usingPostgres } from '../../../test/db.js';
import { given, type TestProject, type TestUser } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { fromGlobalId } from '../../lib/ids.js';

// No worker: a started run stays QUEUED until the test cancels it, or is made RUNNING by the test (a claim of
// another process's worker).
let app: TestServer;
let project: TestProject;
let owner: TestUser;
let admin: TestUser;
let agent: { id: string; gid: string };

const START = `mutation($input: StartRunInput!) { startRun(input: $input) { __typename ... on StartRunPayload { run { id } } } }`;
const CANCEL = `mutation($id: ID!) { cancelRun(input: { id: $id }) { __typename ... on CancelRunPayload { run { status } } } }`;
const LOG = `query($slug: String!) { organization(slug: $slug) { auditLogs(first: 5, filter: { actions: ["run.cancelled"] }) {
  edges { node { action actor { id } target { type id label } metadata } } } } }`;

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  const org = await given(app).anOrganization();
  owner = org.owner;
  admin = await given(app).aMemberOf(org, 'ADMIN');
  project = await given(app).aProject(org);
  agent = await given(app).anOfflineAgent(project, { name: 'Canceller' });
}, 180_000);
afterAll(() => app?.close());

async function aQueuedRun() {
  const res = await owner.gql(START, { input: { agentId: agent.gid, input: 'Plan the release' } });
  expect(res.data!.startRun.__typename).toBe('StartRunPayload');
  const gid = res.data!.startRun.run.id as string;
  return { gid, id: fromGlobalId(gid, 'Run') };
}

/** A run claimed by a worker of another process, streaming now. */
async function aRunningRun() {
  const run = await aQueuedRun();
  await app.rt.prisma.agentRun.update({
    where: { id: run.id },
    data: { status: 'RUNNING', attempts: 1, startedAt: new Date(), leaseOwner: 'elsewhere', leaseExpiresAt: new Date(Date.now() + 30_000) },
  });
  return run;
}

const cancelRows = (runId: string) => app.rt.prisma.auditLog.findMany({ where: { action: 'run.cancelled', targetId: runId } });

describe('cancelling a run is audited', () => {
  it('once, as run.cancelled by whoever cancelled it, with the run and its agent; a repeated cancel writes nothing', async () => {
    const run = await aQueuedRun();
    const first = await admin.gql(CANCEL, { id: run.gid });
    expect(first.data!.cancelRun).toEqual({ __typename: 'CancelRunPayload', run: { status: 'CANCELLED' } });
    const again = await owner.gql(CANCEL, { id: run.gid });
    expect(again.data!.cancelRun.__typename).toBe('CancelRunPayload');

    const rows = await cancelRows(run.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ organizationId: project.org.id, actorId: admin.id, targetType: 'Run', targetId: run.id });
    expect(rows[0]!.metadata).toEqual({ runId: run.id, agentId: agent.id, agentName: 'Canceller', status: 'QUEUED' });

    // The log shows it with public ids only, and names the run by its agent.
    const log = await owner.gql(LOG, { slug: project.org.slug });
    const entry = log.data!.organization.auditLogs.edges.map((e: { node: unknown }) => e.node).find((n: { target: { id: string } }) => n.target.id === run.gid);
    expect(entry).toEqual({
      action: 'run.cancelled',
      actor: { id: admin.gid },
      target: { type: 'Run', id: run.gid, label: 'Run of Canceller' },
      metadata: { runId: run.gid, agentId: agent.gid, agentName: 'Canceller', status: 'QUEUED' },
    });
  });

  it('for a running run too: the first to ask is recorded, a second cancel while it stops writes nothing', async () => {
    const run = await aRunningRun();
    await owner.gql(CANCEL, { id: run.gid });
    await admin.gql(CANCEL, { id: run.gid });
    expect(await app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: run.id } })).toMatchObject({ cancelRequested: true, cancelledById: owner.id });
    const rows = await cancelRows(run.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actorId: owner.id, metadata: { runId: run.id, agentId: agent.id, agentName: 'Canceller', status: 'RUNNING' } });
  });

  it('not for a run that had finished: nothing changed', async () => {
    const run = await aQueuedRun();
    await app.rt.prisma.agentRun.update({ where: { id: run.id }, data: { status: 'SUCCEEDED', finishedAt: new Date() } });
    await owner.gql(CANCEL, { id: run.gid });
    expect(await cancelRows(run.id)).toHaveLength(0);
    expect(await app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: run.id } })).toMatchObject({ status: 'SUCCEEDED', cancelRequested: false, cancelledById: null });
  });

  // A real race on PostgreSQL (one connection each); PGlite runs them one after the other, which must hold too.
  it(`once when several people cancel at the same moment (${usingPostgres() ? 'PostgreSQL' : 'PGlite'})`, async () => {
    const people = [owner, admin, ...(await Promise.all([1, 2, 3].map(() => given(app).aMemberOf(project.org, 'MEMBER'))))];
    for (const run of [await aQueuedRun(), await aRunningRun()]) {
      const answers = await Promise.all(people.map((p) => p.gql(CANCEL, { id: run.gid })));
      for (const a of answers) expect(a.data!.cancelRun.__typename).toBe('CancelRunPayload');
      const rows = await cancelRows(run.id);
      expect(rows).toHaveLength(1);
      const stored = await app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: run.id } });
      expect(rows[0]!.actorId).toBe(stored.cancelledById);
    }
  });

});
