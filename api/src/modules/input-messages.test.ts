import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestUser } from '../../test/factories.js';
import { gql, startTestServer, type TestServer } from '../../test/harness.js';

// The first file on a test worker boots the shared database: slow on a busy machine, so allow it time.
const BOOT_TIMEOUT = 180_000;
let app: TestServer;
let owner: TestUser;
let orgGid = '';
let agentGid = '';
let projectGid = '';

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  const org = await given(app).anOrganization();
  owner = org.owner;
  orgGid = org.gid;
  const project = await given(app).aProject(org);
  projectGid = project.gid;
  agentGid = (await given(app).anOfflineAgent(project)).gid;
}, BOOT_TIMEOUT);
afterAll(() => app?.close());

type Issue = { path: string[]; message: string };
const ISSUES = `... on ValidationError { issues { path message } }`;

/** The issues of a mutation that must fail validation; none may be zod's own wording. */
function issuesOf(res: { data?: Record<string, any> }, field: string): Issue[] {
  expect(res.data?.[field]?.__typename, JSON.stringify(res.data ?? res)).toBe('ValidationError');
  const issues: Issue[] = res.data![field].issues;
  for (const { message } of issues) expect(message).not.toMatch(/^(Too (big|small)|Invalid)/);
  return issues;
}

describe('validation messages a person reads', () => {
  it('asks for the password on sign-in, and bounds sign-up fields in words', async () => {
    const signIn = `mutation($input: SignInInput!) { signIn(input: $input) { __typename ${ISSUES} } }`;
    expect(issuesOf(await gql(app.url, signIn, { input: { email: 'ada@example.test', password: '' } }), 'signIn')).toEqual([
      { path: ['password'], message: 'Enter your password' },
    ]);
    expect(issuesOf(await gql(app.url, signIn, { input: { email: 'ada@example.test', password: 'p'.repeat(201) } }), 'signIn')).toEqual([
      { path: ['password'], message: 'Use at most 200 characters' },
    ]);

    const signUp = `mutation($input: SignUpInput!) { signUp(input: $input) { __typename ${ISSUES} } }`;
    const long = await gql(app.url, signUp, { input: { email: `${'e'.repeat(250)}@example.test`, password: 'correct horse battery', name: 'n'.repeat(101) } });
    expect(issuesOf(long, 'signUp')).toEqual([
      { path: ['email'], message: 'Keep the email address to 254 characters' },
      { path: ['name'], message: 'Keep the name to 100 characters' },
    ]);
  });

  it('keeps an API token name to 100 characters', async () => {
    const create = `mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { __typename ${ISSUES} } }`;
    expect(issuesOf(await owner.gql(create, { input: { name: 't'.repeat(101) } }), 'createApiToken')).toEqual([
      { path: ['name'], message: 'Keep the name to 100 characters' },
    ]);
    expect((await owner.gql(create, { input: { name: 't'.repeat(100) } })).data!.createApiToken.__typename).toBe('CreateApiTokenPayload');
  });

  it('bounds a project name and description in words', async () => {
    const create = `mutation($input: CreateProjectInput!) { createProject(input: $input) { __typename ${ISSUES} } }`;
    const res = await owner.gql(create, { input: { organizationId: orgGid, name: 'n'.repeat(101), slug: 'long-project', description: 'd'.repeat(2001) } });
    expect(issuesOf(res, 'createProject')).toEqual([
      { path: ['name'], message: 'Keep the name to 100 characters' },
      { path: ['description'], message: 'Keep the description to 2,000 characters' },
    ]);
  });

  it('bounds a run’s idempotency key in words', async () => {
    const start = `mutation($input: StartRunInput!) { startRun(input: $input) { __typename ${ISSUES} } }`;
    const res = await owner.gql(start, { input: { agentId: agentGid, input: 'Plan the release', idempotencyKey: 'k'.repeat(201) } });
    expect(issuesOf(res, 'startRun')).toEqual([{ path: ['idempotencyKey'], message: 'Keep the idempotency key to 200 characters' }]);
  });

  it('bounds a budget limit and an invitation link in words', async () => {
    const set = `mutation($input: SetBudgetInput!) { setBudget(input: $input) { __typename ${ISSUES} } }`;
    const budget = await owner.gql(set, { input: { organizationId: orgGid, period: 'DAILY', limit: '1000000000000001' } });
    expect(issuesOf(budget, 'setBudget')).toEqual([{ path: ['limitMicros'], message: 'The limit can be at most $1,000,000,000' }]);
    const accept = `mutation($token: String!) { acceptInvitation(input: { token: $token }) { __typename ${ISSUES} } }`;
    expect(issuesOf(await owner.gql(accept, { token: 'x'.repeat(201) }), 'acceptInvitation')).toEqual([
      { path: [], message: 'That is not an invitation link: it is too long' },
    ]);
  });

  it('refuses text holding a NUL character or a lone surrogate, which the database cannot store as sent, on its field, for every input', async () => {
    const nul = 'Remove the NUL characters (U+0000): text cannot hold them';
    const agentsBefore = await app.rt.prisma.agent.count();
    const createAgent = `mutation($input: CreateAgentInput!) { createAgent(input: $input) { __typename ${ISSUES} } }`;
    const agent = { projectId: projectGid, provider: 'OFFLINE', model: 'offline-small', name: 'a\u0000b', systemPrompt: 'be\u0000brief', description: 'ok' };
    expect(issuesOf(await owner.gql(createAgent, { input: agent }), 'createAgent')).toEqual([
      { path: ['name'], message: nul },
      { path: ['systemPrompt'], message: nul },
    ]);
    // With another issue on the same field, that one is reported and the NUL is not repeated.
    expect(issuesOf(await owner.gql(createAgent, { input: { ...agent, name: '\u0000'.repeat(101), systemPrompt: null } }), 'createAgent')).toEqual([
      { path: ['name'], message: expect.not.stringContaining('NUL') },
    ]);
    expect(await app.rt.prisma.agent.count()).toBe(agentsBefore);

    const signUp = `mutation($input: SignUpInput!) { signUp(input: $input) { __typename ${ISSUES} } }`;
    expect(issuesOf(await gql(app.url, signUp, { input: { email: 'nul@example.test', password: 'correct horse battery', name: 'N\u0000' } }), 'signUp')).toEqual([
      { path: ['name'], message: nul },
    ]);
    expect(await app.rt.prisma.user.count({ where: { email: 'nul@example.test' } })).toBe(0);

    // Half an emoji (a lone surrogate, which JSON can carry) would be stored as U+FFFD: refused as well, also
    // in a run's input, so what is stored is always what was sent.
    const broken = 'Remove the broken characters (a lone UTF-16 surrogate, e.g. half an emoji): text must be valid Unicode';
    expect(issuesOf(await owner.gql(createAgent, { input: { ...agent, name: 'a\ud83db', systemPrompt: 'whole \ud83d\ude00 is fine' } }), 'createAgent')).toEqual([
      { path: ['name'], message: broken },
    ]);
    expect(await app.rt.prisma.agent.count()).toBe(agentsBefore);
    const made = await owner.gql(createAgent, { input: { ...agent, name: 'Smiles \ud83d\ude00', systemPrompt: null } });
    expect(made.data!.createAgent.__typename).toBe('CreateAgentPayload');
    expect(await app.rt.prisma.agent.count({ where: { name: 'Smiles \u{1F600}' } })).toBe(1);

    // Any other argument that would reach the database, e.g. a lookup by slug, is refused as input too.
    const lookup = await owner.gql('query($slug: String!) { organization(slug: $slug) { id } }', { slug: 'a\u0000' });
    expect(lookup.errors).toMatchObject([{ message: nul, path: ['organization'], extensions: { code: 'VALIDATION_FAILED' } }]);
  });
});
