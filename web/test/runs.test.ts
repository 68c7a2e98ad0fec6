/// <reference lib="dom" />
// Callbacks given to page.evaluate and waitForFunction run in the browser.
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { signIn, signUp, type Account } from './accounts.js';
import { CREATE_ORG, CREATE_PROJECT, START_RUN } from './operations.js';
import { openBrowser, type BrowserSession, type Page } from './browser.js';

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? '/tmp';

/** A full-page screenshot from the top, so sticky parts of the shell are drawn in place. */
async function screenshot(page: Page, path: string) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path, fullPage: true });
}

/** Letters only: compares streamed text with the final output whatever Markdown did to it in between. */
const letters = (text: string) => text.replace(/[^\p{L}]/gu, '');

/**
 * Records, inside the page, every distinct text the run output's Markdown shows from now on (a
 * MutationObserver sees each update, however busy the machine). Call before navigating to the run
 * page: client-side navigation keeps the document.
 */
async function recordOutput(page: Page): Promise<() => Promise<string[]>> {
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as unknown as { __outputs: string[] }).__outputs = seen;
    const w = window as unknown as { __heading?: Element | null };
    w.__heading = null;
    new MutationObserver(() => {
      const markdown = document.querySelector('[data-testid="run-output"] .markdown');
      const text = markdown?.textContent ?? '';
      if (text && text !== seen.at(-1)) seen.push(text);
      // The heading as shown once later lines have streamed in below it (see the streaming test).
      if (!w.__heading && text.includes('Plan:')) w.__heading = markdown!.querySelector('h5');
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  return () => page.evaluate(() => (window as unknown as { __outputs: string[] }).__outputs);
}

const finalOutput = (page: Page) => page.getByTestId('run-output').locator('.markdown').evaluate((el) => el.textContent ?? '');

describe('agents, runs and live streaming', () => {
  let server: TestServer;
  let browser: BrowserSession;
  let account: Account;
  let projectId: string;
  /** The page of the first run, finished by the time later tests look at it. */
  let firstRunPath: string;
  /** Raw sockets of WebSocket upgrades, so a test can cut them like a network drop would. */
  const upgrades = new Set<Socket>();

  const api = (query: string, variables: Record<string, unknown>) => account.api(query, variables);

  beforeAll(async () => {
    server = await startTestServer({ web: true, env: { OFFLINE_TOKEN_DELAY_MS: '25' } });
    server.server.httpServer.on('upgrade', (_req, socket: Socket) => upgrades.add(socket));

    account = await signUp(server, 'Ada Runner');

    const org = await api(CREATE_ORG, { input: { name: 'Launch Crew' } });
    const project = await api(CREATE_PROJECT, {
      input: { organizationId: org.createOrganization.organization.id, name: 'Website relaunch' },
    });
    projectId = project.createProject.project.id;

    browser = await openBrowser({ baseURL: server.url });
    await signIn(browser, server, account.session);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('shows provider status and a first-agent empty state on the Command Deck', async () => {
    const { page } = browser;
    await page.goto('/');
    await page.getByRole('heading', { level: 1, name: 'Command Deck' }).waitFor();
    await page.getByRole('heading', { name: 'Create your first agent' }).waitFor();

    const providers = page.getByRole('list', { name: 'Provider status' });
    await providers.getByText('Offline (local, deterministic)').waitFor();
    // No API keys in tests: every real provider is marked as such.
    expect(await providers.getByText('Not configured').count()).toBe(4);
    await screenshot(page, `${SCREENSHOTS}/hub-deck-empty.png`);
  });

  it('creates an offline agent, showing field errors from the API first', async () => {
    const { page } = browser;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Agents' }).click();
    await page.getByRole('heading', { name: 'Build your first agent' }).waitFor();
    await page.getByRole('link', { name: 'New agent' }).first().click();
    await page.waitForURL('**/agents/new');

    // The layout's create-organization dialog has fields too: stay inside the page.
    const form = page.getByRole('main');
    // Offline is the default when no provider has a key; the others are visibly unconfigured.
    const offline = form.getByRole('radio', { name: /Offline \(local, deterministic\)/ });
    await offline.waitFor();
    expect(await offline.isChecked()).toBe(true);
    expect(await form.getByRole('radio', { name: /OpenAI.*Not configured/ }).count()).toBe(1);

    await form.getByRole('button', { name: 'Create agent' }).click();
    await form.getByText('Enter a name').waitFor();
    expect(await form.getByLabel('Name', { exact: true }).getAttribute('aria-invalid')).toBe('true');

    await form.getByLabel('Name', { exact: true }).fill('Release planner');
    await form.getByLabel('Description').fill('Turns a goal into a short, reviewed plan.');
    await form.getByLabel('Model', { exact: true }).selectOption('offline-large');
    await form.getByLabel('System prompt').fill('You are a careful release planner. Answer in Markdown.');
    await form.getByRole('button', { name: 'Add fallback' }).click();
    await form.getByLabel('Fallback 1 provider').selectOption('OFFLINE');
    await form.getByLabel('Fallback 1 model').selectOption('offline-small');
    await screenshot(page, `${SCREENSHOTS}/hub-agent-new.png`);

    await page.getByRole('button', { name: 'Create agent' }).click();
    await page.getByRole('heading', { level: 1, name: 'Release planner' }).waitFor();
    expect(page.url()).toMatch(/\/agents\/[^/]+$/);
    await page.getByRole('heading', { name: 'Run this agent' }).waitFor();
    await screenshot(page, `${SCREENSHOTS}/hub-agent-edit.png`);
  });

  it('starts a run from the agents list and streams its tokens live', async () => {
    const { page } = browser;
    await page.goto('/agents');
    const row = page.getByTestId('agent-row').filter({ hasText: 'Release planner' });
    await row.getByText('1 fallback').waitFor();
    await screenshot(page, `${SCREENSHOTS}/hub-agents.png`);

    await row.getByRole('button', { name: 'Run' }).click();
    await page.getByRole('dialog', { name: 'Run Release planner' }).waitFor();
    await page.getByLabel('Prompt').fill('Plan the website relaunch: content migration, redirects and a launch checklist.');
    const outputs = await recordOutput(page);
    await page.getByRole('button', { name: 'Start run' }).click();
    await page.waitForURL('**/runs/**');
    firstRunPath = new URL(page.url()).pathname;

    await page.getByTestId('run-status').getByText('Succeeded').waitFor({ timeout: 20_000 });
    const final = letters(await finalOutput(page));
    const seen = (await outputs()).map(letters);
    // Before the run finished, partial text was on screen and grew; none of it was ever repeated.
    const partial = seen.filter((text) => text.length < final.length);
    expect(partial.length).toBeGreaterThanOrEqual(3);
    partial.forEach((text, i) => i > 0 && expect(text.length).toBeGreaterThan(partial[i - 1]!.length));
    for (const text of seen) expect(final.startsWith(text)).toBe(true);

    // The final output is rendered Markdown, not raw text.
    const output = page.getByTestId('run-output');
    await output.locator('h5', { hasText: 'Offline draft' }).waitFor();
    await output.locator('strong', { hasText: 'Plan:' }).waitFor();
    expect(await output.locator('ol > li').count()).toBe(3);
    expect(await output.innerText()).not.toContain('**');
    // Blocks above the streaming end were not rendered again: the heading shown mid-stream is the same node.
    const sameHeading = await page.evaluate(() => {
      const shown = (window as unknown as { __heading?: Element | null }).__heading;
      return Boolean(shown?.isConnected) && shown === document.querySelector('[data-testid="run-output"] .markdown h5');
    });
    expect(sameHeading).toBe(true);

    // Cost is exact from micro-dollars (the offline provider is free); usage is reported.
    expect(await page.getByTestId('run-cost').innerText()).toBe('$0.00');
    const outputTokens = page.locator('dt', { hasText: 'Output tokens' }).locator('xpath=following-sibling::dd');
    expect(Number((await outputTokens.innerText()).replace(/\D/g, ''))).toBeGreaterThan(10);
    const firstToken = page.locator('dt', { hasText: 'Time to first token' }).locator('xpath=following-sibling::dd');
    expect(await firstToken.innerText()).toMatch(/^\d+(\.\d+)? m?s$/);
    expect(await page.getByRole('button', { name: 'Retry' }).isVisible()).toBe(true);
    expect(await page.getByRole('button', { name: 'Cancel run' }).count()).toBe(0);
    await screenshot(page, `${SCREENSHOTS}/hub-run-succeeded.png`);
  });

  it('resumes a stream after the WebSocket drops, from the last event seen', async () => {
    const { page } = browser;
    const subscribes: { afterSeq: number }[] = [];
    let cut = false;
    page.on('websocket', (ws) => {
      ws.on('framesent', ({ payload }) => {
        const message = JSON.parse(String(payload)) as { type: string; payload?: { operationName?: string; variables?: { afterSeq: number } } };
        if (message.type === 'subscribe' && message.payload?.operationName === 'RunPageEvents') subscribes.push(message.payload.variables!);
      });
      // Drop the connection as soon as the first tokens arrive, in the middle of the stream.
      ws.on('framereceived', ({ payload }) => {
        if (cut || !String(payload).includes('"type":"TOKEN"')) return;
        cut = true;
        for (const socket of upgrades) socket.destroy();
      });
    });

    // Retry starts a new run of the same agent with the same input.
    const outputs = await recordOutput(page);
    const before = page.url();
    await page.getByRole('button', { name: 'Retry' }).click();
    await page.waitForURL((url) => url.href !== before && url.pathname.startsWith('/runs/'));
    await page.getByRole('link', { name: 'the earlier run' }).waitFor();

    // While graphql-ws waits to reconnect, the page holds the partial output of a running run.
    await page.waitForFunction(() => document.querySelector('[data-testid="run-output"] .markdown'));
    if ((await page.getByTestId('run-status').innerText()).trim() === 'Running') {
      await screenshot(page, `${SCREENSHOTS}/hub-run-streaming.png`);
    }

    await page.getByTestId('run-status').getByText('Succeeded').waitFor({ timeout: 30_000 });
    const final = letters(await finalOutput(page));
    expect(cut).toBe(true);
    for (const text of await outputs()) expect(final.startsWith(letters(text))).toBe(true);
    // graphql-ws re-subscribed on a new socket, after the events already shown.
    expect(subscribes.length).toBeGreaterThanOrEqual(2);
    expect(subscribes[0]!.afterSeq).toBe(0);
    expect(subscribes.at(-1)!.afterSeq).toBeGreaterThan(2);
  });

  it('lists runs with a status filter, live updates and Load more', async () => {
    const { page } = browser;
    // Thirty finished runs from earlier, straight into the database, so paging has something to page.
    const prisma = server.rt.prisma;
    const agent = await prisma.agent.findFirstOrThrow({ where: { projectId: fromGlobalId(projectId, 'Project') } });
    const long = Date.now() - 86_400_000;
    await prisma.agentRun.createMany({
      data: Array.from({ length: 30 }, (_, i) => ({
        organizationId: agent.organizationId,
        projectId: agent.projectId,
        agentId: agent.id,
        status: i % 10 === 0 ? ('FAILED' as const) : ('SUCCEEDED' as const),
        input: `Earlier request #${i + 1}`,
        output: 'Done.',
        error: i % 10 === 0 ? 'The provider timed out' : null,
        costMicros: 1_500n,
        createdAt: new Date(long + i * 60_000),
        startedAt: new Date(long + i * 60_000 + 200),
        finishedAt: new Date(long + i * 60_000 + 1_400),
      })),
    });

    await page.goto('/runs');
    await page.getByText('Showing 25 of 32 runs').waitFor();
    expect(await page.getByTestId('run-row').count()).toBe(25);
    // From the keyboard: the button goes away with the last page, and focus moves to the first run it brought.
    await page.getByRole('button', { name: 'Load more' }).focus();
    await page.keyboard.press('Enter');
    await page.getByText('Showing 32 of 32 runs').waitFor();
    expect(await page.getByRole('button', { name: 'Load more' }).count()).toBe(0);
    const twentySixth = await page.getByTestId('run-row').nth(25).getByRole('link').first().getAttribute('href');
    await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute('href'))).toBe(twentySixth);
    expect(await page.getByText('$0.0015').filter({ visible: true }).count()).toBe(30);
    await screenshot(page, `${SCREENSHOTS}/hub-runs.png`);

    await page.getByRole('link', { name: 'Failed', exact: true }).click();
    await page.waitForURL('**/runs?status=failed');
    await page.getByText('Showing 3 of 3 runs').waitFor();

    // Live: a run started elsewhere appears under Active without a reload, and leaves when it ends.
    // Each filter subscribes anew; the badge says the subscription has been sent on an open connection.
    await page.getByRole('link', { name: 'Active', exact: true }).click();
    await page.getByRole('heading', { name: 'No active runs' }).waitFor();
    await page.getByText('Live', { exact: true }).waitFor();
    await api(START_RUN, { input: { agentId: await agentGid(), input: 'A run started from the SDK' } });
    const liveRow = page.getByTestId('run-row').filter({ hasText: 'A run started from the SDK' });
    await liveRow.waitFor();
    await liveRow.waitFor({ state: 'detached', timeout: 20_000 });

    await page.getByRole('link', { name: 'All', exact: true }).click();
    await page
      .getByTestId('run-row')
      .filter({ hasText: 'A run started from the SDK' })
      .getByText('Succeeded')
      .waitFor();
  });

  it('catches up on runs that changed before the live connection was up, and pages on from there', async () => {
    // A second tab whose WebSocket is held back: nothing the server sends reaches it until released,
    // so its subscription is not even sent (graphql-ws waits for the connection's acknowledgement).
    const tab = await browser.page.context().newPage();
    tab.on('pageerror', (err) => browser.errors.push(err.message));
    tab.on('console', (msg) => {
      if (msg.type() === 'error') browser.errors.push(msg.text());
    });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    await tab.routeWebSocket(/\/graphql$/, (ws) => {
      ws.connectToServer().onMessage(async (message) => {
        await held;
        ws.send(message);
      });
    });
    try {
      await tab.goto('/runs');
      await tab.getByText('Showing 25 of 33 runs').waitFor();

      // A run starts and finishes while the tab cannot hear of it.
      const started = await api(START_RUN, { input: { agentId: await agentGid(), input: 'A run the other tab missed' } });
      await expect.poll(() => runStatus(started.startRun.run.id), { timeout: 20_000 }).toBe('SUCCEEDED');
      const row = tab.getByTestId('run-row').filter({ hasText: 'A run the other tab missed' });
      expect(await row.count()).toBe(0);
      expect(await tab.getByText('Live', { exact: true }).count()).toBe(0);

      // Once the subscription is listening, the tab reads again the runs it shows: the missed one is
      // on top, the 25 shown before are all still there, and Load more goes on after the last of them.
      release();
      await tab.getByText('Live', { exact: true }).waitFor();
      await row.getByText('Succeeded').waitFor();
      await tab.getByText('Showing 26 of 34 runs').waitFor();
      await tab.getByRole('button', { name: 'Load more' }).click();
      await tab.getByText('Showing 34 of 34 runs').waitFor();
      const ids = await tab.getByTestId('run-row').evaluateAll((rows) => rows.map((r) => r.querySelector('a')?.getAttribute('href')));
      expect(new Set(ids).size).toBe(34);
      expect(await tab.getByRole('button', { name: 'Load more' }).count()).toBe(0);
    } finally {
      await tab.close();
    }
  });

  it('updates the Command Deck live as runs start and finish', async () => {
    const { page } = browser;
    await page.goto('/');
    await page.getByRole('table', { name: 'Recent runs' }).waitFor();
    await page.getByText('View all 34').waitFor();
    await page.getByText('Live', { exact: true }).waitFor();

    await api(START_RUN, { input: { agentId: await agentGid(), input: 'Deck check: summarise the launch risks' } });
    const row = page.getByTestId('run-row').filter({ hasText: 'Deck check' });
    await row.waitFor();
    await row.getByText('Succeeded').waitFor({ timeout: 20_000 });
    await page.getByText('View all 35').waitFor();
    await screenshot(page, `${SCREENSHOTS}/hub-deck.png`);
  });

  it("starts the output over when the run's worker stops responding and another claim takes the run", async () => {
    const { page } = browser;
    const prisma = server.rt.prisma;
    const started = await api(START_RUN, { input: { agentId: await agentGid(), input: 'Takeover check: list the launch tasks' } });
    const runId = fromGlobalId(started.startRun.run.id as string, 'Run');
    await page.goto(`/runs/${toGlobalId('Run', runId)}`);
    const outputs = await recordOutput(page);
    // Some tokens are out, then the worker goes silent past its lease and the sweep queues the run again.
    await expect.poll(async () => (await prisma.agentRun.findUniqueOrThrow({ where: { id: runId } })).lastSeq, { timeout: 10_000, interval: 5 }).toBeGreaterThanOrEqual(5);
    await prisma.agentRun.update({ where: { id: runId }, data: { leaseOwner: 'worker-gone', leaseExpiresAt: new Date(Date.now() - 1_000) } });
    await server.rt.orchestrator.recover(); // (or the server's own sweep, if it came first)

    const notice = page.getByTestId('run-restarted');
    await notice.getByText(/Started over as attempt 2: Worker worker-gone stopped responding; retrying\./).waitFor({ timeout: 20_000 });
    expect(await notice.innerText()).toMatch(/The \d+ characters streamed before are not part of the output\./);
    await page.getByTestId('run-status').getByText('Succeeded').waitFor({ timeout: 20_000 });
    await screenshot(page, `${SCREENSHOTS}/hub-run-restarted.png`);
    // What was on screen was always the start of the output: never the first attempt's text with the second's after it.
    const final = letters(await finalOutput(page));
    const seen = (await outputs()).map(letters);
    expect(seen.length).toBeGreaterThanOrEqual(2);
    for (const text of seen) expect(final.startsWith(text)).toBe(true);
    expect(await prisma.agentRun.findUniqueOrThrow({ where: { id: runId } })).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });

    // Opened later, the finished run still says that it started over (from its STATUS events).
    await page.reload();
    await page.getByTestId('run-status').getByText('Succeeded').waitFor();
    await notice.getByText(/Started over as attempt 2: Worker worker-gone stopped responding; retrying\./).waitFor({ timeout: 10_000 });
    // What streamed before is not known here, so not counted.
    expect(await notice.innerText()).not.toContain('characters');
  });

  it('explains a run blocked by a budget, with exact amounts', async () => {
    const { page } = browser;
    const prisma = server.rt.prisma;
    const agent = await prisma.agent.findFirstOrThrow({ where: { projectId: fromGlobalId(projectId, 'Project') } });
    const denial = {
      code: 'BUDGET_EXCEEDED',
      message: 'Monthly budget would be exceeded',
      period: 'MONTHLY',
      projectId: null,
      limitMicros: '5000000',
      spentMicros: '4990000',
      reservedMicros: '2500',
      requestedMicros: '20480',
      resetsAt: '2026-12-01T00:00:00.000Z',
    };
    const run = await prisma.agentRun.create({
      data: {
        organizationId: agent.organizationId,
        projectId: agent.projectId,
        agentId: agent.id,
        status: 'BLOCKED',
        input: 'Write the launch announcement',
        error: denial.message,
        errorCode: 'BUDGET_EXCEEDED',
        attempts: 1,
        lastSeq: 4,
        startedAt: new Date(),
        finishedAt: new Date(),
        events: {
          create: [
            { seq: 1, type: 'STATUS', payload: { status: 'QUEUED' } },
            { seq: 2, type: 'STATUS', payload: { status: 'RUNNING', attempt: 1 } },
            { seq: 3, type: 'ERROR', payload: denial },
            { seq: 4, type: 'STATUS', payload: { status: 'BLOCKED', error: denial.message, errorCode: 'BUDGET_EXCEEDED' } },
          ],
        },
      },
    });

    await page.goto(`/runs/${encodeURIComponent(toGlobalId('Run', run.id))}`);
    const alert = page.getByRole('alert').filter({ hasText: 'Blocked by a budget' });
    await alert.getByText('The monthly budget of this organization would have been exceeded').waitFor();
    for (const amount of ['$5.00', '$4.99', '$0.0025', '$0.02048']) await alert.getByText(amount, { exact: true }).waitFor();
    expect(await page.getByTestId('run-status').innerText()).toBe('Blocked');
    expect(await page.getByRole('button', { name: 'Retry' }).isVisible()).toBe(true);
    await screenshot(page, `${SCREENSHOTS}/hub-run-blocked.png`);
  });

  it('renders a finished run in dark mode on a phone', async () => {
    const phone = await openBrowser({ baseURL: server.url, colorScheme: 'dark', viewport: { width: 390, height: 844 } });
    try {
      await signIn(phone, server, account.session);
      await phone.page.goto(firstRunPath);
      await phone.page.getByTestId('run-output').locator('h5', { hasText: 'Offline draft' }).waitFor();
      await screenshot(phone.page, `${SCREENSHOTS}/hub-run-dark-phone.png`);
      expect(phone.errors).toEqual([]);
    } finally {
      await phone.close();
    }
  });

  it('fits a phone: the agent page with a one-word 100-character name and a long run title scrolls only downwards', async () => {
    const id = await agentGid();
    const description = 'Runbook: https://wiki.example.com/teams/platform/agents/summarizer/runbooks/2026-q4-release-checklist-and-escalations';
    const renamed = await api(`mutation ($input: UpdateAgentInput!) { updateAgent(input: $input) { __typename } }`, {
      input: { id, name: 'Summarizer'.repeat(10), description },
    });
    expect(renamed.updateAgent.__typename).toBe('UpdateAgentPayload');
    const started = await api(START_RUN, { input: { agentId: id, input: 'Unbreakable'.repeat(40) } });
    await expect.poll(() => runStatus(started.startRun.run.id), { timeout: 20_000 }).toBe('SUCCEEDED');
    const overflow = (page: Page) =>
      page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);

    const phone = await openBrowser({ baseURL: server.url, viewport: { width: 390, height: 844 } });
    try {
      await signIn(phone, server, account.session);
      await phone.page.goto(`/agents/${encodeURIComponent(id)}`);
      await phone.page.getByRole('heading', { level: 1, name: 'Summarizer'.repeat(10) }).waitFor();
      await phone.page.getByText('UnbreakableUnbreakable').first().waitFor();
      await phone.page.getByText(description).waitFor();
      expect(await overflow(phone.page)).toBe(0);
      await screenshot(phone.page, `${SCREENSHOTS}/hub-agent-phone.png`);
      // The name again, in the run page's description and details, and in the Runs page's when filtered by the agent.
      await phone.page.goto(`/runs/${encodeURIComponent(started.startRun.run.id as string)}`);
      await phone.page.getByTestId('run-status').getByText('Succeeded').waitFor();
      expect(await overflow(phone.page)).toBe(0);
      await phone.page.goto(`/runs?agent=${encodeURIComponent(id)}`);
      await phone.page.getByTestId('run-row').first().waitFor();
      expect(await overflow(phone.page)).toBe(0);

      // The runs table fits a phone: no sideways scrolling, and each row's cost, duration and age read in its Run cell.
      await phone.page.goto('/runs');
      const box = phone.page.locator('.scroll-x').first();
      const row = box.getByTestId('run-row').first();
      await row.waitFor();
      expect(await box.evaluate((el) => el.scrollWidth - el.clientWidth)).toBeLessThanOrEqual(0);
      expect(await overflow(phone.page)).toBe(0);
      expect(await box.getByRole('columnheader').allInnerTexts()).toEqual(['Status', 'Run']);
      const figures = row.getByTestId('run-figures');
      expect(await figures.isVisible()).toBe(true);
      expect((await figures.innerText()).replace(/\s+/g, ' ')).toMatch(/^(Cost )?\$[\d.,]+ · (Duration )?[\d.]+ m?s · \S.*$/);
      expect(await figures.evaluate((el) => el.getBoundingClientRect().right)).toBeLessThanOrEqual(390);
      await screenshot(phone.page, `${SCREENSHOTS}/hub-runs-phone.png`);
      // No room for the project switcher in a phone's header: it heads the navigation drawer.
      expect(await phone.page.getByLabel('Switch project').isVisible()).toBe(false);
      await phone.page.getByRole('button', { name: 'Open navigation' }).click();
      const drawer = phone.page.getByRole('navigation', { name: 'Main' });
      await drawer.getByLabel('Switch project').click();
      await drawer.getByText('Projects in').waitFor();
      await screenshot(phone.page, `${SCREENSHOTS}/hub-drawer-projects-phone.png`);
      expect(phone.errors).toEqual([]);
    } finally {
      await phone.close();
    }
    // The same name on a desktop: the title wraps instead of widening the page.
    await browser.page.goto(`/agents/${encodeURIComponent(id)}`);
    await browser.page.getByRole('heading', { level: 1, name: 'Summarizer'.repeat(10) }).waitFor();
    expect(await overflow(browser.page)).toBe(0);
    // On a desktop the runs table keeps its columns, and the figures they hold are not repeated in the Run cell.
    await browser.page.goto('/runs');
    await browser.page.getByTestId('run-row').first().waitFor();
    expect(await browser.page.getByRole('columnheader').allInnerTexts()).toEqual(['Status', 'Run', 'Model', 'Tokens', 'Cost', 'Duration', 'Created']);
    expect(await browser.page.getByTestId('run-figures').first().isVisible()).toBe(false);
  });

  it('logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });

  /** A run's status as the API reports it now. */
  async function runStatus(id: string): Promise<string> {
    const result = await api(/* GraphQL */ `query ($id: ID!) { run(id: $id) { status } }`, { id });
    return result.run.status;
  }

  /** The agent's global id, as the API and the UI know it. */
  async function agentGid(): Promise<string> {
    const result = await api(
      /* GraphQL */ `query ($id: ID!) { project(id: $id) { agents(first: 1) { edges { node { id } } } } }`,
      { id: projectId },
    );
    return result.project.agents.edges[0].node.id;
  }
});
