/// <reference lib="dom" />
// Callbacks given to page.evaluate and waitForFunction run in the browser.
import type { Locator } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { aTeamWithAnAgent, finishedRun, signedInBrowser, type Account } from './accounts.js';
import type { BrowserSession, Page } from './browser.js';
import { RETRY_RUN, START_RUN } from './operations.js';

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

// The lineage where it changes without a reload: the Runs list and the original's Run page learn of a retry
// started anywhere else (another tab, a colleague, the SDK) from the project's run updates, and the Run page
// follows the retry's status as it goes.
describe('the retry lineage, live', { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let account: Account;
  let agentId: string;
  /** Operation names of the subscriptions the page sent, and the text of every message it received. */
  const subscribed: string[] = [];
  const received: string[] = [];

  beforeAll(async () => {
    // No worker until a test starts one: a retry waits QUEUED until then, so each step can be watched.
    server = await startTestServer({ web: true, worker: false, env: { OFFLINE_TOKEN_DELAY_MS: '5' } });
    ({ account, agentId } = await aTeamWithAnAgent(server, { person: 'Lior Lineage', org: 'Live Lines', project: 'Lineage', agent: 'Redo' }));
    browser = await signedInBrowser(server, account.session);
    browser.page.on('websocket', (ws) => {
      ws.on('framesent', ({ payload }) => {
        const message = JSON.parse(String(payload)) as { type: string; payload?: { operationName?: string } };
        if (message.type === 'subscribe' && message.payload?.operationName) subscribed.push(message.payload.operationName);
      });
      ws.on('framereceived', ({ payload }) => void received.push(String(payload)));
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** A run of the agent that failed a minute ago, stored as a worker leaves one; its global id. */
  async function failedRun(input: string): Promise<string> {
    const agent = await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: fromGlobalId(agentId, 'Agent') } });
    const at = Date.now() - 60_000;
    const run = await server.rt.prisma.agentRun.create({
      data: {
        organizationId: agent.organizationId,
        projectId: agent.projectId,
        agentId: agent.id,
        status: 'FAILED',
        input,
        error: 'The provider did not answer in time',
        attempts: 1,
        createdAt: new Date(at),
        startedAt: new Date(at + 100),
        finishedAt: new Date(at + 900),
      },
    });
    return toGlobalId('Run', run.id);
  }

  const retryThroughTheApi = async (id: string) => (await account.api(RETRY_RUN, { id })).retryRun.run.id as string;
  const path = (id: string) => `/runs/${encodeURIComponent(id)}`;
  /** An element's text, its words one space apart (as the eye reads it, whatever the layout's line breaks). */
  const words = (locator: Locator) => locator.evaluate((el) => (el.textContent ?? '').replace(/\s+/g, ' ').trim());

  it('links a retried run and its retry both ways in the Runs list, and the original learns of a retry started elsewhere without a reload', async () => {
    const { page } = browser;
    const original = await failedRun('Reconcile the ledger');
    const rows = page.getByTestId('run-row');
    /** The row of a run: the one whose own link (named by its input) leads to it. */
    const rowOf = (id: string) => rows.filter({ has: page.locator(`a[href="${path(id)}"]`, { hasText: 'Reconcile the ledger' }) });

    await page.goto('/runs');
    await page.getByText('Live', { exact: true }).waitFor();
    await rowOf(original).waitFor();
    expect(await rows.getByTestId('run-lineage').count()).toBe(0);
    await page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));

    const retry = await retryThroughTheApi(original);
    // The original's row names its retry, and how that is going, in words beside the icon.
    const retriedAs = rowOf(original).getByTestId('run-lineage');
    await retriedAs.getByRole('link', { name: 'the retry' }).waitFor();
    expect(await words(retriedAs)).toBe('Retried as the retry · Queued');
    expect(await retriedAs.getByRole('link').getAttribute('href')).toBe(path(retry));
    // The retry's own row comes on top and names the run it retries.
    await rowOf(retry).waitFor();
    expect(await rows.first().getByRole('link', { name: 'Reconcile the ledger' }).getAttribute('href')).toBe(path(retry));
    const retryOf = rowOf(retry).getByTestId('run-lineage');
    expect(await words(retryOf)).toBe('Retry of the earlier run');
    expect(await retryOf.getByRole('link').getAttribute('href')).toBe(path(original));
    expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument === true)).toBe(true);

    // Read afresh, the list says the same.
    await page.reload();
    await rowOf(retry).getByTestId('run-lineage').getByRole('link', { name: 'the earlier run' }).waitFor();
    expect(await rowOf(original).getByTestId('run-lineage').getByRole('link', { name: 'the retry' }).getAttribute('href')).toBe(path(retry));

    // The link goes where it says.
    await rowOf(original).getByRole('link', { name: 'the retry' }).click();
    await page.waitForURL((url) => url.pathname === path(retry));
    await detail(page, 'Retry of').getByRole('link', { name: 'the earlier run' }).waitFor();
    expect(browser.errors).toEqual([]);
  });

  it("the original's Run page learns of a retry started elsewhere and follows the retry's status live", async () => {
    const { page } = browser;
    const original = await failedRun('Rebuild the index');
    await page.goto(path(original));
    await page.getByRole('button', { name: 'Retry', exact: true }).waitFor();
    expect(await detail(page, 'Retried as').count()).toBe(0);
    await expect.poll(() => subscribed.includes('RunPageRetryUpdates')).toBe(true);
    // Once another run's update reaches the page, the API listens for it: the retry's will not be missed.
    const probe = (await account.api(START_RUN, { input: { agentId, input: 'A run to show the page listens' } })).startRun.run.id as string;
    await expect.poll(() => received.some((text) => text.includes(probe))).toBe(true);

    // Every status the Retried as row shows from now on, in order.
    await page.evaluate(() => {
      const shown: string[] = [];
      (window as unknown as { __retryShown: string[] }).__retryShown = shown;
      new MutationObserver(() => {
        const dt = [...document.querySelectorAll('dt')].find((el) => el.textContent?.trim() === 'Retried as');
        const text = dt?.nextElementSibling?.textContent?.replace(/\s+/g, ' ').trim();
        if (text && text !== shown.at(-1)) shown.push(text);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });

    const retry = await retryThroughTheApi(original);
    await detail(page, 'Retried as').getByText('Queued').waitFor();
    expect(await detail(page, 'Retried as').getByRole('link', { name: 'the retry' }).getAttribute('href')).toBe(path(retry));
    // Retrying again would only answer that retry: the action now leads to it.
    expect(await page.getByRole('link', { name: 'Open retry' }).getAttribute('href')).toBe(path(retry));
    expect(await page.getByRole('button', { name: 'Retry', exact: true }).count()).toBe(0);

    await server.rt.orchestrator.startWorker();
    await detail(page, 'Retried as').getByText('Succeeded').waitFor({ timeout: 20_000 });
    expect(await page.evaluate(() => (window as unknown as { __retryShown: string[] }).__retryShown)).toEqual([
      'the retry Queued',
      'the retry Running',
      'the retry Succeeded',
    ]);
    // The original itself is as it was.
    expect(await page.getByTestId('run-status').innerText()).toBe('Failed');
    expect(browser.errors).toEqual([]);
  });

  it('hands focus from Retry to the Open retry that replaces it when a retry started elsewhere arrives, and takes it from nothing else', async () => {
    const { page } = browser;
    /** The focused element's text, or BODY when focus was dropped. */
    const focused = () =>
      page.evaluate(() => (!document.activeElement || document.activeElement === document.body ? 'BODY' : (document.activeElement as HTMLElement).innerText.trim()));
    /** The original's page, listening for its retry (as the test above makes sure). */
    async function openListening(input: string) {
      const original = await failedRun(input);
      subscribed.length = 0;
      await page.goto(path(original));
      await page.getByRole('button', { name: 'Retry', exact: true }).waitFor();
      await expect.poll(() => subscribed.includes('RunPageRetryUpdates')).toBe(true);
      const probe = (await account.api(START_RUN, { input: { agentId, input: 'A run to show the page listens' } })).startRun.run.id as string;
      await expect.poll(() => received.some((text) => text.includes(probe))).toBe(true);
      return original;
    }

    const original = await openListening('Sort the inbox');
    await page.getByRole('button', { name: 'Retry', exact: true }).focus();
    const retry = await retryThroughTheApi(original);
    const open = page.getByRole('link', { name: 'Open retry' });
    await open.waitFor();
    expect(await open.getAttribute('href')).toBe(path(retry));
    await expect.poll(focused).toBe('Open retry');

    // Focus somewhere else on the page stays where it is.
    const other = await openListening('Sort the outbox');
    const runsCrumb = page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'Runs' });
    await runsCrumb.focus();
    await retryThroughTheApi(other);
    await open.waitFor();
    await page.waitForTimeout(300);
    expect(await runsCrumb.evaluate((el) => el === document.activeElement)).toBe(true);
    expect(browser.errors).toEqual([]);
  });
});
