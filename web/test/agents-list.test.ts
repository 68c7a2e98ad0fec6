import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { aTeamWithAnAgent, signedInBrowser, type Account } from './accounts.js';
import { anotherContext, type BrowserSession } from './browser.js';

describe('the agents list with many agents, and an agent on a phone', { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let account: Account;
  let agentId = '';
  let organizationId = '';
  let projectId = '';

  beforeAll(async () => {
    server = await startTestServer({ web: true, worker: false });
    const team = await aTeamWithAnAgent(server, { person: 'Lena Lister', org: 'Many Hands', project: 'Fleet', agent: 'Aardvark' });
    ({ account, agentId } = team);
    organizationId = fromGlobalId(team.organizationId, 'Organization');
    projectId = fromGlobalId(team.projectId, 'Project');
    browser = await signedInBrowser(server, account.session);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("names the agent in each row's Run, Edit and Restore, so a screen reader's list of them tells the rows apart", async () => {
    const { page } = browser;
    await server.rt.prisma.agent.create({ data: { organizationId, projectId, name: 'Badger', provider: 'OFFLINE', model: 'offline-small', archivedAt: new Date() } });
    await page.goto('/agents');
    await page.getByLabel('Show archived').check();
    const row = (name: string) => page.getByTestId('agent-row').filter({ hasText: name });
    await row('Badger').getByText('Archived', { exact: true }).waitFor();
    const main = page.getByRole('main');
    expect(await main.getByRole('button', { name: 'Run Aardvark', exact: true }).count()).toBe(1);
    expect(await main.getByRole('link', { name: 'Edit Aardvark', exact: true }).count()).toBe(1);
    // Archived, it can only be viewed.
    expect(await main.getByRole('link', { name: 'View Badger', exact: true }).count()).toBe(1);
    expect(await main.getByRole('button', { name: 'Restore Badger', exact: true }).count()).toBe(1);
    expect(await main.getByRole('button', { name: 'Run', exact: true }).count()).toBe(0);
    expect(await main.getByRole('link', { name: 'Edit', exact: true }).count()).toBe(0);
    expect(await main.getByRole('link', { name: 'View', exact: true }).count()).toBe(0);
  });

  it('lists every agent of a project that has more than a page of them (the API gives 100 at a time)', async () => {
    const { page } = browser;
    const created = new Date(Date.now() + 60_000);
    await server.rt.prisma.agent.createMany({
      data: Array.from({ length: 128 }, (_, i) => ({
        organizationId,
        projectId,
        name: `Worker ${String(i + 1).padStart(3, '0')}`,
        provider: 'OFFLINE' as const,
        model: 'offline-small',
        // Oldest first, as the list is: the last ones made come after the first hundred.
        createdAt: new Date(created.getTime() + i * 1000),
      })),
    });
    await page.goto('/agents');
    // Aardvark, Badger (archived, hidden) and 128 workers: 129 shown.
    await page.getByRole('link', { name: 'Worker 128', exact: true }).waitFor();
    expect(await page.getByTestId('agent-row').count()).toBe(129);
    await page.getByLabel('Show archived').check();
    await expect.poll(() => page.getByTestId('agent-row').count()).toBe(130);
  });

  it('archiving an agent past the first hundred takes its row away', async () => {
    const { page } = browser;
    await page.goto('/agents');
    await page.getByRole('button', { name: 'Archive Worker 127', exact: true }).click();
    await page.getByRole('dialog', { name: 'Archive Worker 127?' }).getByRole('button', { name: 'Archive', exact: true }).click();
    await page.getByRole('link', { name: 'Worker 127', exact: true }).waitFor({ state: 'detached' });
    expect(await page.getByTestId('agent-row').count()).toBe(128);
    expect(browser.errors).toEqual([]);
  });

  it("on a phone, Run this agent at the top of the agent's page takes the reader to the prompt, below the whole form", async () => {
    const phone = await anotherContext(browser, { baseURL: server.url, viewport: { width: 390, height: 844 } });
    try {
      const { page } = phone;
      await page.context().addCookies([{ name: 'hub_session', value: account.session, url: server.url, httpOnly: true }]);
      await page.goto(`/agents/${encodeURIComponent(agentId)}`);
      const prompt = page.getByRole('region', { name: 'Run this agent' }).getByLabel('Prompt');
      await prompt.waitFor();
      // The form to edit the agent comes first: the prompt is screens below.
      expect(await prompt.evaluate((el) => el.getBoundingClientRect().top)).toBeGreaterThan(844 * 2);
      const button = page.getByRole('button', { name: 'Run this agent' });
      expect(await button.evaluate((el) => el.getBoundingClientRect().bottom)).toBeLessThan(844);
      await button.click();
      await expect.poll(() => prompt.evaluate((el) => el === document.activeElement)).toBe(true);
      // In view, whole.
      const box = await prompt.evaluate((el) => el.getBoundingClientRect());
      expect(box.top).toBeGreaterThan(0);
      expect(box.bottom).toBeLessThan(844);
      await page.keyboard.type('Count the fleet');
      expect(await prompt.inputValue()).toBe('Count the fleet');
      expect(phone.errors).toEqual([]);
    } finally {
      await phone.close();
    }
  });

  it('on a wide screen the run form sits beside the agent form, with no button to jump to it', async () => {
    const { page } = browser;
    await page.setViewportSize({ width: 1360, height: 900 });
    await page.goto(`/agents/${encodeURIComponent(agentId)}`);
    await page.getByRole('region', { name: 'Run this agent' }).getByLabel('Prompt').waitFor();
    expect(await page.getByRole('button', { name: 'Run this agent' }).count()).toBe(0);
    expect(browser.errors).toEqual([]);
  });
});
