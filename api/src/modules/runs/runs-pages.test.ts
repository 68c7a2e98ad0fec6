import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestProject, type TestUser } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';

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
