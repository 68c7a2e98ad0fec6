import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { type Account, signedInBrowser, signUp } from './accounts.js';
import type { BrowserSession } from './browser.js';
import { CREATE_ORG, CREATE_PROJECT } from './operations.js';

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
  async function anAgent(name: string, data: { model?: string } = {}) {
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

  it('shows the API refusing the model next to the Model field', async () => {
    const agent = await anAgent('Retiree', { model: 'offline-retired' });
    await openAgent(agent.id);
    await form().getByRole('button', { name: 'Save changes' }).click();
    await form().getByText('Unknown OFFLINE model; choose one of: offline-small, offline-large').waitFor();
    expect(await form().getByLabel('Model', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    expect(await browser.page.getByRole('main').getByRole('alert').count()).toBe(0);
    expect((await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.dbId } })).model).toBe('offline-retired');
    // Focus goes to the field to fix (the message is read with it), not left on Save far below.
    expect(await focusedLabel()).toBe('Model');
  });

  it('has logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
