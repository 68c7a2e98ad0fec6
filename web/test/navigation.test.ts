import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { type Account, signedInBrowser, signIn, signUp } from './accounts.js';
import { anotherContext, type BrowserSession } from './browser.js';
import { CREATE_ORG, CREATE_PROJECT } from './operations.js';

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? '/tmp';
const NO_ORGANIZATION = 'You have no organization yet — create one';

describe('navigation: the current project, the switchers and the members page', { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let owner: Account;
  let northwindGid = '';

  async function createOrg(name: string, projects: string[]) {
    const org = await owner.api(CREATE_ORG, { input: { name, timeZone: 'UTC' } });
    const organizationId = org.createOrganization.organization.id as string;
    // One after the other, so their creation order is the order given.
    for (const project of projects) await owner.api(CREATE_PROJECT, { input: { organizationId, name: project } });
    return organizationId;
  }

  beforeAll(async () => {
    server = await startTestServer({ web: true, worker: false });
    owner = await signUp(server, 'Nora Navigator');
    // Playground first, as a new organization starts; Ops Project and Zeta come later.
    northwindGid = await createOrg('Northwind', ['Playground', 'Ops Project', 'Zeta']);
    await createOrg('Second Org', ['Alpha', 'Beta']);
    browser = await signedInBrowser(server, owner.session);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** The switchers' accessible names carry what they show, for screen readers too. */
  const projectSwitcher = (session: BrowserSession, current: string) =>
    session.page.getByLabel(`Switch project (current: ${current})`, { exact: true });
  const orgSwitcher = (session: BrowserSession, current: string) =>
    session.page.getByLabel(`Switch organization (current: ${current})`, { exact: true });

  it('opens a new browser on the oldest project, not the newest one', async () => {
    const { page } = browser;
    await page.goto('/');
    await orgSwitcher(browser, 'Northwind').waitFor();
    await projectSwitcher(browser, 'Playground').waitFor();
    await page.getByRole('heading', { level: 1, name: 'Command Deck' }).waitFor();
  });

  it('remembers the project last chosen in each organization, per browser', async () => {
    const { page } = browser;
    await projectSwitcher(browser, 'Playground').click();
    await page.getByRole('button', { name: 'Ops Project' }).click();
    await projectSwitcher(browser, 'Ops Project').waitFor();
    await page.reload();
    await projectSwitcher(browser, 'Ops Project').waitFor();

    // Another organization has its own: its oldest at first, then what was chosen there.
    await orgSwitcher(browser, 'Northwind').click();
    await page.getByRole('button', { name: 'Second Org' }).click();
    await projectSwitcher(browser, 'Alpha').waitFor();
    await projectSwitcher(browser, 'Alpha').click();
    await page.getByRole('button', { name: 'Beta' }).click();
    await projectSwitcher(browser, 'Beta').waitFor();
    // Back in Northwind, Ops Project again (not the newest, Zeta).
    await orgSwitcher(browser, 'Second Org').click();
    await page.getByRole('button', { name: 'Northwind' }).click();
    await projectSwitcher(browser, 'Ops Project').waitFor();

    // Another browser of the same person knows nothing of that choice: the oldest project again.
    const other = await anotherContext(browser, { baseURL: server.url });
    try {
      await signIn(other, server, owner.session);
      await other.page.goto('/');
      await orgSwitcher(other, 'Northwind').waitFor();
      await projectSwitcher(other, 'Playground').waitFor();
    } finally {
      await other.close();
    }
  });

  it('says "no organization" in one wording everywhere', async () => {
    const newcomer = await signUp(server, 'Nemo Newcomer');
    const visitor = await anotherContext(browser, { baseURL: server.url });
    try {
      const { page } = visitor;
      await signIn(visitor, server, newcomer.session);
      const main = page.getByRole('main');
      // A project page (the Command Deck) and an organization page (Members) say the same.
      for (const path of ['/', '/agents', '/members']) {
        await page.goto(path);
        await main.getByRole('heading', { name: NO_ORGANIZATION, exact: true }).waitFor();
        expect(await page.getByText('Create your organization first').count(), path).toBe(0);
      }
      await orgSwitcher(visitor, 'none').click();
      await page.getByText(`${NO_ORGANIZATION}.`, { exact: true }).waitFor();
    } finally {
      await visitor.close();
    }
  });

  it('fits the members table on a phone, keeping each member’s action in view', async () => {
    // A member with a long name and email, the width that used to push Joined and Remove out of the card.
    const member = await signUp(server, 'Bartholomew Featherstonehaugh-Worthington', `bartholomew.featherstonehaugh-${Date.now()}@example.test`);
    const user = await server.rt.prisma.user.findUniqueOrThrow({ where: { email: member.email } });
    await server.rt.prisma.membership.create({ data: { organizationId: fromGlobalId(northwindGid, 'Organization'), userId: user.id, role: 'MEMBER' } });

    const phone = await anotherContext(browser, { baseURL: server.url, viewport: { width: 390, height: 844 } });
    try {
      const { page } = phone;
      await signIn(phone, server, owner.session);
      // Northwind comes first by name, so it is the current organization.
      await page.goto('/members');
      const table = page.getByRole('region', { name: /members/ });
      const row = table.getByRole('row', { name: /Bartholomew/ });
      await row.waitFor();
      const box = table.locator('.scroll-x');
      expect(await box.evaluate((el) => el.scrollWidth - el.clientWidth)).toBeLessThanOrEqual(0);
      // The action stays on screen, and when they joined is still there, under the email.
      const remove = row.getByRole('button', { name: 'Remove' });
      expect(await remove.isVisible()).toBe(true);
      const bounds = (await remove.boundingBox())!;
      expect(bounds.x + bounds.width).toBeLessThanOrEqual(390);
      expect(await row.getByText(/^Joined/).isVisible()).toBe(true);
      expect(await row.getByRole('combobox', { name: /Role of Bartholomew/ }).isVisible()).toBe(true);
      await page.screenshot({ path: `${SCREENSHOTS}/hub-members-phone.png`, fullPage: true });
      expect(phone.errors).toEqual([]);
    } finally {
      await phone.close();
    }
  });

  it('the navigation drawer on a phone keeps Tab out of the dimmed page, and Escape closes it and gives focus back to its button', async () => {
    const phone = await anotherContext(browser, { baseURL: server.url, viewport: { width: 390, height: 844 } });
    try {
      const { page } = phone;
      await signIn(phone, server, owner.session);
      await page.goto('/members');
      const drawer = page.getByRole('navigation', { name: 'Main' });
      // A press before the page's script has taken over opens nothing: press again until the drawer is open.
      const open = page.getByRole('button', { name: 'Open navigation' });
      await expect
        .poll(async () => {
          if ((await open.count()) > 0) await open.click();
          return drawer.getByRole('link', { name: 'Agents' }).isVisible();
        })
        .toBe(true);
      // Tab never leaves the drawer for the dimmed page behind it.
      const lastLink = drawer.getByRole('link').last();
      await lastLink.focus();
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.closest('main') ?? null)).toBeNull();
      expect(await page.locator('#main').getAttribute('inert')).not.toBeNull();
      await drawer.getByRole('link', { name: 'Agents' }).focus();
      await page.keyboard.press('Escape');
      await page.getByRole('button', { name: 'Open navigation' }).waitFor();
      expect(await drawer.isVisible()).toBe(false);
      expect(await page.evaluate(() => document.activeElement?.getAttribute('aria-label'))).toBe('Open navigation');
      expect(await page.locator('#main').getAttribute('inert')).toBeNull();
      expect(phone.errors).toEqual([]);
    } finally {
      await phone.close();
    }
  });

  it('has logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
