import { afterAll, beforeAll, expect, it } from 'vitest';
import { given, type TestOrg } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';

let app: TestServer;
let org: TestOrg;
/** The arguments of every Prisma call made while serving the requests below. */
const calls: { model: string | undefined; operation: string; args: unknown }[] = [];

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  org = await given(app).anOrganization();
  // Each request's context takes the runtime's client when it is made: this one records what is asked of it.
  const recorded = app.rt.prisma.$extends({
    query: {
      $allModels: {
        $allOperations({ model, operation, args, query }) {
          calls.push({ model, operation, args });
          return query(args);
        },
      },
    },
  });
  (app.rt as { prisma: unknown }).prisma = recorded;
}, 180_000);
afterAll(() => app?.close());

it('a GraphQL read of users loads the columns it shows, never the password hash', async () => {
  const project = await given(app).aProject(org);
  const res = await org.owner.gql(
    `query($slug: String!, $project: ID!) {
      viewer { user { email name } }
      organization(slug: $slug) { members(first: 10) { edges { node { user { email } } } } }
      project(id: $project) { runs(first: 5) { edges { node { startedBy { name } } } } }
    }`,
    { slug: org.slug, project: project.gid },
  );
  expect(res.errors).toBeUndefined();
  expect(res.data!.viewer.user.email).toBe(org.owner.email);
  expect(res.data!.organization.members.edges[0].node.user.email).toBe(org.owner.email);
  const userReads = calls.filter((c) => c.model === 'User' || JSON.stringify(c.args).includes('"user"'));
  expect(userReads.length).toBeGreaterThan(0);
  for (const c of calls) {
    const text = JSON.stringify(c.args);
    expect(text, `${c.model}.${c.operation}`).not.toContain('passwordHash');
    // A relation included whole (`user: true`) or a read of users without a selection loads every column.
    expect(text, `${c.model}.${c.operation}`).not.toMatch(/"(user|actor|invitedBy|createdBy)":true/);
    if (c.model === 'User') expect(c.args, `${c.model}.${c.operation}`).toHaveProperty('select');
  }
});
