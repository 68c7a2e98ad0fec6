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
  /** The type of each dialog the page opened ('confirm', 'beforeunload'), and how the next is answered. */
  const dialogs: string[] = [];
  let answer: 'accept' | 'dismiss' = 'dismiss';

  beforeAll(async () => {
    server = await startTestServer({ web: true, worker: false });
    owner = await signUp(server, 'Paz Pagewright');
    const org = await owner.api(CREATE_ORG, { input: { name: 'Page Works', timeZone: 'UTC' } });
    organizationId = fromGlobalId(org.createOrganization.organization.id, 'Organization');
    const project = await owner.api(CREATE_PROJECT, { input: { organizationId: org.createOrganization.organization.id, name: 'Greenhouse' } });
    projectId = fromGlobalId(project.createProject.project.id, 'Project');
    browser = await signedInBrowser(server, owner.session);
    browser.page.on('dialog', (dialog) => {
      dialogs.push(dialog.type());
      void (answer === 'accept' ? dialog.accept() : dialog.dismiss());
    });
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

  /** Follows the Runs link of the app's navigation: a navigation inside the app. */
  const toRuns = () => browser.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Runs' }).click();
  const name = () => form().getByLabel('Name', { exact: true });

  it('asks before a link inside the app discards unsaved edits: dismissed, the page and the edit stay; accepted, it leaves', async () => {
    const { page } = browser;
    const agent = await anAgent('Gardener');
    await page.goto(agent.path);
    await name().fill('Gardener, edited');
    dialogs.length = 0;
    answer = 'dismiss';
    await toRuns();
    await expect.poll(() => dialogs).toEqual(['confirm']);
    // Give a navigation that was not stopped the time to happen.
    await page.waitForTimeout(500);
    expect(new URL(page.url()).pathname).toBe(agent.path);
    expect(await name().inputValue()).toBe('Gardener, edited');

    answer = 'accept';
    await toRuns();
    await page.waitForURL((url) => url.pathname === '/runs');
    expect(dialogs).toEqual(['confirm', 'confirm']);
    expect((await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.dbId } })).name).toBe('Gardener');
  });

  it('leaves without asking when nothing was changed, or once the changes are saved', async () => {
    const { page } = browser;
    const agent = await anAgent('Weeder');
    await page.goto(agent.path);
    await name().waitFor();
    dialogs.length = 0;
    answer = 'dismiss';
    await toRuns();
    await page.waitForURL((url) => url.pathname === '/runs');

    await page.goto(agent.path);
    await name().fill('Weeder, saved');
    await form().getByLabel('Description').fill('Pulls what does not belong');
    await form().getByRole('button', { name: 'Save changes' }).click();
    await form().getByRole('status').getByText('Saved').waitFor();
    await toRuns();
    await page.waitForURL((url) => url.pathname === '/runs');
    expect(dialogs).toEqual([]);
    // Changed and changed back is nothing to lose either.
    await page.goto(agent.path);
    await name().fill('Weeder, again');
    await name().fill('Weeder, saved');
    await toRuns();
    await page.waitForURL((url) => url.pathname === '/runs');
    expect(dialogs).toEqual([]);
  });

  it('leaves for the list without asking once the agent is archived from its page, unsaved edits or not', async () => {
    const { page } = browser;
    const agent = await anAgent('Pruner');
    await page.goto(agent.path);
    await name().fill('Pruner, edited');
    dialogs.length = 0;
    answer = 'dismiss';
    await page.getByRole('button', { name: 'Archive' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Archive' }).click();
    await page.waitForURL((url) => url.pathname === '/agents');
    expect(dialogs).toEqual([]);
    const stored = await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.dbId } });
    expect(stored.archivedAt).not.toBeNull();
    expect(stored.name).toBe('Pruner');
  });

  it("asks before reloading or closing the tab discards unsaved edits, with the browser's own prompt", async () => {
    const { page } = browser;
    const agent = await anAgent('Pruner');
    await page.goto(agent.path);
    await name().fill('Pruner, edited');
    dialogs.length = 0;
    answer = 'dismiss';
    // Not awaited as a navigation: dismissed, there is none.
    await page.evaluate(() => location.reload());
    await expect.poll(() => dialogs).toEqual(['beforeunload']);
    await page.waitForTimeout(500);
    expect(await name().inputValue()).toBe('Pruner, edited');

    answer = 'accept';
    await page.reload();
    await name().waitFor();
    expect(dialogs).toEqual(['beforeunload', 'beforeunload']);
    expect(await name().inputValue()).toBe('Pruner');
  });

  it('the new agent form asks too, except through its Cancel and once the agent is created', async () => {
    const { page } = browser;
    const main = page.getByRole('main');
    await page.goto('/agents/new');
    await main.getByLabel('Name', { exact: true }).fill('Seedling');
    dialogs.length = 0;
    answer = 'dismiss';
    await toRuns();
    await expect.poll(() => dialogs).toEqual(['confirm']);
    await page.waitForTimeout(500);
    expect(new URL(page.url()).pathname).toBe('/agents/new');

    await main.getByRole('button', { name: 'Cancel' }).click();
    await page.waitForURL((url) => url.pathname === '/agents');
    await page.goto('/agents/new');
    await main.getByLabel('Name', { exact: true }).fill('Seedling');
    await main.getByRole('button', { name: 'Create agent' }).click();
    await page.waitForURL((url) => url.pathname.startsWith('/agents/') && url.pathname !== '/agents/new');
    await name().waitFor();
    expect(dialogs).toEqual(['confirm']);
  });

  it('has logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
