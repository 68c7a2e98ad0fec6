import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usingPostgres } from '../../../test/db.js';
import { given, type TestOrg, type TestUser } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { fromGlobalId, toGlobalId } from '../../lib/ids.js';

// The audit log names what each action was done to, as a person knows it, not by its global id.
const BOOT_TIMEOUT = 180_000;
let app: TestServer;
let org: TestOrg;
let member: TestUser;

const LOGS = `query($slug: String!, $first: Int, $actions: [String!]) {
  organization(slug: $slug) { auditLogs(first: $first, filter: { actions: $actions }) { edges { node { action target { type id label } } } } }
}`;
type Node = { action: string; target: { type: string; id: string; label: string | null } | null };

async function entries(first = 100, actions?: string[]): Promise<Node[]> {
  const res = await org.owner.gql(LOGS, { slug: org.slug, first, actions });
  expect(res.errors).toBeUndefined();
  return res.data!.organization.auditLogs.edges.map((e: { node: Node }) => e.node);
}
const labelOf = async (action: string) => (await entries(100, [action])).map((n) => n.target?.label);

async function ok<T = any>(user: TestUser, query: string, input: Record<string, unknown>, field: string): Promise<T> {
  const res = await user.gql(query, { input });
  expect(res.data?.[field]?.__typename, JSON.stringify(res)).toMatch(/Payload$/);
  return res.data![field];
}

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  org = await given(app).anOrganization();
  member = await given(app).aMemberOf(org, 'MEMBER', 'Mia Member');
}, BOOT_TIMEOUT);
afterAll(() => app?.close());

describe('audit targets have a label', () => {
  it('names invitees, members, projects, agents, budgets, runs and the organization', async () => {
    const project = await ok(org.owner, `mutation($input: CreateProjectInput!) { createProject(input: $input) { __typename ... on CreateProjectPayload { project { id } } } }`, { organizationId: org.gid, name: 'Website relaunch' }, 'createProject');
    const projectGid = project.project.id as string;
    const agent = await ok(
      org.owner,
      `mutation($input: CreateAgentInput!) { createAgent(input: $input) { __typename ... on CreateAgentPayload { agent { id } } } }`,
      { projectId: projectGid, name: 'Release planner', provider: 'OFFLINE', model: 'offline-small' },
      'createAgent',
    );
    await ok(org.owner, `mutation($input: InviteMemberInput!) { inviteMember(input: $input) { __typename } }`, { organizationId: org.gid, email: 'newcomer@example.test', role: 'VIEWER' }, 'inviteMember');
    await ok(org.owner, `mutation($input: SetBudgetInput!) { setBudget(input: $input) { __typename } }`, { organizationId: org.gid, period: 'DAILY', limit: '5000000' }, 'setBudget');
    await ok(org.owner, `mutation($input: SetBudgetInput!) { setBudget(input: $input) { __typename } }`, { organizationId: org.gid, projectId: projectGid, period: 'MONTHLY', limit: '0' }, 'setBudget');
    const membership = await app.rt.prisma.membership.findFirstOrThrow({ where: { organizationId: org.id, userId: member.id } });
    await ok(org.owner, `mutation($input: UpdateMemberRoleInput!) { updateMemberRole(input: $input) { __typename } }`, { membershipId: toGlobalId('Membership', membership.id), role: 'VIEWER' }, 'updateMemberRole');
    await ok(org.owner, `mutation($input: UpdateOrganizationInput!) { updateOrganization(input: $input) { __typename } }`, { id: org.gid, name: 'Budget Labs' }, 'updateOrganization');
    await ok(org.owner, `mutation($input: ArchiveAgentInput!) { archiveAgent(input: $input) { __typename } }`, { id: agent.agent.id }, 'archiveAgent');
    // What the budget guard records when it refuses a run.
    const run = await app.rt.prisma.agentRun.create({
      data: { organizationId: org.id, projectId: fromGlobalId(projectGid, 'Project'), agentId: fromGlobalId(agent.agent.id, 'Agent'), input: 'x', status: 'BLOCKED' },
    });
    await app.rt.prisma.auditLog.create({ data: { organizationId: org.id, action: 'budget.exceeded', targetType: 'Run', targetId: run.id, metadata: { period: 'DAILY' } } });

    expect(await labelOf('project.created')).toEqual(['Website relaunch']);
    expect(await labelOf('agent.created')).toEqual(['Release planner']);
    expect(await labelOf('agent.archived')).toEqual(['Release planner']);
    expect(await labelOf('member.invited')).toEqual(['newcomer@example.test']);
    expect((await labelOf('budget.created')).sort()).toEqual(['Daily budget, Organization-wide', 'Monthly budget, Website relaunch']);
    expect(await labelOf('member.role_changed')).toEqual([`Mia Member (${member.email})`]);
    expect(await labelOf('org.updated')).toEqual(['Budget Labs']);
    expect(await labelOf('budget.exceeded')).toEqual(['Run of Release planner']);
    // The id stays, for whoever needs it.
    const [invited] = await entries(100, ['member.invited']);
    expect(invited!.target).toMatchObject({ type: 'Invitation', id: expect.stringMatching(/^[A-Za-z0-9+/=]+$/) });
  });

  it('falls back to what the entry recorded once the object is gone', async () => {
    const gone = await given(app).aMemberOf(org, 'VIEWER', 'Gus Gone');
    const membership = await app.rt.prisma.membership.findFirstOrThrow({ where: { organizationId: org.id, userId: gone.id } });
    await ok(org.owner, `mutation($input: RemoveMemberInput!) { removeMember(input: $input) { __typename } }`, { membershipId: toGlobalId('Membership', membership.id) }, 'removeMember');
    const budget = await app.rt.prisma.budget.findFirstOrThrow({ where: { organizationId: org.id, projectId: null } });
    await ok(org.owner, `mutation($input: RemoveBudgetInput!) { removeBudget(input: $input) { __typename } }`, { id: toGlobalId('Budget', budget.id) }, 'removeBudget');
    expect(await labelOf('member.removed')).toEqual([`Gus Gone (${gone.email})`]);
    expect(await labelOf('budget.removed')).toEqual(['Daily budget, Organization-wide']);
  });

  it("never names another organization's objects", async () => {
    const other = await given(app).anOrganization();
    const secret = await app.rt.prisma.project.create({ data: { organizationId: other.id, slug: 'secret', name: 'Secret project' } });
    await app.rt.prisma.auditLog.create({ data: { organizationId: org.id, action: 'project.archived', targetType: 'Project', targetId: secret.id } });
    const [entry] = await entries(1, ['project.archived']);
    expect(entry!.target).toMatchObject({ type: 'Project', label: null });
  });

  // The labels of a page are looked up together: one query per kind of target, not one per entry.
  it.skipIf(usingPostgres())('labels a page of 100 entries in a handful of queries', async () => {
    const project = await app.rt.prisma.project.findFirstOrThrow({ where: { organizationId: org.id, name: 'Website relaunch' } });
    const agent = await app.rt.prisma.agent.findFirstOrThrow({ where: { organizationId: org.id } });
    const run = await app.rt.prisma.agentRun.findFirstOrThrow({ where: { organizationId: org.id } });
    const membership = await app.rt.prisma.membership.findFirstOrThrow({ where: { organizationId: org.id, userId: member.id } });
    const kinds = [
      { targetType: 'Project', targetId: project.id, metadata: {} },
      { targetType: 'Agent', targetId: agent.id, metadata: {} },
      { targetType: 'Run', targetId: run.id, metadata: {} },
      { targetType: 'Membership', targetId: membership.id, metadata: {} },
      { targetType: 'Membership', targetId: membership.id, metadata: { userId: member.id } },
      { targetType: 'Organization', targetId: org.id, metadata: {} },
      { targetType: 'Budget', targetId: project.id, metadata: { period: 'DAILY', projectId: project.id } },
      { targetType: 'Invitation', targetId: project.id, metadata: { email: 'x@example.test' } },
    ];
    await app.rt.prisma.auditLog.createMany({
      data: Array.from({ length: 100 }, (_, i) => ({ organizationId: org.id, action: 'org.updated', ...kinds[i % kinds.length]! })),
    });

    const pglite = app.rt.db.pglite!;
    const original = pglite.query.bind(pglite);
    let queries = 0;
    pglite.query = ((...args: Parameters<typeof original>) => {
      queries++;
      return original(...args);
    }) as typeof pglite.query;
    const count = async (fields: string) => {
      queries = 0;
      const res = await org.owner.gql(`query($slug: String!) { organization(slug: $slug) { auditLogs(first: 100) { edges { node { id target { ${fields} } } } } } }`, { slug: org.slug });
      expect(res.errors).toBeUndefined();
      expect(res.data!.organization.auditLogs.edges).toHaveLength(100);
      return queries;
    };
    try {
      const without = await count('type id');
      const withLabels = await count('type id label');
      // Projects, agents, runs, memberships, users, the organization: six lookups, two of which read a relation
      // (a run's agent, a membership's user) in a query of their own. One per entry would be a hundred.
      expect(withLabels - without).toBeLessThanOrEqual(8);
      expect(withLabels - without).toBeGreaterThan(0);
    } finally {
      pglite.query = original;
    }
  });
});
