/// <reference lib="dom" />
// Callbacks given to page.evaluate and waitForFunction run in the browser.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { aTeamWithAnAgent, signIn, type Account } from './accounts.js';
import { openBrowser, type BrowserSession, type Page } from './browser.js';
import { START_RUN } from './operations.js';

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? '/tmp';

// What the Run page tells about how a run went: the provider that actually streams (a fallback when the
// agent's own provider has no key), what it used when it was cancelled, and why it cannot be retried.

const ARCHIVE_AGENT = /* GraphQL */ `
  mutation ($id: ID!) { archiveAgent(input: { id: $id }) { __typename } }
`;

/** The value of a row of the Run page's side panels (Details, Usage and cost). */
const detail = (page: Page, label: string) => page.locator('dt', { hasText: new RegExp(`^${label}$`) }).locator('xpath=following-sibling::dd');

describe('the Run page tells how a run went', () => {
  let server: TestServer;
  let browser: BrowserSession;
  let account: Account;
  let agentId: string;

  const api = (query: string, variables: Record<string, unknown>) => account.api(query, variables);
  const runPath = (id: string) => `/runs/${encodeURIComponent(id)}`;

  async function startRun(input: string): Promise<string> {
    const started = await api(START_RUN, { input: { agentId, input } });
    expect(started.startRun.__typename).toBe('StartRunPayload');
    return started.startRun.run.id;
  }

  beforeAll(async () => {
    // No provider keys: OpenAI is unconfigured. Tokens slow enough to watch a run stream and to cancel it.
    server = await startTestServer({ web: true, env: { OFFLINE_TOKEN_DELAY_MS: '60' } });
    ({ account, agentId } = await aTeamWithAnAgent(server, {
      person: 'Fay Fallback',
      org: 'Fallback Crew',
      project: 'Fallbacks',
      agent: 'Fallback planner',
      agentInput: { provider: 'OPENAI', model: 'gpt-5', maxOutputTokens: 400, fallbackChain: [{ provider: 'OFFLINE', model: 'offline-large' }] },
    }));
    browser = await openBrowser({ baseURL: server.url });
    await signIn(browser, server, account.session);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('names the fallback that streams, and says the primary was skipped, while it runs and after', async () => {
    const { page } = browser;
    const runId = await startRun('Plan the relaunch on whatever provider is there');
    await page.goto(runPath(runId));

    const story = page.getByTestId('run-story');
    await story.getByText('OpenAI · gpt-5 skipped: not configured (no OPENAI_API_KEY)').waitFor();
    await story.getByText('Fallback 1: Offline · offline-large').waitFor();
    // While it streams, the header names the model streaming, not the agent's unconfigured primary.
    const header = page.getByText(/^Fallback planner · /);
    const whileRunning = await page.waitForFunction(() => {
      const status = document.querySelector('[data-testid="run-status"]')?.textContent?.trim();
      const caption = document.querySelector('h1 + p')?.textContent?.trim();
      return status === 'Running' && document.querySelector('[data-testid="run-output"] .markdown') ? caption : undefined;
    });
    expect(await whileRunning.jsonValue()).toBe('Fallback planner · Offline · offline-large (fallback 1)');
    expect(await detail(page, 'Model').innerText()).toBe('offline-large');

    await page.getByTestId('run-status').getByText('Succeeded').waitFor({ timeout: 30_000 });
    expect(await header.innerText()).toBe('Fallback planner · Offline · offline-large (fallback 1)');
    expect(await detail(page, 'Provider').innerText()).toBe('Offline\nfallback 1');
    expect(await detail(page, 'Attempts').innerText()).toBe('1\n1 skipped');
    expect(await page.getByTestId('run-usage-source').innerText()).toBe('Reported by the provider, every attempt included');
    await page.screenshot({ path: `${SCREENSHOTS}/hub-run-fallback.png`, fullPage: true });

    // Opened again later, from what the run stored.
    await page.reload();
    await story.getByText('OpenAI · gpt-5 skipped: not configured (no OPENAI_API_KEY)').waitFor();
    await story.getByText('Fallback 1: Offline · offline-large').waitFor();
    await page.getByText('Fallback planner · Offline · offline-large (fallback 1)').waitFor();
    expect(await detail(page, 'Attempts').innerText()).toBe('1\n1 skipped');
  });

  it('shows the estimated usage of a run cancelled mid-stream, labelled as such', async () => {
    const { page } = browser;
    const runId = await startRun('Write a long plan, then stop');
    await page.goto(runPath(runId));
    await page.getByTestId('run-output').locator('.markdown').waitFor();
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await page.getByTestId('run-status').getByText('Cancelled').waitFor({ timeout: 10_000 });

    expect(await page.getByTestId('run-cancelled').innerText()).toBe('Cancelled by a user. Output produced before it stopped is kept below.');
    await expect.poll(() => page.getByTestId('run-usage-source').innerText()).toBe('Estimated: the provider sent no usage report');
    expect(Number((await detail(page, 'Output tokens').innerText()).replace(/\D/g, ''))).toBeGreaterThan(0);
    expect(Number((await detail(page, 'Input tokens').innerText()).replace(/\D/g, ''))).toBeGreaterThan(0);
    expect(await page.getByText('Reported by the provider').count()).toBe(0);
    await page.getByText('Fallback planner · Offline · offline-large (fallback 1)').waitFor();
    await page.screenshot({ path: `${SCREENSHOTS}/hub-run-cancelled-estimated.png`, fullPage: true });

    // The runs list marks the estimate too; a run with the provider's report is not marked.
    await page.goto('/runs');
    const row = (input: string) => page.getByTestId('run-row').filter({ hasText: input });
    await row('Write a long plan, then stop').getByTitle('Estimated: the provider sent no usage report').waitFor();
    expect(await page.getByTitle('Estimated: the provider sent no usage report').count()).toBe(1);
  });

  it("does not offer to retry a run whose agent was archived, and says why in plain words", async () => {
    const { page } = browser;
    const runId = await startRun('One more');
    await page.goto(runPath(runId));
    await page.getByTestId('run-status').getByText('Succeeded').waitFor({ timeout: 30_000 });
    const retry = page.getByRole('button', { name: 'Retry' });
    expect(await retry.isEnabled()).toBe(true);

    // Archived meanwhile (say, in another tab): the retry is refused with the API's words, no field name.
    expect((await api(ARCHIVE_AGENT, { id: agentId })).archiveAgent.__typename).toBe('ArchiveAgentPayload');
    await retry.click();
    const alert = page.getByRole('alert').filter({ hasText: 'archived' });
    await alert.waitFor();
    expect(await alert.locator('p').innerText()).toBe('This agent is archived');
    // And the page now says why Retry is off.
    await page.getByText('Its agent is archived').waitFor();
    expect(await retry.isDisabled()).toBe(true);
    await page.screenshot({ path: `${SCREENSHOTS}/hub-run-archived-agent.png` });

    // Opened afresh, the same.
    await page.reload();
    await page.getByTestId('run-status').getByText('Succeeded').waitFor();
    await page.getByText('Its agent is archived').waitFor();
    expect(await page.getByRole('button', { name: 'Retry' }).isDisabled()).toBe(true);

    // Where to do something about it: the note leads to the agent's page, which offers Restore.
    await page.getByRole('link', { name: 'Its agent is archived' }).click();
    await page.getByRole('button', { name: 'Restore agent' }).waitFor();
    await page.goBack();
    // The Details name the agent with a link to it, archived or not.
    await page.getByRole('region', { name: 'Details' }).getByRole('link', { name: 'Fallback planner' }).click();
    await page.getByRole('button', { name: 'Restore agent' }).waitFor();
  });

  it('logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
