/// <reference lib="dom" />
// Callbacks given to page.evaluate run in the browser.
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { aTeamWithAnAgent, signedInBrowser, type Account } from './accounts.js';
import type { BrowserSession } from './browser.js';
import { START_RUN } from './operations.js';

// The live pages while the server is out of reach for a few seconds (a restart, a deploy), then back.

/** Letters only: compares streamed text with the final output whatever Markdown did to it in between. */
const letters = (text: string) => text.replace(/[^\p{L}]/gu, '');

describe('the live pages through a server outage', { timeout: 90_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let account: Account;
  let agentId: string;
  /** Raw sockets of WebSocket upgrades, so the outage can cut them. */
  const upgrades = new Set<Socket>();

  const api = (query: string, variables: Record<string, unknown>) => account.api(query, variables);

  /**
   * The server stops answering: its WebSockets drop and new connections are refused (as while it restarts)
   * for `ms`, long enough for graphql-ws to try again at least once; then it listens on the same port again.
   */
  async function outage(ms: number) {
    const http = server.server.httpServer;
    const port = Number(new URL(server.url).port);
    const closed = new Promise<void>((resolve) => http.close(() => resolve()));
    http.closeAllConnections();
    for (const socket of upgrades) socket.destroy();
    upgrades.clear();
    await closed;
    await new Promise((resolve) => setTimeout(resolve, ms));
    await new Promise<void>((resolve) => http.listen(port, '127.0.0.1', resolve));
  }

  beforeAll(async () => {
    server = await startTestServer({ web: true, env: { OFFLINE_TOKEN_DELAY_MS: '80' } });
    server.server.httpServer.on('upgrade', (_req, socket: Socket) => upgrades.add(socket));
    ({ account, agentId } = await aTeamWithAnAgent(server, { person: 'Otto Outage', org: 'Restart Crew', project: 'Deploys', agent: 'Steady' }));
    browser = await signedInBrowser(server, account.session);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('the Run page picks the stream up where it stopped once the server is back, without a reload', async () => {
    const { page } = browser;
    const subscribes: { afterSeq: number }[] = [];
    page.on('websocket', (ws) => {
      ws.on('framesent', ({ payload }) => {
        const message = JSON.parse(String(payload)) as { type: string; payload?: { variables?: { afterSeq?: number } } };
        // The run's event stream only: once finished, the page also listens to the project's updates (for its retry).
        const afterSeq = message.payload?.variables?.afterSeq;
        if (message.type === 'subscribe' && afterSeq !== undefined) subscribes.push({ afterSeq });
      });
    });
    const started = await api(START_RUN, { input: { agentId, input: 'Outage check: list the launch tasks and their owners' } });
    await page.goto(`/runs/${encodeURIComponent(started.startRun.run.id as string)}`);
    await page.getByTestId('run-output').locator('.markdown').waitFor();
    // Every text the output shows from now on, recorded inside the page.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { __outputs: string[] }).__outputs = seen;
      new MutationObserver(() => {
        const text = document.querySelector('[data-testid="run-output"] .markdown')?.textContent ?? '';
        if (text && text !== seen.at(-1)) seen.push(text);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });

    await outage(5_000);

    await page.getByTestId('run-status').getByText('Succeeded').waitFor({ timeout: 40_000 });
    expect(await page.getByText('Live updates stopped').count()).toBe(0);
    // Resumed after the last event shown: the output only ever grew into the final one, nothing twice.
    const final = letters(await page.getByTestId('run-output').locator('.markdown').evaluate((el) => el.textContent ?? ''));
    const outputs = await page.evaluate(() => (window as unknown as { __outputs: string[] }).__outputs);
    for (const text of outputs) expect(final.startsWith(letters(text))).toBe(true);
    expect(subscribes.length).toBeGreaterThanOrEqual(2);
    expect(subscribes.at(-1)!.afterSeq).toBeGreaterThan(0);
  });

  it('the Runs page is live again once the server is back, and shows a run started meanwhile', async () => {
    const { page } = browser;
    await page.goto('/runs');
    await page.getByText('Live', { exact: true }).waitFor();

    await outage(5_000);
    await api(START_RUN, { input: { agentId, input: 'Started right after the restart' } });

    await page.getByText('Live', { exact: true }).waitFor({ timeout: 40_000 });
    await page.getByTestId('run-row').filter({ hasText: 'Started right after the restart' }).waitFor();
  });
});
