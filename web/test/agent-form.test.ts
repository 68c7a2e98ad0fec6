import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { type Account, signedInBrowser, signUp } from './accounts.js';
import type { BrowserSession } from './browser.js';
import { CREATE_ORG, CREATE_PROJECT } from './operations.js';

const UPDATE_AGENT = /* GraphQL */ `
  mutation ($input: UpdateAgentInput!) {
    updateAgent(input: $input) { __typename ... on ValidationError { issues { path message } } }
  }
`;

describe("the agent form and the API's refusals", { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let owner: Account;
  let organizationId = '';
  let projectId = '';
  /** AgentsPageUpdate requests the page has sent so far. */
  let updatesSent = 0;

  beforeAll(async () => {
    server = await startTestServer({ web: true, worker: false });
    owner = await signUp(server, 'Mina Modeller');
    const org = await owner.api(CREATE_ORG, { input: { name: 'Model Works', timeZone: 'UTC' } });
    organizationId = fromGlobalId(org.createOrganization.organization.id, 'Organization');
    const project = await owner.api(CREATE_PROJECT, { input: { organizationId: org.createOrganization.organization.id, name: 'Bench' } });
    projectId = fromGlobalId(project.createProject.project.id, 'Project');
    browser = await signedInBrowser(server, owner.session);
    browser.page.on('request', (request) => {
      if (request.url().endsWith('/graphql') && request.postData()?.includes('AgentsPageUpdate')) updatesSent++;
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** An agent stored as given (bypassing the API's checks, as data from before a model was retired would be). */
  async function anAgent(name: string, data: { model?: string; fallbackChain?: { provider: string; model: string }[] } = {}) {
    const agent = await server.rt.prisma.agent.create({
      data: { organizationId, projectId, name, provider: 'OFFLINE', model: 'offline-small', ...data },
    });
    return { id: toGlobalId('Agent', agent.id), dbId: agent.id };
  }

  const form = () => browser.page.getByRole('main').locator('form').filter({ has: browser.page.getByRole('button', { name: 'Save changes' }) });

  /** The label of the focused control, as a screen reader would announce it. */
  const focusedLabel = () =>
    browser.page.evaluate(() => {
      const el = document.activeElement as HTMLInputElement | null;
      return el?.labels?.[0]?.textContent?.trim() ?? el?.getAttribute('aria-label') ?? el?.tagName ?? null;
    });

  async function openAgent(id: string) {
    await browser.page.goto(`/agents/${encodeURIComponent(id)}`);
    await form().getByLabel('Name', { exact: true }).waitFor();
  }

  it("shows a model the catalog no longer offers, marked, and the API's refusal of it on the Model field", async () => {
    const agent = await anAgent('Retiree', { model: 'offline-retired' });
    await openAgent(agent.id);
    // The stored model is shown, marked, rather than an empty picker.
    const selected = () => form().getByLabel('Model', { exact: true }).evaluate((el: HTMLSelectElement) => el.selectedOptions[0]?.textContent?.trim());
    expect(await selected()).toBe('offline-retired (no longer offered)');
    await form().getByRole('button', { name: 'Save changes' }).click();
    await form().getByText('Unknown OFFLINE model; choose one of: offline-small, offline-large').waitFor();
    expect(await form().getByLabel('Model', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    expect(await browser.page.getByRole('main').getByRole('alert').count()).toBe(0);
    expect((await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.dbId } })).model).toBe('offline-retired');
    // Focus goes to the field to fix (the message is read with it), not left on Save far below.
    expect(await focusedLabel()).toBe('Model');

    await form().getByLabel('Model', { exact: true }).selectOption('offline-large');
    await form().getByRole('button', { name: 'Save changes' }).click();
    await form().getByRole('status').getByText('Saved').waitFor();
    expect((await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.dbId } })).model).toBe('offline-large');
  });

  it('shows a fallback model the catalog no longer offers, marked, until another is chosen', async () => {
    const agent = await anAgent('Old chain', { fallbackChain: [{ provider: 'OFFLINE', model: 'offline-retired' }] });
    await openAgent(agent.id);
    const fallbackModel = form().getByLabel('Fallback 1 model');
    const selected = () => fallbackModel.evaluate((el: HTMLSelectElement) => el.selectedOptions[0]?.textContent?.trim());
    expect(await selected()).toBe('offline-retired (no longer offered)');
    await fallbackModel.selectOption('offline-large');
    // Once another is chosen, the retired model is no longer offered in the picker.
    expect(await fallbackModel.locator('option').allTextContents()).not.toContain('offline-retired (no longer offered)');
    await form().getByRole('button', { name: 'Save changes' }).click();
    await form().getByRole('status').getByText('Saved').waitFor();
    expect((await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.dbId } })).fallbackChain).toEqual([{ provider: 'OFFLINE', model: 'offline-large' }]);
  });

  it('shows the API refusing text that holds a NUL character on each field that holds it', async () => {
    const agent = await anAgent('Nully');
    await openAgent(agent.id);
    await form().getByLabel('Description').fill('one\u0000line');
    await form().getByLabel('System prompt').fill('Be \u0000 brief');
    await form().getByRole('button', { name: 'Save changes' }).click();
    const nul = 'Remove the NUL characters (U+0000): text cannot hold them';
    await form().getByText(nul).first().waitFor();
    expect(await form().getByText(nul).count()).toBe(2);
    expect(await form().getByLabel('Description').getAttribute('aria-invalid')).toBe('true');
    expect(await form().getByLabel('System prompt').getAttribute('aria-invalid')).toBe('true');
    expect(await form().getByLabel('Name', { exact: true }).getAttribute('aria-invalid')).toBeNull();
    expect(await focusedLabel()).toBe('Description');
    // Drawn in the error colour, unlike the name, which was fine.
    const border = (label: string) => form().getByLabel(label, { exact: true }).evaluate((el) => getComputedStyle(el).borderTopColor);
    expect(await border('System prompt')).not.toBe(await border('Name'));
    expect(await browser.page.getByRole('main').getByRole('alert').count()).toBe(0);
    expect((await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.dbId } })).description).toBe('');
  });

  it("refuses a fallback that repeats the agent's model or an earlier fallback before sending, on its row, in the API's words", async () => {
    const { page } = browser;
    const agent = await anAgent('Chainer');
    await openAgent(agent.id);
    const sentBefore = updatesSent;
    await form().getByRole('button', { name: 'Add fallback' }).click();
    await form().getByLabel('Fallback 1 provider').selectOption('OFFLINE');
    await form().getByLabel('Fallback 1 model').selectOption('offline-small');
    for (const n of [2, 3]) {
      await form().getByRole('button', { name: 'Add fallback' }).click();
      await form().getByLabel(`Fallback ${n} provider`).selectOption('OFFLINE');
      await form().getByLabel(`Fallback ${n} model`).selectOption('offline-large');
    }
    await form().getByRole('button', { name: 'Save changes' }).click();
    const rows = form().getByTestId('fallback-row');
    await rows.nth(0).getByText("Offline small (echo + outline) is the agent's own model: a fallback must be another model").waitFor();
    await rows.nth(2).getByText('Offline large (echo + outline + risks) is already earlier in the fallback chain').waitFor();
    expect(await rows.nth(1).locator('.text-error').count()).toBe(0);
    expect(await form().getByLabel('Fallback 1 model').getAttribute('aria-invalid')).toBe('true');
    expect(await form().getByLabel('Fallback 3 model').getAttribute('aria-invalid')).toBe('true');
    expect(await form().getByLabel('Fallback 2 model').getAttribute('aria-invalid')).toBeNull();
    expect(await focusedLabel()).toBe('Fallback 1 model');
    expect(updatesSent).toBe(sentBefore);

    // The same words as the API's, which answers the same chain with the same issues.
    const refused = await owner.api(UPDATE_AGENT, {
      input: { id: agent.id, fallbackChain: [1, 2, 3].map((i) => ({ provider: 'OFFLINE', model: i === 1 ? 'offline-small' : 'offline-large' })) },
    });
    expect(refused.updateAgent.issues).toEqual([
      { path: ['fallbackChain', '0'], message: "Offline small (echo + outline) is the agent's own model: a fallback must be another model" },
      { path: ['fallbackChain', '2'], message: 'Offline large (echo + outline + risks) is already earlier in the fallback chain' },
    ]);

    // Changing the chain clears what was said about it; a chain of other models saves.
    await form().getByRole('button', { name: 'Remove fallback 3' }).click();
    expect(await rows.locator('.text-error').count()).toBe(0);
    await form().getByRole('button', { name: 'Remove fallback 1' }).click();
    await form().getByRole('button', { name: 'Save changes' }).click();
    await form().getByRole('status').getByText('Saved').waitFor();
    const stored = await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.dbId } });
    expect(stored.fallbackChain).toEqual([{ provider: 'OFFLINE', model: 'offline-large' }]);

    // Should the API still refuse a chain (here, one the request was changed to on its way), its issue lands on that row.
    await page.route('**/graphql', async (route) => {
      const body = JSON.parse(route.request().postData() ?? '{}');
      if (body.operationName !== 'AgentsPageUpdate') return route.continue();
      body.variables.input.fallbackChain = [{ provider: 'OFFLINE', model: 'offline-large' }, { provider: 'OFFLINE', model: 'offline-large' }];
      return route.continue({ postData: JSON.stringify(body) });
    });
    try {
      await form().getByRole('button', { name: 'Add fallback' }).click();
      await form().getByRole('button', { name: 'Save changes' }).click();
      await rows.nth(1).getByText('Offline large (echo + outline + risks) is already earlier in the fallback chain').waitFor();
      expect(await focusedLabel()).toBe('Fallback 2 model');
      expect(await page.getByRole('main').getByRole('alert').count()).toBe(0);
    } finally {
      await page.unroute('**/graphql');
    }
  });

  it('Add fallback offers a model not yet in the chain each time, so fallbacks added one after another save as they are', async () => {
    const { page } = browser;
    await page.goto('/agents/new');
    const main = page.getByRole('main');
    await main.getByLabel('Name', { exact: true }).fill('Three deep');
    for (let i = 0; i < 3; i++) await main.getByRole('button', { name: 'Add fallback' }).click();
    await main.getByRole('button', { name: 'Create agent' }).click();
    await page.waitForURL((url) => url.pathname.startsWith('/agents/') && url.pathname !== '/agents/new');
    const stored = await server.rt.prisma.agent.findFirstOrThrow({ where: { projectId, name: 'Three deep' } });
    const chain = stored.fallbackChain as { provider: string; model: string }[];
    expect(chain).toHaveLength(3);
    const tried = [`${stored.provider} ${stored.model}`, ...chain.map((c) => `${c.provider} ${c.model}`)];
    expect(new Set(tried).size).toBe(4);
  });

  it('Create agent pressed twice before the first answer creates one agent, not two', async () => {
    const { page } = browser;
    await page.goto('/agents/new');
    const main = page.getByRole('main');
    await main.getByLabel('Name', { exact: true }).fill('Pressed twice');
    // A slow network: the second press lands while the first request is still on its way.
    await page.route('**/graphql', async (route) => {
      if (!route.request().postData()?.includes('AgentsPageCreate')) return route.continue();
      await new Promise((resolve) => setTimeout(resolve, 500));
      return route.continue();
    });
    try {
      await main.getByRole('button', { name: 'Create agent' }).dblclick();
      await page.waitForURL((url) => url.pathname.startsWith('/agents/') && url.pathname !== '/agents/new');
      // Let a second request, had one been sent, be answered.
      await page.waitForTimeout(1_000);
    } finally {
      await page.unroute('**/graphql');
    }
    expect(await server.rt.prisma.agent.count({ where: { projectId, name: 'Pressed twice' } })).toBe(1);
  });

  it("bounds max output tokens by the selected model's limit, says it, and refuses more before sending, in the API's words", async () => {
    const agent = await anAgent('Bounded');
    await openAgent(agent.id);
    const sentBefore = updatesSent;
    const tokens = form().getByLabel('Max output tokens');
    // Offline small writes at most 8,192 tokens: the field says so and is bounded by it.
    expect(await tokens.getAttribute('max')).toBe('8192');
    await form().getByText('1 to 8,192 per run, Offline small (echo + outline)’s limit').waitFor();
    await form().getByLabel('Model', { exact: true }).selectOption('offline-large');
    expect(await tokens.getAttribute('max')).toBe('32768');
    await form().getByText('1 to 32,768 per run, Offline large (echo + outline + risks)’s limit').waitFor();

    // A fallback that writes less bounds the agent too, as the API says.
    await tokens.fill('20000');
    await form().getByRole('button', { name: 'Add fallback' }).click();
    await form().getByLabel('Fallback 1 provider').selectOption('OFFLINE');
    await form().getByLabel('Fallback 1 model').selectOption('offline-small');
    await form().getByRole('button', { name: 'Save changes' }).click();
    const message = 'Fallback 1, Offline small (echo + outline), writes at most 8,192 output tokens: set max output tokens to 8,192 or less, or choose another fallback';
    await form().getByText(message).waitFor();
    expect(await tokens.getAttribute('aria-invalid')).toBe('true');
    expect(await focusedLabel()).toBe('Max output tokens');
    expect(updatesSent).toBe(sentBefore);
    const refused = await owner.api(UPDATE_AGENT, {
      input: { id: agent.id, model: 'offline-large', maxOutputTokens: 20_000, fallbackChain: [{ provider: 'OFFLINE', model: 'offline-small' }] },
    });
    expect(refused.updateAgent.issues).toEqual([{ path: ['maxOutputTokens'], message }]);

    await tokens.fill('8192');
    await form().getByRole('button', { name: 'Save changes' }).click();
    await form().getByRole('status').getByText('Saved').waitFor();
    expect(await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.dbId } })).toMatchObject({ model: 'offline-large', maxOutputTokens: 8192 });
  });

  it('finds every problem it can before sending and shows them all at once: an invisible name, too many tokens, a repeated fallback', async () => {
    const agent = await anAgent('One pass');
    await openAgent(agent.id);
    const sentBefore = updatesSent;
    // A zero-width space and a joiner: nothing a person can see, refused like a blank name.
    await form().getByLabel('Name', { exact: true }).fill('\u200B\u200D');
    await form().getByLabel('Max output tokens').fill('9000');
    await form().getByRole('button', { name: 'Add fallback' }).click();
    await form().getByLabel('Fallback 1 provider').selectOption('OFFLINE');
    await form().getByLabel('Fallback 1 model').selectOption('offline-small');
    await form().getByRole('button', { name: 'Save changes' }).click();

    await form().getByText('Enter a name').waitFor();
    await form().getByText('Offline small (echo + outline) writes at most 8,192 output tokens: set max output tokens to 8,192 or less').waitFor();
    // Providers and models by the names the pickers show, not the API's enum names.
    const repeat = "Offline small (echo + outline) is the agent's own model: a fallback must be another model";
    await form().getByTestId('fallback-row').nth(0).getByText(repeat).waitFor();
    expect(await form().getByText(/OFFLINE/).count()).toBe(0);
    for (const label of ['Name', 'Max output tokens', 'Fallback 1 model']) {
      expect(await form().getByLabel(label, { exact: true }).getAttribute('aria-invalid'), label).toBe('true');
    }
    expect(await focusedLabel()).toBe('Name');
    expect(updatesSent).toBe(sentBefore);

    // The API says the same of each, in the same words.
    const invisible = await owner.api(UPDATE_AGENT, { input: { id: agent.id, name: '\u200B\u200D' } });
    expect(invisible.updateAgent.issues).toEqual([{ path: ['name'], message: 'Enter a name' }]);
    const refused = await owner.api(UPDATE_AGENT, {
      input: { id: agent.id, maxOutputTokens: 9000, fallbackChain: [{ provider: 'OFFLINE', model: 'offline-small' }] },
    });
    expect(refused.updateAgent.issues).toEqual([
      { path: ['fallbackChain', '0'], message: repeat },
      { path: ['maxOutputTokens'], message: 'Offline small (echo + outline) writes at most 8,192 output tokens: set max output tokens to 8,192 or less' },
    ]);
  });

  it('has logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
