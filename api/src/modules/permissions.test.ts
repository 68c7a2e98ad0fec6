import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { getNamedType, isInputObjectType, isObjectType, isUnionType } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docPath, renderPermissionsDoc } from '../../../scripts/permissions-doc.js';
import { gql, startTestServer, type TestServer } from '../../test/harness.js';
import type { Role } from '../_generated/prisma/enums.js';
import { toGlobalId } from '../lib/ids.js';
import { newApiToken, sha256 } from '../lib/tokens.js';
import { ROLE_RANK } from '../schema/auth.js';
import { schema } from '../schema/index.js';
import { ACTION_WORDS, MUTATION_PERMISSIONS, PERMISSIONS, can, isAccountRule, type AccountRule, type Action, type MutationName } from './permissions.js';

const ROLES: Role[] = ['VIEWER', 'MEMBER', 'ADMIN', 'OWNER'];
const ACTORS = ['anonymous', 'non-member', ...ROLES] as const;
type Actor = (typeof ACTORS)[number];
type Outcome = 'allowed' | 'UnauthenticatedError' | 'NotFoundError' | 'ForbiddenError';

/** What the table says an actor gets from a mutation. */
function expectedOutcome(rule: Action | AccountRule, actor: Actor): Outcome {
  if (rule === 'anyone') return 'allowed';
  if (actor === 'anonymous') return 'UnauthenticatedError';
  if (isAccountRule(rule)) return 'allowed';
  if (actor === 'non-member') return 'NotFoundError';
  return can(actor, rule) ? 'allowed' : 'ForbiddenError';
}

const mutationFields = schema.getMutationType()!.getFields();

/** The mutation document, built from the schema so every case sends exactly the declared input type. */
function mutationDocument(name: string) {
  const input = mutationFields[name]!.args.find((a) => a.name === 'input')!;
  return `mutation($input: ${String(input.type)}) { ${name}(input: $input) { __typename ... on Error { message } } }`;
}

/** The one member of a mutation's result union that is not an error. */
function payloadTypename(name: string) {
  const field = mutationFields[name];
  if (!field) return '(a mutation missing from the schema)';
  const result = getNamedType(field.type);
  if (!isUnionType(result)) return result.name;
  const payloads = result.getTypes().filter((t) => !t.getInterfaces().some((i) => i.name === 'Error'));
  if (payloads.length !== 1) throw new Error(`${name} should return exactly one payload type besides errors`);
  return payloads[0]!.name;
}

// ---------------------------------------------------------------------------------------------
// Fixtures: a "world" is one organization with a member of every role and one of each object.
// Every permission case gets its own world, so a destructive case never affects another; all
// worlds are inserted up front with one createMany per table.

interface Account {
  id: string;
  email: string;
  token: string;
  /** A second API token of this account, for revokeApiToken. */
  spareTokenGid: string;
  membershipGid: string | null;
}

interface World {
  org: { id: string; gid: string; slug: string };
  roles: Record<Role, Account>;
  /** A MEMBER that the role-management cases act on. */
  bystander: Account;
  /** An account that belongs to no organization yet, for inviteMember. */
  newcomer: Account;
  /** Signed in, and OWNER of another organization only. */
  outsider: Account;
  project: string;
  agent: string;
  /** Waiting for a worker (the test server runs none), so it can be cancelled. */
  queuedRun: string;
  /** Finished, so it can be retried. */
  finishedRun: string;
  /** The organization's monthly budget. */
  budget: string;
  /** A pending VIEWER invitation of the organization, for revokeInvitation. */
  invitation: string;
  /** For acceptInvitation: each account's link into an organization none of them belongs to, by account id. */
  invitationTokens: Record<string, string>;
}

async function buildWorlds(app: TestServer, count: number): Promise<World[]> {
  const rows = {
    users: [] as { id: string; email: string; name: string; passwordHash: string }[],
    tokens: [] as { id: string; userId: string; name: string; prefix: string; tokenHash: string; lastUsedAt: Date }[],
    orgs: [] as { id: string; slug: string; name: string }[],
    memberships: [] as { id: string; organizationId: string; userId: string; role: Role }[],
    projects: [] as { id: string; organizationId: string; slug: string; name: string }[],
    agents: [] as { id: string; organizationId: string; projectId: string; name: string; provider: 'OFFLINE'; model: string }[],
    runs: [] as {
      id: string; organizationId: string; projectId: string; agentId: string; input: string;
      status: 'QUEUED' | 'SUCCEEDED'; lastSeq: number; output?: string; finishedAt?: Date;
    }[],
    events: [] as { runId: string; seq: number; type: 'STATUS'; payload: { status: string } }[],
    budgets: [] as { id: string; organizationId: string; period: 'MONTHLY'; limitMicros: bigint; windowStart: Date }[],
    invitations: [] as { id: string; organizationId: string; email: string; role: Role; tokenHash: string; expiresAt: Date; invitedById: string }[],
  };
  /** An invitation sent by `sender` (an invitation offers only what its sender may still grant). */
  const invite = (organizationId: string, email: string, role: Role, sender: { id: string }) => {
    const token = `hub_inv_${randomUUID()}`;
    const id = randomUUID();
    rows.invitations.push({ id, organizationId, email, role, tokenHash: sha256(token), expiresAt: new Date(Date.now() + 86_400_000), invitedById: sender.id });
    return { id, token };
  };

  const organization = (name: string) => {
    const org = { id: randomUUID(), slug: `org-${randomUUID().slice(0, 12)}`, name };
    rows.orgs.push(org);
    return org;
  };
  const account = (label: string, membership?: { organizationId: string; role: Role }): Account => {
    const id = randomUUID();
    const email = `${label}-${id.slice(0, 12)}@example.test`;
    // Fixture accounts authenticate with API tokens only; the password hash is never checked.
    rows.users.push({ id, email, name: label, passwordHash: 'unusable' });
    const token = newApiToken();
    const spareId = randomUUID();
    // Marked as just used, so authenticating with them does not cost a write per request.
    const lastUsedAt = new Date();
    rows.tokens.push(
      { id: randomUUID(), userId: id, name: 'fixture', prefix: token.slice(0, 12), tokenHash: sha256(token), lastUsedAt },
      { id: spareId, userId: id, name: 'spare', prefix: 'hub_pat_spar', tokenHash: sha256(newApiToken()), lastUsedAt },
    );
    let membershipGid: string | null = null;
    if (membership) {
      const m = { id: randomUUID(), userId: id, ...membership };
      rows.memberships.push(m);
      membershipGid = toGlobalId('Membership', m.id);
    }
    return { id, email, token, spareTokenGid: toGlobalId('ApiToken', spareId), membershipGid };
  };

  const worlds: World[] = [];
  for (let i = 0; i < count; i++) {
    const org = organization(`World ${i}`);
    const organizationId = org.id;
    const roles = Object.fromEntries(
      ROLES.map((role) => [role, account(role.toLowerCase(), { organizationId, role })]),
    ) as Record<Role, Account>;
    const bystander = account('bystander', { organizationId, role: 'MEMBER' });
    const newcomer = account('newcomer');
    const outsider = account('outsider', { organizationId: organization(`Elsewhere ${i}`).id, role: 'OWNER' });
    const project = { id: randomUUID(), organizationId, slug: `p-${i}`, name: `Project ${i}` };
    rows.projects.push(project);
    const agent = { id: randomUUID(), organizationId, projectId: project.id, name: 'Agent', provider: 'OFFLINE' as const, model: 'offline-small' };
    rows.agents.push(agent);
    const run = { organizationId, projectId: project.id, agentId: agent.id, input: 'Plan the launch', lastSeq: 1 };
    const queuedRun = { id: randomUUID(), ...run, status: 'QUEUED' as const };
    const finishedRun = { id: randomUUID(), ...run, status: 'SUCCEEDED' as const, output: 'Done', finishedAt: new Date() };
    rows.runs.push(queuedRun, finishedRun);
    rows.events.push(
      { runId: queuedRun.id, seq: 1, type: 'STATUS', payload: { status: 'QUEUED' } },
      { runId: finishedRun.id, seq: 1, type: 'STATUS', payload: { status: 'SUCCEEDED' } },
    );
    const budget = { id: randomUUID(), organizationId, period: 'MONTHLY' as const, limitMicros: 25_000_000n, windowStart: new Date() };
    rows.budgets.push(budget);
    const invitation = invite(organizationId, `invited-${randomUUID().slice(0, 12)}@example.test`, 'VIEWER', roles.OWNER);
    const inviting = organization(`Inviting ${i}`);
    const host = account('host', { organizationId: inviting.id, role: 'OWNER' });
    const invitationTokens = Object.fromEntries(
      [...Object.values(roles), bystander, newcomer, outsider].map((a) => [a.id, invite(inviting.id, a.email, 'MEMBER', host).token]),
    );
    worlds.push({
      org: { id: org.id, gid: toGlobalId('Organization', org.id), slug: org.slug },
      roles,
      bystander,
      newcomer,
      outsider,
      project: toGlobalId('Project', project.id),
      agent: toGlobalId('Agent', agent.id),
      queuedRun: toGlobalId('Run', queuedRun.id),
      finishedRun: toGlobalId('Run', finishedRun.id),
      budget: toGlobalId('Budget', budget.id),
      invitation: toGlobalId('Invitation', invitation.id),
      invitationTokens,
    });
  }

  const prisma = app.rt.prisma;
  await prisma.user.createMany({ data: rows.users });
  await prisma.apiToken.createMany({ data: rows.tokens });
  await prisma.organization.createMany({ data: rows.orgs });
  await prisma.membership.createMany({ data: rows.memberships });
  await prisma.project.createMany({ data: rows.projects });
  await prisma.agent.createMany({ data: rows.agents });
  await prisma.agentRun.createMany({ data: rows.runs });
  await prisma.runEvent.createMany({ data: rows.events });
  await prisma.budget.createMany({ data: rows.budgets });
  await prisma.invitation.createMany({ data: rows.invitations });
  return worlds;
}

const actorIn = (w: World, actor: Actor): Account | null =>
  actor === 'anonymous' ? null : actor === 'non-member' ? w.outsider : w.roles[actor];

const SIGN_IN_PASSWORD = 'correct horse battery staple';
let signInEmail: string;

/** Valid input for every mutation, aimed at the case's own world. */
const VALID_INPUT: Record<MutationName, (w: World, actor: Account | null) => Record<string, unknown>> = {
  signUp: () => ({ email: `new-${randomUUID()}@example.test`, password: SIGN_IN_PASSWORD, name: 'New person' }),
  signIn: () => ({ email: signInEmail, password: SIGN_IN_PASSWORD }),
  signOut: () => ({ everywhere: false }),
  createApiToken: () => ({ name: 'ci' }),
  revokeApiToken: (w, actor) => ({ id: (actor ?? w.roles.OWNER).spareTokenGid }),
  createOrganization: () => ({ name: `Fresh ${randomUUID().slice(0, 8)}` }),
  updateOrganization: (w) => ({ id: w.org.gid, name: 'Renamed' }),
  deleteOrganization: (w) => ({ id: w.org.gid, confirmSlug: w.org.slug }),
  inviteMember: (w) => ({ organizationId: w.org.gid, email: w.newcomer.email, role: 'VIEWER' }),
  revokeInvitation: (w) => ({ invitationId: w.invitation }),
  acceptInvitation: (w, actor) => ({ token: w.invitationTokens[(actor ?? w.roles.OWNER).id] }),
  updateMemberRole: (w) => ({ membershipId: w.bystander.membershipGid, role: 'VIEWER' }),
  removeMember: (w) => ({ membershipId: w.bystander.membershipGid }),
  createProject: (w) => ({ organizationId: w.org.gid, name: 'New project' }),
  updateProject: (w) => ({ id: w.project, name: 'Renamed' }),
  archiveProject: (w) => ({ id: w.project }),
  restoreProject: (w) => ({ id: w.project }),
  createAgent: (w) => ({ projectId: w.project, name: 'New agent', provider: 'OFFLINE', model: 'offline-small' }),
  updateAgent: (w) => ({ id: w.agent, name: 'Renamed' }),
  archiveAgent: (w) => ({ id: w.agent }),
  restoreAgent: (w) => ({ id: w.agent }),
  startRun: (w) => ({ agentId: w.agent, input: 'Plan the launch' }),
  cancelRun: (w) => ({ id: w.queuedRun }),
  retryRun: (w) => ({ id: w.finishedRun }),
  setBudget: (w) => ({ organizationId: w.org.gid, period: 'DAILY', limit: '5000000' }),
  removeBudget: (w) => ({ id: w.budget }),
};

const MUTATIONS = Object.keys(MUTATION_PERMISSIONS) as MutationName[];
const CASES = MUTATIONS.flatMap((mutation) => ACTORS.map((actor) => ({ mutation, actor })));
// The special-rule tests below take their worlds from the same batch.
const SPARE_WORLDS = 20;

let app: TestServer;
let worlds: World[];
let nextWorld = CASES.length;
const aFreshWorld = () => worlds[nextWorld++] ?? expect.unreachable('raise SPARE_WORLDS');

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  worlds = await buildWorlds(app, CASES.length + SPARE_WORLDS);
  signInEmail = `signin-${randomUUID().slice(0, 8)}@example.test`;
  const signUp = await gql(app.url, `mutation($input: SignUpInput!) { signUp(input: $input) { __typename } }`, {
    input: { email: signInEmail, password: SIGN_IN_PASSWORD, name: 'Returning person' },
  });
  expect(signUp.data!.signUp.__typename).toBe('AuthPayload');
  // Generous: booting the database and inserting every world takes a while on a busy machine.
}, 180_000);
afterAll(() => app.close());

function send(mutation: string, input: Record<string, unknown>, as: Account | null) {
  return gql(app.url, mutationDocument(mutation), { input }, as ? { token: as.token } : {});
}

async function call(mutation: MutationName, input: Record<string, unknown>, as: Account | null) {
  const res = await send(mutation, input, as);
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data![mutation] as { __typename: string; message?: string };
}

const deniedIn = (w: World) =>
  app.rt.prisma.auditLog.findMany({ where: { organizationId: w.org.id, action: 'access.denied' }, select: { actorId: true, metadata: true } });

const roleOf = async (a: Account, w: World) =>
  (await app.rt.prisma.membership.findUnique({ where: { organizationId_userId: { organizationId: w.org.id, userId: a.id } } }))?.role ?? null;

// ---------------------------------------------------------------------------------------------

describe('the mutation map', () => {
  it('covers every mutation in the schema, so no mutation can skip the permission table', () => {
    const unmapped = Object.keys(mutationFields).filter((m) => !(m in MUTATION_PERMISSIONS));
    expect(unmapped, 'add these to MUTATION_PERMISSIONS in api/src/modules/permissions.ts').toEqual([]);
    const stale = MUTATIONS.filter((m) => !(m in mutationFields));
    expect(stale, 'these mapped mutations no longer exist').toEqual([]);
  });

  it('names only actions of the permission table or account rules', () => {
    for (const rule of Object.values(MUTATION_PERMISSIONS)) {
      expect(isAccountRule(rule) || rule in PERMISSIONS, rule).toBe(true);
    }
  });

  it('has every mutation take a single `input` argument, as the permission cases assume', () => {
    for (const [name, field] of Object.entries(mutationFields)) expect(field.args.map((a) => a.name), name).toEqual(['input']);
  });
});

const article = (actor: Actor) =>
  actor === 'anonymous' ? 'an anonymous caller' : actor === 'non-member' ? 'a signed-in non-member' : `${/^[AO]/.test(actor) ? 'an' : 'a'} ${actor}`;

const ruleText = (rule: Action | AccountRule) =>
  rule === 'anyone' ? 'is open to anyone' : rule === 'signedIn' ? 'needs only a signed-in account' : `needs ${rule} (${PERMISSIONS[rule]} and above)`;

describe.concurrent('every mutation, as every kind of caller, does what the permission table says', () => {
  CASES.forEach(({ mutation, actor }, index) => {
    const rule = MUTATION_PERMISSIONS[mutation];
    const outcome = expectedOutcome(rule, actor);
    const shown = outcome === 'allowed' ? payloadTypename(mutation) : outcome;
    it(`${mutation} ${ruleText(rule)}: ${article(actor)} gets ${shown}`, async () => {
      const w = worlds[index]!;
      const as = actorIn(w, actor);
      const result = await call(mutation, VALID_INPUT[mutation](w, as), as);
      expect(result.__typename, JSON.stringify(result)).toBe(shown);
      const denials = await deniedIn(w);
      if (outcome === 'ForbiddenError') {
        expect(denials).toEqual([{ actorId: as!.id, metadata: { attempted: rule, role: actor } }]);
        // In words a person reads, from the table: "Your role (VIEWER) cannot start runs".
        expect(result.message).toBe(`Your role (${actor}) cannot ${ACTION_WORDS[rule as Action]}`);
      } else {
        expect(denials).toEqual([]);
      }
    });
  });
});

describe.concurrent('an anonymous caller is told to sign in, whatever ids it sends', () => {
  /** The input with every ID field replaced by something that is not an id at all. */
  function withMalformedIds(mutation: MutationName, input: Record<string, unknown>) {
    const type = getNamedType(mutationFields[mutation]!.args[0]!.type);
    if (!isInputObjectType(type)) return input;
    const ids = Object.values(type.getFields()).filter((f) => getNamedType(f.type).name === 'ID');
    return { ...input, ...Object.fromEntries(ids.map((f) => [f.name, 'not-an-id'])) };
  }

  const needSignIn = MUTATIONS.filter((m) => MUTATION_PERMISSIONS[m] !== 'anyone');
  it.each(needSignIn)('%s', async (mutation) => {
    // Inputs only point at a world here; nothing runs, so any world will do.
    const input = withMalformedIds(mutation, VALID_INPUT[mutation](worlds[0]!, null));
    expect((await call(mutation, input, null)).__typename).toBe('UnauthenticatedError');
  });
});

// ---------------------------------------------------------------------------------------------

const VIEWER_CAN = `query($slug: String!, $project: ID!, $agent: ID!, $queued: ID!, $finished: ID!) {
  organization(slug: $slug) {
    viewerRole viewerCanUpdate viewerCanDelete viewerCanManageMembers viewerCanCreateProject viewerCanReadAuditLog
    budgets { viewerCanEdit }
    members(first: 100) { edges { node { role user { email } viewerCanChangeRole viewerCanRemove } } }
  }
  project(id: $project) { viewerCanUpdate viewerCanArchive viewerCanCreateAgent }
  agent(id: $agent) { viewerCanUpdate viewerCanArchive viewerCanRun }
  queued: run(id: $queued) { viewerCanCancel viewerCanRetry }
  finished: run(id: $finished) { viewerCanCancel viewerCanRetry }
}`;

/** Which table action each `viewerCanX` flag reports, by type; `false` where the object's state rules it out for everyone. */
const FLAGS = {
  Organization: {
    viewerCanUpdate: 'organization.update',
    viewerCanDelete: 'organization.delete',
    viewerCanManageMembers: 'member.add',
    viewerCanCreateProject: 'project.create',
    viewerCanReadAuditLog: 'audit.read',
  },
  Project: { viewerCanUpdate: 'project.update', viewerCanArchive: 'project.archive', viewerCanCreateAgent: 'agent.create' },
  Agent: { viewerCanUpdate: 'agent.update', viewerCanArchive: 'agent.archive', viewerCanRun: 'run.start' },
  Budget: { viewerCanEdit: 'budget.set' },
} as const satisfies Record<string, Record<string, Action>>;
const QUEUED_RUN_FLAGS = { viewerCanCancel: 'run.cancel', viewerCanRetry: false } as const;
const FINISHED_RUN_FLAGS = { viewerCanCancel: false, viewerCanRetry: 'run.retry' } as const;
/** Checked below against the table plus the membership rules. */
const MEMBERSHIP_FLAGS = ['viewerCanChangeRole', 'viewerCanRemove'];

const flagsFor = (role: Role, flags: Record<string, Action | false>) =>
  Object.fromEntries(Object.entries(flags).map(([flag, action]) => [flag, action !== false && can(role, action)]));

describe('viewerCan fields report the permission table, so the UI never re-implements it', () => {
  it('covers every viewerCan field in the schema', () => {
    const inSchema = Object.values(schema.getTypeMap())
      .filter(isObjectType)
      .flatMap((type) => Object.keys(type.getFields()).filter((f) => f.startsWith('viewerCan')).map((f) => `${type.name}.${f}`));
    const covered = [
      ...Object.entries(FLAGS).flatMap(([type, flags]) => Object.keys(flags).map((f) => `${type}.${f}`)),
      ...Object.keys(QUEUED_RUN_FLAGS).map((f) => `Run.${f}`),
      ...MEMBERSHIP_FLAGS.map((f) => `Membership.${f}`),
      // member.add plus the role rule; checked in orgs/invitations.test.ts (an ADMIN on an OWNER invitation).
      'Invitation.viewerCanRevoke',
    ];
    expect(inSchema.sort(), 'add new viewerCan fields to FLAGS and to the query below').toEqual(covered.sort());
  });

  let w: World;
  beforeAll(async () => {
    w = aFreshWorld();
    // A second ADMIN, so an ADMIN's flags are seen on a peer as well as on themselves.
    await app.rt.prisma.membership.create({ data: { organizationId: w.org.id, userId: w.newcomer.id, role: 'ADMIN' } });
  });

  it.each(ROLES)('as %s', async (role) => {
    const res = await gql(
      app.url,
      VIEWER_CAN,
      { slug: w.org.slug, project: w.project, agent: w.agent, queued: w.queuedRun, finished: w.finishedRun },
      { token: w.roles[role].token },
    );
    expect(res.errors).toBeUndefined();
    const { organization, project, agent, queued, finished } = res.data!;
    const { members, budgets, viewerRole, ...orgFlags } = organization;
    expect(viewerRole).toBe(role);
    expect(orgFlags).toEqual(flagsFor(role, FLAGS.Organization));
    expect(budgets).toEqual([flagsFor(role, FLAGS.Budget)]);
    expect(project).toEqual(flagsFor(role, FLAGS.Project));
    expect(agent).toEqual(flagsFor(role, FLAGS.Agent));
    expect(queued).toEqual(flagsFor(role, QUEUED_RUN_FLAGS));
    expect(finished).toEqual(flagsFor(role, FINISHED_RUN_FLAGS));

    // Membership flags add the special rules: nobody touches a role above their own, anyone may
    // leave, and the only OWNER (this world has one) can neither leave nor step down.
    const me = w.roles[role].email;
    type MemberFlags = { role: Role; user: { email: string }; viewerCanChangeRole: boolean; viewerCanRemove: boolean };
    const nodes = (members.edges as { node: MemberFlags }[]).map((e) => e.node);
    expect(nodes).toHaveLength(6);
    for (const node of nodes) {
      const self = node.user.email === me;
      const lastOwner = node.role === 'OWNER';
      const notAbove = ROLE_RANK[node.role] <= ROLE_RANK[role];
      expect({ member: node.user.email, changeRole: node.viewerCanChangeRole, remove: node.viewerCanRemove }).toEqual({
        member: node.user.email,
        changeRole: !lastOwner && can(role, 'member.updateRole') && notAbove,
        remove: !lastOwner && (self || (can(role, 'member.remove') && notAbove)),
      });
    }
  });

  it('with two owners, each owner may leave or step down, and says so', async () => {
    const w = aFreshWorld();
    const { OWNER: first, ADMIN: second } = w.roles;
    await call('updateMemberRole', { membershipId: second.membershipGid, role: 'OWNER' }, first);
    const res = await gql(
      app.url,
      `query($slug: String!) { organization(slug: $slug) { members { edges { node { role user { email } viewerCanChangeRole viewerCanRemove } } } } }`,
      { slug: w.org.slug },
      { token: first.token },
    );
    const owners = (res.data!.organization.members.edges as { node: { role: Role } }[]).map((e) => e.node).filter((n) => n.role === 'OWNER');
    expect(owners).toEqual([
      expect.objectContaining({ viewerCanChangeRole: true, viewerCanRemove: true }),
      expect.objectContaining({ viewerCanChangeRole: true, viewerCanRemove: true }),
    ]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('nobody raises anyone above their own role', () => {
  it('an ADMIN cannot invite someone as OWNER', async () => {
    const w = aFreshWorld();
    const admin = w.roles.ADMIN;
    const res = await call('inviteMember', { organizationId: w.org.gid, email: w.newcomer.email, role: 'OWNER' }, admin);
    expect(res.__typename).toBe('ForbiddenError');
    expect(await app.rt.prisma.invitation.count({ where: { organizationId: w.org.id, email: w.newcomer.email } })).toBe(0);
    expect(await deniedIn(w)).toEqual([{ actorId: admin.id, metadata: { attempted: 'member.add', role: 'ADMIN', grant: 'OWNER' } }]);
  });

  it('an ADMIN cannot promote a member, nor themselves, to OWNER', async () => {
    const w = aFreshWorld();
    const admin = w.roles.ADMIN;
    expect((await call('updateMemberRole', { membershipId: w.bystander.membershipGid, role: 'OWNER' }, admin)).__typename).toBe('ForbiddenError');
    expect((await call('updateMemberRole', { membershipId: admin.membershipGid, role: 'OWNER' }, admin)).__typename).toBe('ForbiddenError');
    expect(await roleOf(w.bystander, w)).toBe('MEMBER');
    expect(await roleOf(admin, w)).toBe('ADMIN');
    expect(await deniedIn(w)).toHaveLength(2);
  });

  it('an ADMIN cannot change or remove an OWNER', async () => {
    const w = aFreshWorld();
    const { ADMIN: admin, OWNER: owner } = w.roles;
    expect((await call('updateMemberRole', { membershipId: owner.membershipGid, role: 'VIEWER' }, admin)).__typename).toBe('ForbiddenError');
    expect((await call('removeMember', { membershipId: owner.membershipGid }, admin)).__typename).toBe('ForbiddenError');
    expect(await roleOf(owner, w)).toBe('OWNER');
    expect((await deniedIn(w)).map((d) => d.metadata)).toEqual(
      expect.arrayContaining([
        { attempted: 'member.updateRole', role: 'ADMIN', from: 'OWNER', to: 'VIEWER' },
        { attempted: 'member.remove', role: 'ADMIN', targetRole: 'OWNER' },
      ]),
    );
  });

  it('an ADMIN may grant ADMIN, and an OWNER may grant OWNER', async () => {
    const w = aFreshWorld();
    const invited = await gql(
      app.url,
      `mutation($input: InviteMemberInput!) { inviteMember(input: $input) { __typename ... on InviteMemberPayload { token } } }`,
      { input: { organizationId: w.org.gid, email: w.newcomer.email, role: 'ADMIN' } },
      { token: w.roles.ADMIN.token },
    );
    expect(invited.data!.inviteMember.__typename).toBe('InviteMemberPayload');
    const { token } = invited.data!.inviteMember;
    expect((await call('acceptInvitation', { token }, w.newcomer)).__typename).toBe('AcceptInvitationPayload');
    const promoted = await call('updateMemberRole', { membershipId: w.bystander.membershipGid, role: 'OWNER' }, w.roles.OWNER);
    expect(promoted.__typename).toBe('UpdateMemberRolePayload');
    expect([await roleOf(w.newcomer, w), await roleOf(w.bystander, w)]).toEqual(['ADMIN', 'OWNER']);
  });
});

describe('an organization always keeps at least one OWNER', () => {
  it('the last OWNER can neither step down nor leave', async () => {
    const w = aFreshWorld();
    const owner = w.roles.OWNER;
    const demoted = await call('updateMemberRole', { membershipId: owner.membershipGid, role: 'ADMIN' }, owner);
    expect(demoted).toEqual({ __typename: 'ValidationError', message: 'role: An organization must keep at least one OWNER' });
    const left = await call('removeMember', { membershipId: owner.membershipGid }, owner);
    expect(left).toEqual({ __typename: 'ValidationError', message: 'membershipId: An organization must keep at least one OWNER' });
    expect(await roleOf(owner, w)).toBe('OWNER');
  });

  it('with two owners one may leave, after which the other is the last', async () => {
    const w = aFreshWorld();
    const { OWNER: first, ADMIN: second } = w.roles;
    await call('updateMemberRole', { membershipId: second.membershipGid, role: 'OWNER' }, first);
    expect((await call('removeMember', { membershipId: first.membershipGid }, first)).__typename).toBe('RemoveMemberPayload');
    expect(await roleOf(first, w)).toBeNull();
    expect((await call('removeMember', { membershipId: second.membershipGid }, second)).__typename).toBe('ValidationError');
    expect(await roleOf(second, w)).toBe('OWNER');
  });

  it('when two owners leave at the same moment, exactly one succeeds', async () => {
    const w = aFreshWorld();
    const { OWNER: first, ADMIN: second } = w.roles;
    await call('updateMemberRole', { membershipId: second.membershipGid, role: 'OWNER' }, first);
    const results = await Promise.all(
      [first, second].map(async (o) => (await call('removeMember', { membershipId: o.membershipGid }, o)).__typename),
    );
    expect(results.sort()).toEqual(['RemoveMemberPayload', 'ValidationError']);
    expect(await app.rt.prisma.membership.count({ where: { organizationId: w.org.id, role: 'OWNER' } })).toBe(1);
  });
});

describe('anyone may leave an organization', () => {
  it.each(['VIEWER', 'MEMBER', 'ADMIN'] as const)('as a %s: leaving works, and the organization is then invisible to them', async (role) => {
    const w = aFreshWorld();
    const leaver = w.roles[role];
    expect((await call('removeMember', { membershipId: leaver.membershipGid }, leaver)).__typename).toBe('RemoveMemberPayload');
    expect(await roleOf(leaver, w)).toBeNull();
    const after = await gql(app.url, `query($slug: String!) { organization(slug: $slug) { id } }`, { slug: w.org.slug }, { token: leaver.token });
    expect(after.data!.organization).toBeNull();
    const left = await app.rt.prisma.auditLog.count({ where: { organizationId: w.org.id, actorId: leaver.id, action: 'member.left' } });
    expect(left).toBe(1);
  });
});

describe('deleting an organization needs its slug typed again', () => {
  it('refuses a missing or wrong slug and deletes nothing, then deletes with the right one', async () => {
    const w = aFreshWorld();
    const owner = w.roles.OWNER;
    const DELETE = `mutation($input: DeleteOrganizationInput!) { deleteOrganization(input: $input) {
      __typename ... on ValidationError { issues { path } } } }`;
    for (const confirmSlug of ['', 'something-else', w.org.slug.toUpperCase()]) {
      const res = await gql(app.url, DELETE, { input: { id: w.org.gid, confirmSlug } }, { token: owner.token });
      expect(res.data!.deleteOrganization, confirmSlug).toEqual({ __typename: 'ValidationError', issues: [{ path: ['confirmSlug'] }] });
    }
    expect(await app.rt.prisma.organization.count({ where: { id: w.org.id } })).toBe(1);

    expect((await call('deleteOrganization', { id: w.org.gid, confirmSlug: w.org.slug }, owner)).__typename).toBe('DeleteOrganizationPayload');
    expect(await app.rt.prisma.organization.count({ where: { id: w.org.id } })).toBe(0);
  });
});

describe('docs/permissions.md', () => {
  it('is the table as generated from permissions.ts (run `node --import tsx scripts/permissions-doc.ts`)', () => {
    expect(readFileSync(docPath, 'utf8')).toBe(renderPermissionsDoc());
  });
});
