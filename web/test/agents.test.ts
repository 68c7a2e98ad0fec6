import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { type Account, signedInBrowser, signUp } from './accounts.js';
import { anotherContext, type BrowserSession } from './browser.js';
import { CREATE_ORG, CREATE_PROJECT } from './operations.js';

const ARCHIVE = `mutation($id: ID!) { archiveAgent(input: { id: $id }) { __typename } }`;

describe('archived agents and projects come back', { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let owner: Account;
  let projectId = '';
  let organizationId = '';

  beforeAll(async () => {
    server = await startTestServer({ web: true, worker: false });
    owner = await signUp(server, 'Arlo Archivist');
    const org = await owner.api(CREATE_ORG, { input: { name: 'Archive Works', timeZone: 'UTC' } });
    organizationId = fromGlobalId(org.createOrganization.organization.id, 'Organization');
    const project = await owner.api(CREATE_PROJECT, { input: { organizationId: org.createOrganization.organization.id, name: 'Library' } });
    projectId = fromGlobalId(project.createProject.project.id, 'Project');
    browser = await signedInBrowser(server, owner.session);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** The focused element, as `TAG name=…`. */
  const focused = () =>
    browser.page.evaluate(() => {
      const el = document.activeElement as HTMLInputElement | null;
      return `${el?.tagName} name=${el?.name ?? ''}`;
    });

  async function anArchivedAgent(name: string) {
    const agent = await server.rt.prisma.agent.create({ data: { organizationId, projectId, name, provider: 'OFFLINE', model: 'offline-small' } });
    const id = toGlobalId('Agent', agent.id);
    expect((await owner.api(ARCHIVE, { id })).archiveAgent.__typename).toBe('ArchiveAgentPayload');
    return { id, dbId: agent.id };
  }

  it("from the agent's page: Restore agent, and it can be run and edited again", async () => {
    const { page } = browser;
    const agent = await anArchivedAgent('Cataloguer');
    await page.goto(`/agents/${encodeURIComponent(agent.id)}`);
    await page.getByText(/^Archived on /).waitFor();
    // Nothing on the page offers to edit it until it is restored.
    expect(await page.getByRole('main').getByText(/edit the agent/i).count()).toBe(0);
    expect(await page.getByRole('main').getByLabel('Name', { exact: true }).isDisabled()).toBe(true);
    expect(await page.getByRole('button', { name: 'Save changes' }).count()).toBe(0);
    // From the keyboard: the button goes away with the archived state, and focus lands on the form to edit.
    await page.getByRole('button', { name: 'Restore agent' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Archive' }).waitFor();
    expect(await page.getByText(/^Archived on /).count()).toBe(0);
    await expect.poll(focused).toBe('INPUT name=name');
    await page.getByRole('main').getByText(/^Edit the agent/).waitFor();
    expect(await page.getByRole('button', { name: 'Save changes' }).isEnabled()).toBe(true);
    expect((await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.dbId } })).archivedAt).toBeNull();
  });

  it('an agent archived by a teammate while it is being edited: the save is refused, and the page turns to Restore', async () => {
    const { page } = browser;
    const agent = await server.rt.prisma.agent.create({ data: { organizationId, projectId, name: 'Drafter', provider: 'OFFLINE', model: 'offline-small' } });
    const id = toGlobalId('Agent', agent.id);
    await page.goto(`/agents/${encodeURIComponent(id)}`);
    const name = page.getByRole('main').getByLabel('Name', { exact: true });
    await name.fill('Drafter v2');
    expect((await owner.api(ARCHIVE, { id })).archiveAgent.__typename).toBe('ArchiveAgentPayload');
    await page.getByRole('button', { name: 'Save changes' }).click();
    // The API's reason, once, and the page as it now is: archived, read-only, with Restore.
    await page.getByRole('main').getByText('This agent is archived: restore it to edit it').waitFor();
    await page.getByText(/^Archived on /).waitFor();
    await page.getByRole('button', { name: 'Restore agent' }).waitFor();
    expect(await name.isDisabled()).toBe(true);
    expect(await page.getByRole('button', { name: 'Save changes' }).count()).toBe(0);
    expect(await page.getByRole('heading', { name: 'Run this agent' }).count()).toBe(0);
    expect((await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.id } })).name).toBe('Drafter');
  });

  it('archiving from the list keeps focus in the list, on the agent that took its place', async () => {
    const { page } = browser;
    for (const name of ['Alpha', 'Beta']) {
      await server.rt.prisma.agent.create({ data: { organizationId, projectId, name, provider: 'OFFLINE', model: 'offline-small' } });
    }
    await page.goto('/agents');
    await page.getByTestId('agent-row').filter({ hasText: 'Beta' }).waitFor();
    await page.getByRole('button', { name: 'Archive Alpha' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('dialog', { name: 'Archive Alpha?' }).getByRole('button', { name: 'Archive', exact: true }).focus();
    await page.keyboard.press('Enter');
    await page.getByTestId('agent-row').filter({ hasText: 'Alpha' }).waitFor({ state: 'detached' });
    // An agent's link in a row still listed, not the page's body.
    const focusedRowLink = () =>
      page.evaluate(() => (document.activeElement?.closest('[data-testid="agent-row"]') ? document.activeElement.tagName : `outside: ${document.activeElement?.tagName}`));
    await expect.poll(focusedRowLink).toBe('A');
    expect(await page.evaluate(() => document.activeElement?.closest('[data-testid="agent-row"]')?.textContent)).not.toContain('Alpha');
  });

  it("from the agent's page: a refused archive says why in the dialog and changes nothing; confirmed, it goes back to the list", async () => {
    const { page } = browser;
    const agent = await server.rt.prisma.agent.create({ data: { organizationId, projectId, name: 'Binder', provider: 'OFFLINE', model: 'offline-small' } });
    await page.goto(`/agents/${encodeURIComponent(toGlobalId('Agent', agent.id))}`);
    await page.getByRole('button', { name: 'Archive' }).click();
    const dialog = page.getByRole('dialog', { name: 'Archive Binder?' });
    // Demoted to viewer meanwhile: the API refuses, and the dialog shows its reason.
    await server.rt.prisma.membership.updateMany({ where: { organizationId }, data: { role: 'VIEWER' } });
    try {
      await dialog.getByRole('button', { name: 'Archive', exact: true }).click();
      await dialog.getByText('Your role (VIEWER) cannot archive or restore agents', { exact: true }).waitFor();
    } finally {
      await server.rt.prisma.membership.updateMany({ where: { organizationId }, data: { role: 'OWNER' } });
    }
    expect((await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.id } })).archivedAt).toBeNull();
    await dialog.getByRole('button', { name: 'Keep agent' }).click();
    await dialog.waitFor({ state: 'hidden' });
    // Opened again, it starts clean.
    await page.getByRole('button', { name: 'Archive' }).click();
    await dialog.getByRole('button', { name: 'Archive', exact: true }).waitFor();
    expect(await dialog.getByText(/^Your role/).count()).toBe(0);
    await dialog.getByRole('button', { name: 'Archive', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/agents');
    expect((await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.id } })).archivedAt).not.toBeNull();
  });

  it('a project whose agents are all archived says so, and shows them from its empty state', async () => {
    const curator = await signUp(server, 'Cora Curator');
    const org = await curator.api(CREATE_ORG, { input: { name: 'Quiet Works', timeZone: 'UTC' } });
    const project = await curator.api(CREATE_PROJECT, { input: { organizationId: org.createOrganization.organization.id, name: 'Attic' } });
    await server.rt.prisma.agent.create({
      data: {
        organizationId: fromGlobalId(org.createOrganization.organization.id, 'Organization'),
        projectId: fromGlobalId(project.createProject.project.id, 'Project'),
        name: 'Mothballed',
        provider: 'OFFLINE',
        model: 'offline-small',
        archivedAt: new Date(),
      },
    });
    const session = await anotherContext(browser, { baseURL: server.url });
    try {
      await session.page.context().addCookies([{ name: 'hub_session', value: curator.session, url: server.url, httpOnly: true }]);
      const { page } = session;
      await page.goto('/agents');
      // Not an invitation to build a first agent: there is one, archived.
      await page.getByRole('heading', { name: 'No active agents' }).waitFor();
      expect(await page.getByRole('heading', { name: 'Build your first agent' }).count()).toBe(0);
      await page.getByText('1 archived agent is hidden.').waitFor();
      await page.getByRole('button', { name: 'Show archived agents' }).click();
      await page.getByTestId('agent-row').filter({ hasText: 'Mothballed' }).getByText('Archived', { exact: true }).waitFor();
      expect(await page.getByLabel('Show archived').isChecked()).toBe(true);
      expect(await page.getByLabel('Show archived').evaluate((el) => el === document.activeElement)).toBe(true);
      expect(session.errors).toEqual([]);
    } finally {
      await session.close();
    }
  });

  it('an archived project too, from the projects page, audited', async () => {
    const { page } = browser;
    const archived = await server.rt.prisma.project.create({ data: { organizationId, slug: 'old-stacks', name: 'Old stacks', archivedAt: new Date() } });
    await page.goto('/projects');
    await page.getByLabel('Show archived').check();
    await page.getByRole('button', { name: 'Restore Old stacks' }).click();
    await page.getByRole('button', { name: 'Archive Old stacks' }).waitFor();
    expect((await server.rt.prisma.project.findUniqueOrThrow({ where: { id: archived.id } })).archivedAt).toBeNull();
    expect(await server.rt.prisma.auditLog.count({ where: { targetId: archived.id, action: 'project.restored' } })).toBe(1);
  });

  it('offers New agent to roles that may create one, and not to a viewer', async () => {
    await server.rt.prisma.agent.create({ data: { organizationId, projectId, name: 'Visible', provider: 'OFFLINE', model: 'offline-small' } });
    await browser.page.goto('/agents');
    await browser.page.getByRole('link', { name: 'Visible', exact: true }).waitFor();
    expect(await browser.page.getByRole('main').getByRole('link', { name: 'New agent' }).count()).toBe(1);

    const viewer = await signUp(server, 'Vera Viewer');
    const user = await server.rt.prisma.user.findUniqueOrThrow({ where: { email: viewer.email } });
    await server.rt.prisma.membership.create({ data: { organizationId, userId: user.id, role: 'VIEWER' } });
    const session = await anotherContext(browser, { baseURL: server.url });
    try {
      await session.page.context().addCookies([{ name: 'hub_session', value: viewer.session, url: server.url, httpOnly: true }]);
      await session.page.goto('/agents');
      await session.page.getByRole('link', { name: 'Visible', exact: true }).waitFor();
      expect(await session.page.getByRole('link', { name: 'New agent' }).count()).toBe(0);
      expect(session.errors).toEqual([]);
    } finally {
      await session.close();
    }
  });

  it('from the list, with archived agents shown', async () => {
    const { page } = browser;
    const agent = await anArchivedAgent('Indexer');
    await page.goto('/agents');
    await page.getByLabel('Show archived').check();
    const row = page.getByTestId('agent-row').filter({ hasText: 'Indexer' });
    await row.getByText('Archived', { exact: true }).waitFor();
    await row.getByRole('button', { name: 'Restore' }).focus();
    await page.keyboard.press('Enter');
    await row.getByRole('button', { name: 'Run' }).waitFor();
    // Focus stays in the agent's row rather than falling back to the top of the page.
    await expect.poll(() => row.evaluate((el) => el.contains(document.activeElement))).toBe(true);
    expect(await row.getByText('Archived', { exact: true }).count()).toBe(0);
    expect((await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: agent.dbId } })).archivedAt).toBeNull();
  });
});
