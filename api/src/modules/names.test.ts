import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestProject, type TestUser } from '../../test/factories.js';
import { gql, startTestServer, type TestServer } from '../../test/harness.js';
import { hasVisibleText } from '../lib/validate.js';

// The first file on a test worker boots the shared database: slow on a busy machine, so allow it time.
const BOOT_TIMEOUT = 180_000;
let app: TestServer;
let owner: TestUser;
let project: TestProject;
let agentGid = '';

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  const org = await given(app).anOrganization();
  owner = org.owner;
  project = await given(app).aProject(org);
  agentGid = (await given(app).anOfflineAgent(project)).gid;
}, BOOT_TIMEOUT);
afterAll(() => app?.close());

/** Names a person cannot see: each alone, and a mix of them. */
const INVISIBLE: Record<string, string> = {
  'zero-width space': '\u200B',
  'zero-width non-joiner': '\u200C',
  'zero-width joiner': '\u200D',
  'word joiner': '\u2060',
  'byte order mark': '\uFEFF',
  'soft hyphen': '\u00AD',
  'no-break space': '\u00A0',
  'ideographic space': '\u3000',
  'em space': '\u2003',
  'line separator': '\u2028',
  'Hangul filler': '\u3164',
  'variation selector': '\uFE0F',
  'Braille blank': '\u2800',
  mix: ' \u200B\u00AD\u200D\u2060\uFEFF\u3000 ',
};
/** Names that show something, some with a joiner or a zero-width character inside. */
const VISIBLE = ['👩‍💻 Dev team', '👨‍👩‍👧', 'Ops\u200BBot', 'क्‍ष', 'A', 'x\u00AD'];

const ISSUES = `__typename ... on ValidationError { issues { path message } }`;
const MUTATIONS = {
  createOrganization: `mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { ${ISSUES} } }`,
  updateOrganization: `mutation($input: UpdateOrganizationInput!) { updateOrganization(input: $input) { ${ISSUES} } }`,
  createProject: `mutation($input: CreateProjectInput!) { createProject(input: $input) { ${ISSUES} } }`,
  updateProject: `mutation($input: UpdateProjectInput!) { updateProject(input: $input) { ${ISSUES} } }`,
  createAgent: `mutation($input: CreateAgentInput!) { createAgent(input: $input) { ${ISSUES} } }`,
  updateAgent: `mutation($input: UpdateAgentInput!) { updateAgent(input: $input) { ${ISSUES} } }`,
  createApiToken: `mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { ${ISSUES} } }`,
  signUp: `mutation($input: SignUpInput!) { signUp(input: $input) { ${ISSUES} } }`,
} as const;

/** Each mutation that takes a name, with the rest of a valid input, and its words for a blank name. */
const cases = (): [keyof typeof MUTATIONS, (name: string) => Record<string, unknown>, string][] => [
  ['createOrganization', (name) => ({ name }), 'Enter a name'],
  ['updateOrganization', (name) => ({ id: project.org.gid, name }), 'Enter a name'],
  ['createProject', (name) => ({ organizationId: project.org.gid, name }), 'Enter a name'],
  ['updateProject', (name) => ({ id: project.gid, name }), 'Enter a name'],
  ['createAgent', (name) => ({ projectId: project.gid, name, provider: 'OFFLINE', model: 'offline-small' }), 'Enter a name'],
  ['updateAgent', (name) => ({ id: agentGid, name }), 'Enter a name'],
  ['createApiToken', (name) => ({ name }), 'Name the token'],
  ['signUp', (name) => ({ email: `n-${Math.random().toString(36).slice(2)}@example.test`, password: 'correct horse battery', name }), 'Enter your name'],
];

const send = (mutation: keyof typeof MUTATIONS, input: Record<string, unknown>) =>
  mutation === 'signUp' ? gql(app.url, MUTATIONS.signUp, { input }) : owner.gql(MUTATIONS[mutation], { input });

describe('a name made only of characters nobody can see', () => {
  it('is refused by every mutation that takes a name, in the words of a blank one, and nothing is written', async () => {
    const before = await app.rt.prisma.auditLog.count();
    for (const [mutation, input, blank] of cases()) {
      for (const [what, name] of Object.entries(INVISIBLE)) {
        const res = await send(mutation, input(name));
        expect(res.data?.[mutation], `${mutation}: ${what}`).toEqual({ __typename: 'ValidationError', issues: [{ path: ['name'], message: blank }] });
      }
    }
    expect(await app.rt.prisma.auditLog.count()).toBe(before);
  });

  it('is told apart from one that shows something, a joined emoji sequence included', async () => {
    for (const name of Object.values(INVISIBLE)) expect(hasVisibleText(name), JSON.stringify(name)).toBe(false);
    for (const name of VISIBLE) expect(hasVisibleText(name), name).toBe(true);
    for (const [mutation, input] of cases()) {
      const res = await send(mutation, input('👩‍💻 Dev team'));
      expect(res.data?.[mutation]?.__typename, mutation).not.toBe('ValidationError');
    }
  });
});
