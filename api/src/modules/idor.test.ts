import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestUser } from '../../test/factories.js';
import { startTestServer, type GqlResult, type TestServer } from '../../test/harness.js';
import { wsClient } from '../../test/subscribe.js';
import { fromGlobalId, toGlobalId } from '../lib/ids.js';

// User A owns organization A and tries every id- or slug-taking operation with organization B's ids.
// Each attempt must be indistinguishable from one with an id that does not exist, and change nothing.

type IdType = 'Organization' | 'Project' | 'Agent' | 'Run' | 'Membership' | 'ApiToken' | 'Budget' | 'Invitation';

interface Tenant {
  owner: TestUser;
  /** Another member, whose email and membership the probes aim at. */
  member: TestUser;
  slug: string;
  ids: Record<IdType, string> & { ownerMembership: string; finishedRun: string };
}

let app: TestServer;
let a: Tenant;
let b: Tenant;

const CREATE_AGENT = `mutation($input: CreateAgentInput!) { createAgent(input: $input) { ... on CreateAgentPayload { agent { id } } } }`;
const START_RUN = `mutation($input: StartRunInput!) { startRun(input: $input) { ... on StartRunPayload { run { id } } } }`;
const CANCEL_RUN = `mutation($input: RunIdInput!) { cancelRun(input: $input) { ... on CancelRunPayload { run { status } } } }`;
const SET_BUDGET = `mutation($input: SetBudgetInput!) { setBudget(input: $input) { ... on SetBudgetPayload { budget { id } } } }`;
const INVITE = `mutation($input: InviteMemberInput!) { inviteMember(input: $input) { ... on InviteMemberPayload { invitation { id } } } }`;

/** An organization with a project, an agent, a queued and a finished run and a budget, all made through the API. */
async function aTenant(): Promise<Tenant> {
  const org = await given(app).anOrganization();
  const member = await given(app).aMemberOf(org, 'MEMBER');
  const project = await given(app).aProject(org);
  const owner = org.owner;
  const agent = (await owner.gql(CREATE_AGENT, { input: { projectId: project.gid, name: 'Agent', provider: 'OFFLINE', model: 'offline-small' } }))
    .data!.createAgent.agent.id as string;
  const start = async () => (await owner.gql(START_RUN, { input: { agentId: agent, input: 'Plan the launch' } })).data!.startRun.run.id as string;
  const [queuedRun, finishedRun] = [await start(), await start()];
  expect((await owner.gql(CANCEL_RUN, { input: { id: finishedRun } })).data!.cancelRun.run.status).toBe('CANCELLED');
  const budget = (await owner.gql(SET_BUDGET, { input: { organizationId: org.gid, period: 'MONTHLY', limit: '25000000' } }))
    .data!.setBudget.budget.id as string;
  const invitation = (await owner.gql(INVITE, { input: { organizationId: org.gid, email: `invited-${org.slug}@example.test`, role: 'VIEWER' } }))
    .data!.inviteMember.invitation.id as string;
  const membership = (userId: string) =>
    app.rt.prisma.membership.findUniqueOrThrow({ where: { organizationId_userId: { organizationId: org.id, userId } } });
  return {
    owner,
    member,
    slug: org.slug,
    ids: {
      Organization: org.id,
      Project: project.id,
      Agent: fromGlobalId(agent, 'Agent'),
      Run: fromGlobalId(queuedRun, 'Run'),
      finishedRun: fromGlobalId(finishedRun, 'Run'),
      Membership: (await membership(member.id)).id,
      ownerMembership: (await membership(owner.id)).id,
      ApiToken: (await app.rt.prisma.apiToken.findFirstOrThrow({ where: { userId: owner.id } })).id,
      Budget: fromGlobalId(budget, 'Budget'),
      Invitation: fromGlobalId(invitation, 'Invitation'),
    },
  };
}

/** Every row both organizations own, and B's people's API tokens, to prove that nothing changed. */
async function snapshot() {
  const prisma = app.rt.prisma;
  const organizationId = { in: [a.ids.Organization, b.ids.Organization] };
  const rows = await Promise.all([
    prisma.organization.findMany({ where: { id: organizationId }, orderBy: { id: 'asc' } }),
    prisma.membership.findMany({ where: { organizationId }, orderBy: { id: 'asc' } }),
    prisma.project.findMany({ where: { organizationId }, orderBy: { id: 'asc' } }),
    prisma.agent.findMany({ where: { organizationId }, orderBy: { id: 'asc' } }),
    prisma.agentRun.findMany({ where: { organizationId }, orderBy: { id: 'asc' } }),
    prisma.runEvent.findMany({ where: { run: { organizationId } }, orderBy: { id: 'asc' } }),
    prisma.auditLog.findMany({ where: { organizationId }, orderBy: { id: 'asc' } }),
    prisma.budget.findMany({ where: { organizationId }, orderBy: { id: 'asc' } }),
    prisma.invitation.findMany({ where: { organizationId }, orderBy: { id: 'asc' } }),
    prisma.apiToken.findMany({
      where: { userId: { in: [b.owner.id, b.member.id] } },
      orderBy: { id: 'asc' },
      omit: { lastUsedAt: true },
    }),
  ]);
  return JSON.parse(JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
}

let before: unknown;

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  a = await aTenant();
  b = await aTenant();
  before = await snapshot();
  // Generous: booting the database and building both tenants takes a while on a busy machine.
}, 180_000);
afterAll(() => app.close());

/** What a client can observe of a response: status, data, and each error's message, code and path. */
function observable(res: GqlResult) {
  return {
    status: res.status,
    data: res.data,
    errors: res.errors?.map((e) => ({ message: e.message, code: e.extensions?.code, path: (e as { path?: unknown }).path })),
  };
}

/** The first thing a graphql-ws subscription delivers (an event, errors or completion), as user A. */
async function firstMessage(query: string, variables: Record<string, unknown>) {
  const client = wsClient(app.wsUrl, a.owner.token);
  try {
    return await new Promise<unknown>((resolve) => {
      const timer = setTimeout(() => resolve('nothing within 10 s: the subscription was accepted'), 10_000);
      const done = (v: unknown) => {
        clearTimeout(timer);
        resolve(v);
      };
      client.subscribe(
        { query, variables },
        {
          next: (msg) => done({ next: msg }),
          error: (err) =>
            done({
              error: Array.isArray(err)
                ? err.map((e: { message: string; extensions?: { code?: unknown }; path?: unknown }) => ({ message: e.message, code: e.extensions?.code, path: e.path }))
                : String(err),
            }),
          complete: () => done({ complete: true }),
        },
      );
    });
  } finally {
    await client.dispose();
  }
}

const mutation = (name: string, inputType: string) => (input: Record<string, unknown>) =>
  a.owner
    .gql(`mutation($input: ${inputType}!) { ${name}(input: $input) { __typename ... on Error { message code } } }`, { input })
    .then(observable);

const query = (field: string) => (id: unknown) =>
  a.owner.gql(`query($id: ID!) { ${field}(id: $id) { __typename id } }`, { id }).then(observable);

interface Probe {
  name: string;
  type: IdType;
  /** B's real id (database id) that the probe aims at. */
  theirs: () => string;
  send: (id: unknown) => Promise<unknown>;
}

// Inputs are valid apart from the id, and chosen so a late authorization check would show: e.g.
// adding B's existing member would answer ConflictError if membership were checked first.
const PROBES: Probe[] = [
  { name: 'project(id)', type: 'Project', theirs: () => b.ids.Project, send: query('project') },
  { name: 'agent(id)', type: 'Agent', theirs: () => b.ids.Agent, send: query('agent') },
  { name: 'run(id)', type: 'Run', theirs: () => b.ids.Run, send: query('run') },
  {
    name: 'updateOrganization',
    type: 'Organization',
    theirs: () => b.ids.Organization,
    send: (id) => mutation('updateOrganization', 'UpdateOrganizationInput')({ id, name: 'Taken over' }),
  },
  {
    name: 'deleteOrganization',
    type: 'Organization',
    theirs: () => b.ids.Organization,
    send: (id) => mutation('deleteOrganization', 'DeleteOrganizationInput')({ id, confirmSlug: b.slug }),
  },
  {
    name: 'inviteMember',
    type: 'Organization',
    theirs: () => b.ids.Organization,
    send: (id) => mutation('inviteMember', 'InviteMemberInput')({ organizationId: id, email: b.member.email, role: 'OWNER' }),
  },
  {
    name: 'revokeInvitation',
    type: 'Invitation',
    theirs: () => b.ids.Invitation,
    send: (id) => mutation('revokeInvitation', 'RevokeInvitationInput')({ invitationId: id }),
  },
  {
    name: "updateMemberRole on B's member",
    type: 'Membership',
    theirs: () => b.ids.Membership,
    send: (id) => mutation('updateMemberRole', 'UpdateMemberRoleInput')({ membershipId: id, role: 'OWNER' }),
  },
  {
    name: "updateMemberRole on B's owner",
    type: 'Membership',
    theirs: () => b.ids.ownerMembership,
    send: (id) => mutation('updateMemberRole', 'UpdateMemberRoleInput')({ membershipId: id, role: 'VIEWER' }),
  },
  {
    name: "removeMember on B's member",
    type: 'Membership',
    theirs: () => b.ids.Membership,
    send: (id) => mutation('removeMember', 'RemoveMemberInput')({ membershipId: id }),
  },
  {
    name: "removeMember on B's owner",
    type: 'Membership',
    theirs: () => b.ids.ownerMembership,
    send: (id) => mutation('removeMember', 'RemoveMemberInput')({ membershipId: id }),
  },
  {
    name: 'createProject',
    type: 'Organization',
    theirs: () => b.ids.Organization,
    send: (id) => mutation('createProject', 'CreateProjectInput')({ organizationId: id, name: 'Planted' }),
  },
  {
    name: 'updateProject',
    type: 'Project',
    theirs: () => b.ids.Project,
    send: (id) => mutation('updateProject', 'UpdateProjectInput')({ id, name: 'Taken over' }),
  },
  { name: 'archiveProject', type: 'Project', theirs: () => b.ids.Project, send: (id) => mutation('archiveProject', 'ArchiveProjectInput')({ id }) },
  {
    name: 'createAgent',
    type: 'Project',
    theirs: () => b.ids.Project,
    send: (id) => mutation('createAgent', 'CreateAgentInput')({ projectId: id, name: 'Planted', provider: 'OFFLINE', model: 'offline-small' }),
  },
  {
    name: 'updateAgent',
    type: 'Agent',
    theirs: () => b.ids.Agent,
    send: (id) => mutation('updateAgent', 'UpdateAgentInput')({ id, systemPrompt: 'Leak everything' }),
  },
  { name: 'archiveAgent', type: 'Agent', theirs: () => b.ids.Agent, send: (id) => mutation('archiveAgent', 'ArchiveAgentInput')({ id }) },
  {
    name: 'startRun',
    type: 'Agent',
    theirs: () => b.ids.Agent,
    send: (id) => mutation('startRun', 'StartRunInput')({ agentId: id, input: 'Spend their budget' }),
  },
  {
    name: "revokeApiToken on B's owner's token",
    type: 'ApiToken',
    theirs: () => b.ids.ApiToken,
    send: (id) => mutation('revokeApiToken', 'RevokeApiTokenInput')({ id }),
  },
  { name: 'cancelRun', type: 'Run', theirs: () => b.ids.Run, send: (id) => mutation('cancelRun', 'RunIdInput')({ id }) },
  { name: 'retryRun', type: 'Run', theirs: () => b.ids.finishedRun, send: (id) => mutation('retryRun', 'RunIdInput')({ id }) },
  {
    name: 'setBudget',
    type: 'Organization',
    theirs: () => b.ids.Organization,
    send: (id) => mutation('setBudget', 'SetBudgetInput')({ organizationId: id, period: 'MONTHLY', limit: '1' }),
  },
  {
    name: "setBudget on B's project",
    type: 'Project',
    theirs: () => b.ids.Project,
    send: (id) => mutation('setBudget', 'SetBudgetInput')({ organizationId: toGlobalId('Organization', a.ids.Organization), projectId: id, period: 'DAILY', limit: '1' }),
  },
  { name: 'removeBudget', type: 'Budget', theirs: () => b.ids.Budget, send: (id) => mutation('removeBudget', 'RemoveBudgetInput')({ id }) },
  {
    name: 'subscription runEvents',
    type: 'Run',
    theirs: () => b.ids.Run,
    send: (runId) => firstMessage(`subscription($runId: ID!) { runEvents(runId: $runId) { seq type } }`, { runId }),
  },
  {
    name: 'subscription projectRunUpdates',
    type: 'Project',
    theirs: () => b.ids.Project,
    send: (projectId) => firstMessage(`subscription($projectId: ID!) { projectRunUpdates(projectId: $projectId) { status } }`, { projectId }),
  },
];

/** A type whose ids must not be accepted where `type` is expected. */
const OTHER_TYPE: Record<IdType, IdType> = {
  Organization: 'Project',
  Project: 'Agent',
  Agent: 'Run',
  Run: 'Agent',
  Membership: 'Organization',
  ApiToken: 'Membership',
  Budget: 'Project',
  Invitation: 'Membership',
};

/** Ids that must all behave like a missing one, keyed by what they are. */
function lookalikes(type: IdType, theirs: string): Record<string, unknown> {
  const other = OTHER_TYPE[type];
  return {
    [`organization B's ${type} id`]: toGlobalId(type, theirs),
    [`A's own ${other} id`]: toGlobalId(other, a.ids[other]),
    [`A's own ${type} labelled as a ${other}`]: toGlobalId(other, a.ids[type]),
    [`B's ${type} labelled as a ${other}`]: toGlobalId(other, theirs),
    'a bare database uuid': theirs,
    'an id without a uuid': toGlobalId(type, 'not-a-uuid'),
    'a random string': 'not-an-id',
    'an empty string': '',
    'a number': 42,
  };
}

describe.concurrent('user A (OWNER of organization A) using organization B ids gets exactly what a missing id gets', () => {
  for (const probe of PROBES) {
    it(`${probe.name}: B's ids, ids of the wrong type and malformed ids all look missing`, async () => {
      const missing = await probe.send(toGlobalId(probe.type, randomUUID()));
      expect(JSON.stringify(missing)).toMatch(/"data":\{"\w+":null\}|NotFoundError|not found/);
      const cases = Object.entries(lookalikes(probe.type, probe.theirs()));
      const answers = await Promise.all(cases.map(async ([what, id]) => [what, await probe.send(id)] as const));
      for (const [what, answer] of answers) expect(answer, what).toEqual(missing);
    });
  }

  it('organization(slug) is null for B, however the slug is spelled, as for a slug nobody has', async () => {
    const lookup = (slug: string) => a.owner.gql(`query($slug: String!) { organization(slug: $slug) { id } }`, { slug }).then(observable);
    const missing = await lookup(`no-such-${randomUUID().slice(0, 8)}`);
    expect(missing.data).toEqual({ organization: null });
    for (const slug of [b.slug, b.slug.toUpperCase(), ` ${b.slug}`]) expect(await lookup(slug), slug).toEqual(missing);
    expect((await lookup(a.slug)).data!.organization).not.toBeNull();
  });

  it("viewer.organizations lists A's organization only", async () => {
    const res = await a.owner.gql(`{ viewer { organizations { edges { node { slug } } } } }`);
    expect(res.data!.viewer.organizations.edges).toEqual([{ node: { slug: a.slug } }]);
  });
});

describe('after every attempt', () => {
  it('no row of either organization changed, and no audit row was written', async () => {
    expect(await snapshot()).toEqual(before);
  });
});
