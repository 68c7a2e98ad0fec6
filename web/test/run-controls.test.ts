/// <reference lib="dom" />
// Callbacks given to page.evaluate and waitForFunction run in the browser.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { aTeamWithAnAgent, finishedRun as finishedRunOf, signedInBrowser, signUp, type Account } from './accounts.js';
import { anotherContext, type BrowserSession } from './browser.js';
import { START_RUN } from './operations.js';

// The Run page's own controls, as an impatient person uses them.

describe('the Run page controls', { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let account: Account;
  let agentId: string;

  const api = (query: string, variables: Record<string, unknown>) => account.api(query, variables);

  const finishedRun = (input: string) => finishedRunOf(account, agentId, input);

  beforeAll(async () => {
    server = await startTestServer({ web: true, env: { OFFLINE_TOKEN_DELAY_MS: '5' } });
    ({ account, agentId } = await aTeamWithAnAgent(server, { person: 'Ivy Impatient', org: 'Impatient Crew', project: 'Clicks', agent: 'Clicker' }));
    browser = await signedInBrowser(server, account.session);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('Retry pressed twice before the new run opens starts one run, not two', async () => {
    const { page } = browser;
    const runId = await finishedRun('Retry me once');
    await page.goto(`/runs/${encodeURIComponent(runId)}`);
    const retry = page.getByRole('button', { name: 'Retry' });
    await retry.waitFor();
    const before = page.url();
    await retry.dblclick();
    await page.waitForURL((url) => url.href !== before && url.pathname.startsWith('/runs/'));
    await page.getByRole('link', { name: 'the earlier run' }).waitFor();
    // Let a second request, had one been sent, be answered.
    await page.waitForTimeout(500);
    const retries = await server.rt.prisma.agentRun.count({ where: { parentRunId: fromGlobalId(runId, 'Run') } });
    expect(retries).toBe(1);
  });

  it('Cancel run pressed from the keyboard hands focus to Retry, which takes its place, rather than dropping it on the page', async () => {
    const { page } = browser;
    // A run without a queue job: no worker picks it up, so it waits to be cancelled.
    const agent = await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: fromGlobalId(agentId, 'Agent') } });
    const run = await server.rt.prisma.agentRun.create({
      data: { organizationId: agent.organizationId, projectId: agent.projectId, agentId: agent.id, status: 'QUEUED', input: 'Cancel me' },
    });
    await page.goto(`/runs/${encodeURIComponent(toGlobalId('Run', run.id))}`);
    await page.getByRole('button', { name: 'Cancel run' }).focus();
    await page.keyboard.press('Enter');
    await page.getByTestId('run-status').getByText('Cancelled').waitFor();
    await expect.poll(() => page.evaluate(() => (document.activeElement as HTMLElement | null)?.innerText.trim().slice(0, 40))).toBe('Retry');
  });

  it('names who started a run, and once it is cancelled, who cancelled it', async () => {
    const { page } = browser;
    const agent = await server.rt.prisma.agent.findUniqueOrThrow({ where: { id: fromGlobalId(agentId, 'Agent') } });
    const colleague = await signUp(server, 'Quinn Queuer');
    const starter = await server.rt.prisma.user.findUniqueOrThrow({ where: { email: colleague.email } });
    const run = await server.rt.prisma.agentRun.create({
      data: { organizationId: agent.organizationId, projectId: agent.projectId, agentId: agent.id, status: 'QUEUED', input: 'Who?', createdById: starter.id },
    });
    await page.goto(`/runs/${encodeURIComponent(toGlobalId('Run', run.id))}`);
    const details = page.getByRole('region', { name: 'Details' });
    const value = (label: string) => details.locator('div', { has: page.locator('dt', { hasText: label }) }).locator('dd');
    await value('Started by').getByText('Quinn Queuer').waitFor();
    expect(await details.getByText('Cancelled by').count()).toBe(0);
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await page.getByTestId('run-status').getByText('Cancelled').waitFor();
    await value('Cancelled by').getByText('Ivy Impatient').waitFor();
  });

  it("tells a screen reader the run's status as it changes: the status sits in a live region from the start", async () => {
    const { page } = browser;
    const started = await api(START_RUN, { input: { agentId, input: 'Tell me when you are done' } });
    await page.goto(`/runs/${encodeURIComponent(started.startRun.run.id as string)}`);
    const status = page.getByTestId('run-status');
    await status.waitFor();
    // The region is there before the change it announces (a live region added with its text says nothing).
    expect(await status.getAttribute('role')).toBe('status');
    await page.getByRole('status').filter({ hasText: 'Succeeded' }).waitFor({ timeout: 20_000 });
  });

  it('Copy says when the browser offers no clipboard (a page served over plain http), instead of failing silently', async () => {
    const runId = await finishedRun('Copy me');
    const session = await anotherContext(browser, { baseURL: server.url });
    try {
      const { page } = session;
      await page.context().addCookies([{ name: 'hub_session', value: account.session, url: server.url, httpOnly: true }]);
      // Outside a secure context (http on another host than localhost) browsers have no navigator.clipboard.
      await page.addInitScript(() => Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined }));
      await page.goto(`/runs/${encodeURIComponent(runId)}`);
      await page.getByRole('button', { name: 'Copy' }).click();
      await page.getByRole('alert').getByText('Your browser blocked the clipboard').waitFor();
      expect(session.errors).toEqual([]);
    } finally {
      await session.close();
    }
  });

  it('says "Output copied" to a screen reader when Copy worked', async () => {
    const { page } = browser;
    const runId = await finishedRun('Copy me too');
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
    await page.goto(`/runs/${encodeURIComponent(runId)}`);
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.getByRole('status').getByText('Output copied').waitFor();
  });

  it('logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
