import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { type Account, signedInBrowser, signUp } from './accounts.js';
import type { BrowserSession } from './browser.js';
import { CREATE_ORG, CREATE_PROJECT } from './operations.js';

describe('the agent page', { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let owner: Account;
  let organizationId = '';
  let projectId = '';

  beforeAll(async () => {
    server = await startTestServer({ web: true, worker: false });
    owner = await signUp(server, 'Paz Pagewright');
    const org = await owner.api(CREATE_ORG, { input: { name: 'Page Works', timeZone: 'UTC' } });
    organizationId = fromGlobalId(org.createOrganization.organization.id, 'Organization');
    const project = await owner.api(CREATE_PROJECT, { input: { organizationId: org.createOrganization.organization.id, name: 'Greenhouse' } });
    projectId = fromGlobalId(project.createProject.project.id, 'Project');
    browser = await signedInBrowser(server, owner.session);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function anAgent(name: string) {
    const agent = await server.rt.prisma.agent.create({ data: { organizationId, projectId, name, provider: 'OFFLINE', model: 'offline-small' } });
    return { id: toGlobalId('Agent', agent.id), dbId: agent.id, path: `/agents/${encodeURIComponent(toGlobalId('Agent', agent.id))}` };
  }

  const form = () => browser.page.getByRole('main').locator('form').filter({ has: browser.page.getByRole('button', { name: 'Save changes' }) });
  const breadcrumb = () => browser.page.getByRole('navigation', { name: 'Breadcrumb' });

  it('its breadcrumb names the agent, after a link back to Agents, and follows a rename', async () => {
    const { page } = browser;
    const agent = await anAgent('Pollinator');
    await page.goto(agent.path);
    await form().getByLabel('Name', { exact: true }).waitFor();
    expect((await breadcrumb().innerText()).replace(/\s+/g, ' ').trim()).toBe('Agents / Pollinator');
    expect(await breadcrumb().getByText('Greenhouse').count()).toBe(0);
    expect(await breadcrumb().locator('[aria-current="page"]').innerText()).toBe('Pollinator');

    await form().getByLabel('Name', { exact: true }).fill('Pollinator II');
    await form().getByRole('button', { name: 'Save changes' }).click();
    await form().getByRole('status').getByText('Saved').waitFor();
    expect((await breadcrumb().innerText()).replace(/\s+/g, ' ').trim()).toBe('Agents / Pollinator II');

    await breadcrumb().getByRole('link', { name: 'Agents' }).click();
    await page.waitForURL((url) => url.pathname === '/agents');
  });

  it('has logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
