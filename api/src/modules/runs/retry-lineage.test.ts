import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase } from '../../../test/db.js';
import { given, type TestProject, type TestUser } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import type { Database } from '../../lib/db.js';
import { fromGlobalId, toGlobalId } from '../../lib/ids.js';

// A run's retry lineage: the run it retries (retryOf) and the run retryRun answers for it (retriedAs), both
// ways, only within the viewer's organization, and read with the runs of a list rather than run by run.

const START = `mutation($input: StartRunInput!) { startRun(input: $input) { __typename ... on StartRunPayload { run { id } } } }`;
const RETRY = `mutation($id: ID!) { retryRun(input: { id: $id }) { __typename ... on RetryRunPayload { run { id retryOf { id } } } } }`;
const LINEAGE = `query($id: ID!) { run(id: $id) { id status retryOf { id status } retriedAs { id status } } }`;

let app: TestServer;
let owner: TestUser;
let project: TestProject;
/** Prisma operations the server made while `recording`, by model and operation. */
let operations: string[] = [];
let recording = false;

beforeAll(async () => {
  const db = await getTestDatabase();
  const prisma = db.prisma.$extends({
    query: {
      $allOperations: ({ model, operation, args, query }) => {
        if (recording) operations.push(`${model ?? ''}.${operation}`);
        return query(args);
      },
    },
  });
  app = await startTestServer({ runtime: { database: { ...db, prisma } as unknown as Database } });
  const org = await given(app).anOrganization();
  owner = org.owner;
  project = await given(app).aProject(org);
});
afterAll(async () => {
  await app?.close();
});

const lineage = async (who: TestUser, id: string) => {
  const res = await who.gql(LINEAGE, { id });
  expect(res.errors).toBeUndefined();
  return res.data!.run;
};
const finished = (id: string) =>
  expect.poll(async () => (await lineage(owner, id)).status, { timeout: 10_000, interval: 20 }).toMatch(/SUCCEEDED|FAILED/);

describe('a retried run', () => {
  it('names its retry, which names it back; asking to retry again answers that retry and changes no link', async () => {
    const agent = await given(app).anOfflineAgent(project, { model: 'offline-small', maxOutputTokens: 20 });
    const started = await owner.gql(START, { input: { agentId: agent.gid, input: 'Draft the notes' } });
    const original = started.data!.startRun.run.id as string;
    await finished(original);
    expect(await lineage(owner, original)).toMatchObject({ retryOf: null, retriedAs: null });

    const retry = (await owner.gql(RETRY, { id: original })).data!.retryRun.run;
    // The mutation's answer already carries the link: a client shows it without asking again.
    expect(retry.retryOf).toEqual({ id: original });
    expect(await lineage(owner, original)).toMatchObject({ retryOf: null, retriedAs: { id: retry.id, status: expect.any(String) } });
    await finished(retry.id);
    const retried = await lineage(owner, retry.id);
    expect(retried.retryOf).toEqual({ id: original, status: 'SUCCEEDED' });
    expect((await lineage(owner, original)).retriedAs).toEqual({ id: retry.id, status: retried.status });

    // Retried again: the same retry, the same links.
    expect((await owner.gql(RETRY, { id: original })).data!.retryRun.run.id).toBe(retry.id);
    expect((await lineage(owner, original)).retriedAs.id).toBe(retry.id);

    // The retry of the retry is the next link of the chain; the original keeps its own.
    const third = (await owner.gql(RETRY, { id: retry.id })).data!.retryRun.run.id as string;
    expect(await lineage(owner, retry.id)).toMatchObject({ retryOf: { id: original }, retriedAs: { id: third } });
    expect(await lineage(owner, third)).toMatchObject({ retryOf: { id: retry.id }, retriedAs: null });
    expect((await lineage(owner, original)).retriedAs.id).toBe(retry.id);
  });

  it('has no retriedAs when its only retry predates idempotent retries (no key); the retry retryRun starts then is the one', async () => {
    const agent = await given(app).anOfflineAgent(project, { model: 'offline-small', maxOutputTokens: 20 });
    const original = (await owner.gql(START, { input: { agentId: agent.gid, input: 'Older' } })).data!.startRun.run.id as string;
    await finished(original);
    // As retryRun stored retries before 7 December 2026: linked, under no key.
    const legacy = await app.rt.prisma.agentRun.create({
      data: { organizationId: project.org.id, projectId: project.id, agentId: agent.id, input: 'Older', parentRunId: fromGlobalId(original, 'Run'), status: 'FAILED' },
    });
    expect(await lineage(owner, toGlobalId('Run', legacy.id))).toMatchObject({ retryOf: { id: original } });
    expect((await lineage(owner, original)).retriedAs).toBeNull();
    const retry = (await owner.gql(RETRY, { id: original })).data!.retryRun.run.id as string;
    expect((await lineage(owner, original)).retriedAs.id).toBe(retry);
  });
});

describe('retry links across organizations', () => {
  it("are never shown: another organization's viewer sees neither the run nor the link, even a link stored across", async () => {
    const agent = await given(app).anOfflineAgent(project, { model: 'offline-small', maxOutputTokens: 20 });
    const original = (await owner.gql(START, { input: { agentId: agent.gid, input: 'Ours' } })).data!.startRun.run.id as string;
    await finished(original);
    const retry = (await owner.gql(RETRY, { id: original })).data!.retryRun.run.id as string;

    const other = await given(app).anOrganization();
    const theirProject = await given(app).aProject(other);
    const theirAgent = await given(app).anOfflineAgent(theirProject);
    // Outside the organization neither run exists, so neither does the link.
    for (const id of [original, retry]) expect((await other.owner.gql(LINEAGE, { id })).data!.run).toBeNull();

    // A link that points across organizations (retryRun never stores one) is not followed from either side.
    const ours = fromGlobalId(retry, 'Run');
    const theirs = await app.rt.prisma.agentRun.create({
      data: {
        organizationId: other.id,
        projectId: theirProject.id,
        agentId: theirAgent.id,
        input: 'Theirs',
        parentRunId: ours,
        idempotencyKey: ` retry of ${ours}`,
        status: 'SUCCEEDED',
      },
    });
    expect(await lineage(other.owner, toGlobalId('Run', theirs.id))).toMatchObject({ retryOf: null, retriedAs: null });
    expect(await lineage(owner, retry)).toMatchObject({ retryOf: { id: original }, retriedAs: null });
  });
});

describe("a project's runs with their retry links", () => {
  const RUNS = `query($p: ID!) { project(id: $p) { runs(first: 50) { edges { node {
    id retryOf { id status agent { name } } retriedAs { id status agent { name } } } } } } }`;

  async function listed() {
    operations = [];
    recording = true;
    try {
      const res = await owner.gql(RUNS, { p: theProject.gid });
      expect(res.errors).toBeUndefined();
      return { nodes: res.data!.project.runs.edges.map((e: { node: unknown }) => e.node), operations: [...operations] };
    } finally {
      recording = false;
    }
  }
  let theProject: TestProject;

  it('reads the links with the page, in as many statements for twelve linked runs as for one run', async () => {
    theProject = await given(app).aProject(project.org);
    const agent = await given(app).anOfflineAgent(theProject, { name: 'Lister' });
    const make = (data: { input: string; parentRunId?: string; idempotencyKey?: string }) =>
      app.rt.prisma.agentRun.create({
        data: { organizationId: theProject.org.id, projectId: theProject.id, agentId: agent.id, status: 'FAILED', ...data },
      });
    const first = await make({ input: 'a' });
    const alone = await listed();
    expect(alone.nodes).toEqual([{ id: toGlobalId('Run', first.id), retryOf: null, retriedAs: null }]);

    // A chain of twelve: each the retry of the one before.
    let previous = first;
    for (let i = 0; i < 11; i++) previous = await make({ input: 'a', parentRunId: previous.id, idempotencyKey: ` retry of ${previous.id}` });
    const chain = await listed();
    expect(chain.nodes).toHaveLength(12);
    const byId = new Map(chain.nodes.map((n: { id: string }) => [n.id, n]));
    const second = await app.rt.prisma.agentRun.findFirstOrThrow({ where: { parentRunId: first.id } });
    expect(byId.get(toGlobalId('Run', first.id))).toEqual({
      id: toGlobalId('Run', first.id),
      retryOf: null,
      retriedAs: { id: toGlobalId('Run', second.id), status: 'FAILED', agent: { name: 'Lister' } },
    });
    expect(byId.get(toGlobalId('Run', previous.id))).toMatchObject({ retryOf: { status: 'FAILED', agent: { name: 'Lister' } }, retriedAs: null });
    expect(chain.operations).toEqual(alone.operations);
  });
});
