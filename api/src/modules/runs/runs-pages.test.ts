import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestProject, type TestUser } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { toGlobalId } from '../../lib/ids.js';

// Paging a project's runs as an integrator does: by hand, with the cursors the API gave, or with bad ones.

let app: TestServer;
let owner: TestUser;
let project: TestProject;

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  const org = await given(app).anOrganization();
  owner = org.owner;
  project = await given(app).aProject(org);
});
afterAll(() => app?.close());

const PAGE = `query($p: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  project(id: $p) { id runs(first: $first, after: $after, last: $last, before: $before) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } } }`;

describe('project.runs', () => {
  it('refuses a cursor it never gave, or a negative page size, as a VALIDATION_FAILED error a person can read', async () => {
    const cases: [Record<string, unknown>, { path: string[]; message: string }][] = [
      [{ first: 5, after: 'garbage' }, { path: [], message: 'This cursor was not given by this list: page with pageInfo.endCursor or startCursor' }],
      [{ last: 5, before: 'R1BDOg==' }, { path: [], message: 'This cursor was not given by this list: page with pageInfo.endCursor or startCursor' }],
      [{ first: -1 }, { path: ['first'], message: 'Ask for 0 items or more' }],
      [{ last: -1 }, { path: ['last'], message: 'Ask for 0 items or more' }],
    ];
    for (const [args, issue] of cases) {
      const res = await owner.gql(PAGE, { p: project.gid, ...args });
      expect(res.errors?.map((e) => ({ code: e.extensions?.code, message: e.message, issues: e.extensions?.issues })), JSON.stringify(args)).toEqual([
        { code: 'VALIDATION_FAILED', message: issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message, issues: [issue] },
      ]);
    }
  });
});

describe('project.runs(filter)', () => {
  const FILTERED = `query($p: ID!, $filter: RunFilter) { project(id: $p) { id runs(first: 10, filter: $filter) { totalCount edges { node { id } } } } }`;

  it('refuses an agent id that is no agent id as VALIDATION_FAILED on filter.agentId, not as a project not found', async () => {
    const message = 'Use an agent’s id (Agent.id)';
    for (const agentId of ['garbage', '', project.gid, Buffer.from('Agent:42').toString('base64')]) {
      const res = await owner.gql(FILTERED, { p: project.gid, filter: { agentId } });
      expect(res.errors?.map((e) => ({ code: e.extensions?.code, issues: e.extensions?.issues })), agentId).toEqual([
        { code: 'VALIDATION_FAILED', issues: [{ path: ['filter', 'agentId'], message }] },
      ]);
    }
  });

  it("lists nothing for an agent that does not exist or is another organization's, exactly alike", async () => {
    const agent = await given(app).anOfflineAgent(project);
    await app.rt.prisma.agentRun.create({
      data: { organizationId: project.org.id, projectId: project.id, agentId: agent.id, createdById: owner.id, input: 'x' },
    });
    const mine = await owner.gql(FILTERED, { p: project.gid, filter: { agentId: agent.gid } });
    expect(mine.data!.project.runs.totalCount).toBe(1);

    const elsewhere = await given(app).anOfflineAgent(await given(app).aProject(await given(app).anOrganization()));
    const missing = toGlobalId('Agent', randomUUID());
    const answers = await Promise.all([elsewhere.gid, missing].map((agentId) => owner.gql(FILTERED, { p: project.gid, filter: { agentId } })));
    for (const res of answers) expect({ errors: res.errors, data: res.data }).toEqual({ errors: undefined, data: { project: { id: project.gid, runs: { totalCount: 0, edges: [] } } } });
  });

  it('takes an empty status list as no status filter, and no agentId (null) as every agent', async () => {
    const all = await owner.gql(FILTERED, { p: project.gid });
    const res = await owner.gql(FILTERED, { p: project.gid, filter: { status: [], agentId: null } });
    expect(res.errors).toBeUndefined();
    expect(res.data!.project.runs.totalCount).toBe(all.data!.project.runs.totalCount);
  });
});
