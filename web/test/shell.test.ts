import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usingPostgres } from '../../api/test/db.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { signIn, signUp } from './accounts.js';
import { openBrowser, type BrowserSession } from './browser.js';

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? '/tmp';

describe('web shell', () => {
  let server: TestServer;
  let browser: BrowserSession;

  beforeAll(async () => {
    server = await startTestServer({ web: true });
    browser = await openBrowser({ baseURL: server.url });
    // A signed-in newcomer with no organization yet: the shell, not the sign-in redirect, is under test.
    await signIn(browser, server, (await signUp(server, 'Shell', 'shell@example.com')).session);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('renders the app shell with the main navigation', async () => {
    const { page } = browser;
    const response = await page.goto('/');
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self' 'nonce-");

    const nav = page.getByRole('navigation', { name: 'Main' });
    for (const label of ['Command Deck', 'Agents', 'Runs', 'Memory', 'Budgets & Usage', 'Integrations', 'Members', 'API tokens', 'Audit log', 'Health']) {
      await expect(nav.getByRole('link', { name: label, exact: true }).count()).resolves.toBe(1);
    }
    expect(await nav.getByRole('link', { name: 'Command Deck' }).getAttribute('aria-current')).toBe('page');
    await page.getByRole('heading', { level: 1, name: 'Command Deck' }).waitFor();
    await page.getByText('No organization').first().waitFor();
    await page.screenshot({ path: `${SCREENSHOTS}/hub-shell-home.png`, fullPage: true });
  });

  it('shows live health data from the API on /health', async () => {
    const { page } = browser;
    // Client-side navigation: the page fetches `health` over POST /graphql from the browser.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Health' }).click();
    await page.waitForURL('**/health');
    await page.getByRole('heading', { level: 1, name: 'Health' }).waitFor();

    await page.getByText('Healthy', { exact: true }).waitFor();
    await page.getByText(usingPostgres() ? 'PostgreSQL' : 'PGlite', { exact: true }).waitFor();
    await page.getByText(/Updated (just now|\d+s ago)/).waitFor();
    await page.screenshot({ path: `${SCREENSHOTS}/hub-shell-health.png`, fullPage: true });
  });

  it('renders a coming-soon page for sections not built yet', async () => {
    const { page } = browser;
    const response = await page.goto('/memory');
    expect(response?.status()).toBe(200);
    await page.getByRole('heading', { level: 1, name: 'Memory' }).waitFor();
    await page.getByText('Coming soon').waitFor();
  });

  it('has logged no console errors, hydration warnings or page errors so far', () => {
    expect(browser.errors).toEqual([]);
  });

  it('answers unknown addresses with a friendly 404 inside the shell', async () => {
    const { page } = browser;
    const response = await page.goto('/no-such-page');
    expect(response?.status()).toBe(404);
    await page.getByRole('heading', { name: 'Page not found' }).waitFor();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
  });

  it("says a page whose code could not be fetched (the server out of reach) could not be loaded, not 'Internal Error', and reloads it", async () => {
    const { page } = browser;
    await page.goto('/health');
    await page.getByRole('heading', { level: 1, name: 'Health' }).waitFor();
    // The server stops answering before the Agents page's code was ever fetched.
    await page.route('**/_app/immutable/nodes/**', (route) => route.abort('connectionrefused'));
    try {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Agents' }).click();
      await page.getByText('This page could not be loaded: the server did not answer.', { exact: false }).waitFor();
      expect(await page.getByText('Internal Error').count()).toBe(0);
    } finally {
      await page.unroute('**/_app/immutable/nodes/**');
    }
    // Back: trying again loads the page.
    await page.getByRole('link', { name: 'Try again' }).click();
    await page.getByRole('heading', { level: 1, name: 'Agents' }).waitFor();
  });
});
