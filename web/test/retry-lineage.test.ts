/// <reference lib="dom" />
// Callbacks given to page.evaluate and waitForFunction run in the browser.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { aTeamWithAnAgent, finishedRun, signedInBrowser, type Account } from './accounts.js';
import type { BrowserSession, Page } from './browser.js';

// A run and its retry name each other on the Run page, so whoever comes back to a run they retried finds
// the retry (and how it went) instead of pressing Retry and being handed the same retry without a word.

/** The value of a row of the Run page's Details. */
const detail = (page: Page, label: string) =>
  page.getByRole('region', { name: 'Details' }).locator('dt', { hasText: new RegExp(`^${label}$`) }).locator('xpath=following-sibling::dd');

describe('the retry lineage on the Run page', { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let account: Account;
  let agentId: string;

  beforeAll(async () => {
    server = await startTestServer({ web: true, env: { OFFLINE_TOKEN_DELAY_MS: '5' } });
    ({ account, agentId } = await aTeamWithAnAgent(server, { person: 'Rhea Retrier', org: 'Second Tries', project: 'Lineage', agent: 'Again' }));
    browser = await signedInBrowser(server, account.session);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('Retry opens the retry, which links back; the original then links to its retry, with its status, and Open retry starts nothing new', async () => {
    const { page } = browser;
    const original = await finishedRun(account, agentId, 'Plan the offsite');
    const originalPath = `/runs/${encodeURIComponent(original)}`;

    await page.goto(originalPath);
    await detail(page, 'Started by').waitFor();
    expect(await detail(page, 'Retried as').count()).toBe(0);
    expect(await detail(page, 'Retry of').count()).toBe(0);
    // Client-side navigation from here on: a full reload would lose this.
    await page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));
    const sameDocument = () => page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument === true);

    await page.getByRole('button', { name: 'Retry', exact: true }).click();
    await page.waitForURL((url) => url.pathname.startsWith('/runs/') && url.pathname !== originalPath);
    const retryPath = new URL(page.url()).pathname;
    const retry = decodeURIComponent(retryPath.slice('/runs/'.length));
    const stored = await server.rt.prisma.agentRun.findMany({ where: { parentRunId: fromGlobalId(original, 'Run') }, select: { id: true } });
    expect(stored).toEqual([{ id: fromGlobalId(retry, 'Run') }]);
    // The retry names the run it retries, and how that went.
    await detail(page, 'Retry of').getByRole('link', { name: 'the earlier run' }).waitFor();
    await detail(page, 'Retry of').getByText('Succeeded').waitFor();
    await page.getByTestId('run-status').getByText('Succeeded').waitFor({ timeout: 20_000 });
    // Not yet retried itself: it can be, as any run (its Retry comes with the finished run, read again once the
    // stream says it ended, a moment after the status badge).
    await page.getByRole('button', { name: 'Retry', exact: true }).waitFor();
    expect(await detail(page, 'Retried as').count()).toBe(0);

    // Back to the original through the link: it names its retry, with the retry's status.
    await detail(page, 'Retry of').getByRole('link', { name: 'the earlier run' }).click();
    await page.waitForURL((url) => url.pathname === originalPath);
    await detail(page, 'Retried as').getByRole('link', { name: 'the retry' }).waitFor();
    await detail(page, 'Retried as').getByText('Succeeded').waitFor();
    // Its action now says where it leads: retrying it again would only answer that same retry.
    expect(await page.getByRole('button', { name: 'Retry', exact: true }).count()).toBe(0);
    const open = page.getByRole('link', { name: 'Open retry' });
    expect(await open.getAttribute('href')).toBe(retryPath);

    await open.click();
    await page.waitForURL((url) => url.pathname === retryPath);
    await detail(page, 'Retry of').getByRole('link', { name: 'the earlier run' }).click();
    await page.waitForURL((url) => url.pathname === originalPath);
    await detail(page, 'Retried as').getByRole('link', { name: 'the retry' }).click();
    await page.waitForURL((url) => url.pathname === retryPath);
    await detail(page, 'Retry of').waitFor();

    expect(await sameDocument()).toBe(true);
    expect(await server.rt.prisma.agentRun.count({ where: { parentRunId: fromGlobalId(original, 'Run') } })).toBe(1);
    expect(browser.errors).toEqual([]);
  });
});
