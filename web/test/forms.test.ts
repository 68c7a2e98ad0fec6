import { CombinedError } from '@urql/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_LIMITS, outputLimitOf } from '../../api/src/modules/agents/agents.service.js';
import { OFFLINE_MODELS } from '../../api/src/providers/offline.js';
import { gql, startTestServer, type TestServer } from '../../api/test/harness.js';
import { checkRange, fieldLabel, formErrors, invalidVariable } from '../src/lib/forms.js';
import { type Account, signedInBrowser, signUp } from './accounts.js';
import { anotherContext, type BrowserSession } from './browser.js';
import { CREATE_ORG, CREATE_PROJECT } from './operations.js';

describe('formErrors', () => {
  it('puts a conflict about one of the form\'s fields next to it, and any other conflict on the form', () => {
    const taken = { __typename: 'ConflictError', message: 'This person is already a member', field: 'email' };
    expect(formErrors(taken, undefined, ['email', 'role'])).toEqual({ fields: { email: 'This person is already a member' } });
    const full = { __typename: 'ConflictError', message: 'This organization already has 100 pending invitations', field: null };
    expect(formErrors(full, undefined, ['email', 'role'])).toEqual({ form: full.message, fields: {} });
    // A field this form does not show: the whole form, so the message is not lost.
    expect(formErrors({ ...taken, field: 'slug' }, undefined, ['email'])).toEqual({ form: taken.message, fields: {} });
  });

  it('puts validation issues next to their fields and the rest on the form', () => {
    const failure = {
      __typename: 'ValidationError',
      message: 'invalid',
      issues: [
        { path: ['email'], message: 'Enter a valid email address' },
        { path: ['other'], message: 'Something else' },
      ],
    };
    expect(formErrors(failure, undefined, ['email'])).toEqual({ form: 'Something else', fields: { email: 'Enter a valid email address' } });
  });
});

// What graphql-js answers when a variable cannot be coerced, word for word (from the walkthrough).
const INT_OVERFLOW =
  'Variable "$input" got invalid value 99999999999 at "input.maxOutputTokens"; Int cannot represent non 32-bit signed integer value: 99999999999';
const MONEY_OVERFLOW =
  'Variable "$input" got invalid value "99999999999999999999999000000" at "input.limit"; Expected type "Money". Money must be an integer number of micro-dollars, as a string such as "2500000"';
const graphQLError = (...messages: string[]) => new CombinedError({ graphQLErrors: messages.map((message) => ({ message })) });

describe('formErrors with values the API could not read', () => {
  it('puts a variable-coercion error next to its field, in words, instead of the raw text', () => {
    expect(formErrors(null, graphQLError(INT_OVERFLOW), ['name', 'maxOutputTokens'])).toEqual({
      fields: { maxOutputTokens: 'Max output tokens is too large' },
    });
    expect(formErrors(null, graphQLError(MONEY_OVERFLOW), ['limit', 'limitMicros'])).toEqual({ fields: { limit: 'Limit is too large' } });
  });

  it('names the field on the form when the form does not show it, and never repeats the raw message', () => {
    const errors = formErrors(null, graphQLError(INT_OVERFLOW), ['name']);
    expect(errors).toEqual({ form: 'Max output tokens is too large.', fields: {} });
    expect(JSON.stringify(errors)).not.toContain('Variable "$input"');
  });

  it('keeps other GraphQL errors and unreachable APIs as they were', () => {
    expect(formErrors(null, graphQLError('Query is too expensive'), ['name'])).toEqual({ form: 'Query is too expensive', fields: {} });
    expect(formErrors(null, new CombinedError({ networkError: new Error('offline') }))).toEqual({
      form: 'Can’t reach the API. Check your connection and try again.',
      fields: {},
    });
  });
});

describe('invalidVariable', () => {
  it('reads the field path and why the value was refused', () => {
    expect(invalidVariable(INT_OVERFLOW)).toEqual({ field: 'maxOutputTokens', message: 'Max output tokens is too large' });
    expect(invalidVariable(INT_OVERFLOW.replaceAll('99999999999', '-99999999999'))).toEqual({ field: 'maxOutputTokens', message: 'Max output tokens is too small' });
    expect(invalidVariable('Variable "$input" got invalid value 1.5 at "input.maxOutputTokens"; Int cannot represent non-integer value: 1.5')).toEqual({
      field: 'maxOutputTokens',
      message: 'Max output tokens must be a whole number',
    });
    expect(invalidVariable('Variable "$input" got invalid value "x" at "input.temperature"; Float cannot represent non numeric value: "x"')).toEqual({
      field: 'temperature',
      message: 'Temperature must be a number',
    });
    expect(invalidVariable('Variable "$input" got invalid value "soon" at "input.expiresAt"; Expected type "DateTime". DateTime must be an ISO 8601 string')).toEqual({
      field: 'expiresAt',
      message: 'Expires at must be a date and time',
    });
    expect(invalidVariable('Variable "$input" got invalid value 7 at "input.fallbackChain[1].model"; String cannot represent a non string value: 7')).toEqual({
      field: 'fallbackChain.1.model',
      message: 'Model is not valid',
    });
    expect(invalidVariable('Variable "$first" got invalid value 99999999999; Int cannot represent non 32-bit signed integer value: 99999999999')).toEqual({
      field: 'first',
      message: 'First is too large',
    });
  });

  it('leaves every other message alone', () => {
    expect(invalidVariable('Query is too expensive')).toBeUndefined();
    expect(invalidVariable('Something went wrong')).toBeUndefined();
  });

  it('spells field names as words', () => {
    expect(fieldLabel('maxOutputTokens')).toBe('Max output tokens');
    expect(fieldLabel('limit')).toBe('Limit');
    expect(fieldLabel('time_zone')).toBe('Time zone');
  });
});

describe('checkRange', () => {
  const temperature = { label: 'Temperature', min: 0, max: 2 };
  const tokens = { label: 'Max output tokens', min: 1, max: 200_000, integer: true };

  it('names the field and the allowed range, as the API does', () => {
    expect(checkRange(2.5, temperature)).toBe('Temperature must be between 0 and 2');
    expect(checkRange(-0.1, temperature)).toBe('Temperature must be between 0 and 2');
    expect(checkRange(99_999_999_999, tokens)).toBe('Max output tokens must be between 1 and 200,000');
    expect(checkRange(0, tokens)).toBe('Max output tokens must be between 1 and 200,000');
    expect(checkRange(Number.POSITIVE_INFINITY, tokens)).toBe('Max output tokens must be between 1 and 200,000');
    expect(checkRange(10.5, tokens)).toBe('Max output tokens must be a whole number');
  });

  it('lets values in range, and empty optional fields, through', () => {
    for (const value of [0, 0.7, 2, null, undefined]) expect(checkRange(value, temperature)).toBeUndefined();
    for (const value of [1, 1024, 200_000]) expect(checkRange(value, tokens)).toBeUndefined();
  });
});

const CREATE_AGENT = /* GraphQL */ `
  mutation ($input: CreateAgentInput!) {
    createAgent(input: $input) { __typename ... on CreateAgentPayload { agent { id } } ... on Error { message } }
  }
`;
const UPDATE_AGENT = /* GraphQL */ `
  mutation ($input: UpdateAgentInput!) { updateAgent(input: $input) { __typename } }
`;

describe('forms in the browser: limits checked before sending, and in words', { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let account: Account;
  let agentId = '';
  /** AgentsPageUpdate requests the page has sent so far. */
  let updatesSent = 0;

  beforeAll(async () => {
    server = await startTestServer({ web: true, worker: false });
    account = await signUp(server, 'Fiona Forms');
    const org = await account.api(CREATE_ORG, { input: { name: 'Form Works', timeZone: 'UTC' } });
    const project = await account.api(CREATE_PROJECT, { input: { organizationId: org.createOrganization.organization.id, name: 'Playground' } });
    const agent = await account.api(CREATE_AGENT, {
      input: { projectId: project.createProject.project.id, name: 'Planner', provider: 'OFFLINE', model: 'offline-small' },
    });
    agentId = agent.createAgent.agent.id;
    browser = await signedInBrowser(server, account.session);
    browser.page.on('request', (request) => {
      if (request.url().endsWith('/graphql') && request.postData()?.includes('AgentsPageUpdate')) updatesSent++;
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const form = () => browser.page.getByRole('main').locator('form').filter({ has: browser.page.getByRole('button', { name: 'Save changes' }) });

  it('refuses out-of-range agent numbers next to their fields, naming the range, without a request', async () => {
    const { page } = browser;
    await page.goto(`/agents/${encodeURIComponent(agentId)}`);
    const tokens = form().getByLabel('Max output tokens');
    const temperature = form().getByLabel('Temperature');
    await tokens.waitFor();
    // The limits the API enforces, on the inputs themselves.
    // The form's limits are the API's (a copy in web/src/routes/agents/limits.ts, kept in step by this test).
    expect(await tokens.getAttribute('min')).toBe(String(AGENT_LIMITS.maxOutputTokens.min));
    // At most what the agent's model writes (offline-small: 8,192), the API's limit for it.
    expect(await tokens.getAttribute('max')).toBe(String(outputLimitOf(OFFLINE_MODELS.find((m) => m.id === 'offline-small'))));
    expect(await temperature.getAttribute('min')).toBe(String(AGENT_LIMITS.temperature.min));
    expect(await temperature.getAttribute('max')).toBe(String(AGENT_LIMITS.temperature.max));
    expect(await form().getByLabel('System prompt').getAttribute('maxlength')).toBe(String(AGENT_LIMITS.systemPrompt));

    // The walkthrough's value: it used to come back as `Variable "$input" got invalid value 99999999999 …`.
    await tokens.fill('99999999999');
    await temperature.fill('2.5');
    await form().getByRole('button', { name: 'Save changes' }).click();
    await form().getByText('Max output tokens must be between 1 and 200,000').waitFor();
    await form().getByText('Temperature must be between 0 and 2').waitFor();
    expect(await tokens.getAttribute('aria-invalid')).toBe('true');
    expect(await temperature.getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByRole('main').getByRole('alert').count()).toBe(0);
    expect(await page.getByRole('main').textContent()).not.toContain('Variable "$input"');
    expect(updatesSent).toBe(0);

    await tokens.fill('0');
    await temperature.fill('0.4');
    await form().getByRole('button', { name: 'Save changes' }).click();
    await form().getByText('Max output tokens must be between 1 and 200,000').waitFor();
    expect(await form().getByText('Temperature must be between 0 and 2').count()).toBe(0);
    expect(updatesSent).toBe(0);

    // In range, it saves.
    await tokens.fill('2048');
    await form().getByRole('button', { name: 'Save changes' }).click();
    await form().getByRole('status').getByText('Saved').waitFor();
    expect(updatesSent).toBe(1);
    const agent = await server.rt.prisma.agent.findFirstOrThrow({ where: { name: 'Planner' } });
    expect([agent.maxOutputTokens, agent.temperature]).toEqual([2048, 0.4]);
  });

  it('reads the API\'s own coercion error for an out-of-range number as a field message', async () => {
    // What the browser would receive had the form sent the number: formErrors names the field instead.
    const res = await gql(server.url, UPDATE_AGENT, { input: { id: agentId, maxOutputTokens: 99_999_999_999 } }, { cookie: account.cookie });
    const message = res.errors?.[0]?.message ?? '';
    expect(message).toMatch(/^Variable "\$input" got invalid value 99999999999 at "input.maxOutputTokens"/);
    expect(formErrors(null, graphQLError(message), ['maxOutputTokens'])).toEqual({ fields: { maxOutputTokens: 'Max output tokens is too large' } });
  });

  it('keeps an API token name to the 100 characters the API allows', async () => {
    const { page } = browser;
    await page.goto('/tokens');
    await page.getByRole('button', { name: /New token|Create your first token/ }).first().click();
    const dialog = page.getByRole('dialog', { name: 'New API token' });
    const name = dialog.getByLabel('Name');
    expect(await name.getAttribute('maxlength')).toBe('100');
    await name.pressSequentially('x'.repeat(120), { delay: 0 });
    expect((await name.inputValue()).length).toBe(100);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
  });

  it('asks for the password when signing in without one, in words', async () => {
    const visitor = await anotherContext(browser, { baseURL: server.url });
    try {
      const { page } = visitor;
      await page.goto('/sign-in');
      await page.getByLabel('Email').fill(account.email);
      expect(await page.getByLabel('Password').getAttribute('maxlength')).toBe('200');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByText('Enter your password').waitFor();
      expect(await page.getByText(/Too small/).count()).toBe(0);
    } finally {
      await visitor.close();
    }
  });

  it('holds a sign-in clicked while the page\'s script is still loading until it can check it', async () => {
    const visitor = await anotherContext(browser, { baseURL: server.url });
    try {
      const { page } = visitor;
      // A slow connection: the page arrives, its script a second and a half later.
      await page.route('**/_app/immutable/**/*.js', async (route) => {
        await new Promise((resolve) => setTimeout(resolve, 1500));
        await route.continue();
      });
      await page.goto('/sign-in', { waitUntil: 'domcontentloaded' });
      await page.locator('input[name="email"]').fill(account.email);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByText('Enter your password').waitFor();
      expect(new URL(page.url()).pathname).toBe('/sign-in');
    } finally {
      await visitor.close();
    }
  });

  it('has logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
