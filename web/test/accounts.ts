import { expect } from 'vitest';
import { gql, type TestServer } from '../../api/test/harness.js';
import { openBrowser, type BrowserSession, type OpenOptions } from './browser.js';
import { CREATE_AGENT, CREATE_ORG, CREATE_PROJECT, SIGN_UP, START_RUN } from './operations.js';

export const PASSWORD = 'correct horse battery staple';

/** Someone who signed up: their session cookie, and the API as they call it. */
export interface Account {
  email: string;
  /** The `hub_session` cookie's value. */
  session: string;
  /** `hub_session=…`, for requests made as this person. */
  cookie: string;
  /** Runs an operation as this person and returns its data; any GraphQL error fails the test. */
  api(query: string, variables?: Record<string, unknown>): Promise<Record<string, any>>;
}

/** Signs up over HTTP, as the sign-up page does: the API answers with the httpOnly session cookie. */
export async function signUp(server: TestServer, name: string, email = `${name.split(' ')[0]!.toLowerCase()}-${Date.now()}@example.test`): Promise<Account> {
  const result = await gql(server.url, SIGN_UP, { input: { email, name, password: PASSWORD } });
  expect(result.data?.signUp.__typename).toBe('AuthPayload');
  const session = /hub_session=([^;]+)/.exec(result.headers.get('set-cookie') ?? '')?.[1];
  expect(session).toBeTruthy();
  const cookie = `hub_session=${session}`;
  return {
    email,
    session: session!,
    cookie,
    async api(query, variables) {
      const answer = await gql(server.url, query, variables, { cookie });
      expect(answer.errors).toBeUndefined();
      return answer.data!;
    },
  };
}

/** Signs the browser in as someone, with their session cookie (as the sign-in page would leave it). */
export async function signIn(browser: BrowserSession, server: TestServer, session: string): Promise<void> {
  await browser.page.context().addCookies([{ name: 'hub_session', value: session, url: server.url, httpOnly: true }]);
}

/**
 * A browser on the server's UI, signed in with `session`, whose steps fail after 10 s (well before a test's
 * own timeout, on the step that is stuck).
 */
export async function signedInBrowser(server: TestServer, session: string, options: Omit<OpenOptions, 'baseURL'> = {}): Promise<BrowserSession> {
  const browser = await openBrowser({ baseURL: server.url, ...options });
  browser.page.setDefaultTimeout(10_000);
  await signIn(browser, server, session);
  return browser;
}

/** Names (and extra input) of what `aTeamWithAnAgent` creates. */
export interface TeamNames {
  person: string;
  org: string;
  project: string;
  agent: string;
  /** More `createOrganization` input, e.g. `{ timeZone: 'UTC' }`. */
  orgInput?: Record<string, unknown>;
  /** More `createAgent` input; the offline provider's small model unless it says otherwise. */
  agentInput?: Record<string, unknown>;
}

/** Someone who signed up, owning an organization with a project and an agent in it, all made through the API. */
export async function aTeamWithAnAgent(
  server: TestServer,
  names: TeamNames,
): Promise<{ account: Account; organizationId: string; projectId: string; agentId: string }> {
  const account = await signUp(server, names.person);
  const org = await account.api(CREATE_ORG, { input: { name: names.org, ...names.orgInput } });
  const organizationId = org.createOrganization.organization.id as string;
  const project = await account.api(CREATE_PROJECT, { input: { organizationId, name: names.project } });
  const projectId = project.createProject.project.id as string;
  const agent = await account.api(CREATE_AGENT, {
    input: { projectId, name: names.agent, provider: 'OFFLINE', model: 'offline-small', ...names.agentInput },
  });
  expect(agent.createAgent.__typename).toBe('CreateAgentPayload');
  return { account, organizationId, projectId, agentId: agent.createAgent.agent.id };
}

const RUN_STATUS = /* GraphQL */ `
  query ($id: ID!) { run(id: $id) { status } }
`;

/** Starts a run of `agentId` as `account` and waits until it has SUCCEEDED; returns its id. */
export async function finishedRun(account: Account, agentId: string, input: string): Promise<string> {
  const started = await account.api(START_RUN, { input: { agentId, input } });
  const id = started.startRun.run.id as string;
  await expect.poll(async () => (await account.api(RUN_STATUS, { id })).run.status, { timeout: 20_000 }).toBe('SUCCEEDED');
  return id;
}
