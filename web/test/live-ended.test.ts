/// <reference lib="dom" />
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebSocketRoute } from 'playwright-core';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { aTeamWithAnAgent, signedInBrowser, type Account } from './accounts.js';
import type { BrowserSession } from './browser.js';
import { START_RUN } from './operations.js';

// When live updates end for good (graphql-ws gives up: here the socket is closed with a code it never retries),
// the Runs page and the Command Deck say so and offer Reconnect, which brings them back up to date and live.

describe('live updates that ended for good', { timeout: 90_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let account: Account;
  let agentId: string;
  /** The page's open WebSocket, passed through to the server by the route below. */
  let socket: WebSocketRoute | undefined;

  const api = (query: string, variables: Record<string, unknown>) => account.api(query, variables);

  beforeAll(async () => {
    server = await startTestServer({ web: true });
    ({ account, agentId } = await aTeamWithAnAgent(server, { person: 'Lena Live', org: 'Signal Crew', project: 'Pipelines', agent: 'Relay' }));
    browser = await signedInBrowser(server, account.session);
    await browser.page.routeWebSocket(/\/graphql$/, (ws) => {
      socket = ws;
      ws.connectToServer();
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** Ends the page's socket with 4500 (internal server error), which graphql-ws treats as fatal: no retry. */
  async function endLiveUpdates() {
    await socket!.close({ code: 4500, reason: 'Internal server error' });
  }

  for (const [where, path] of [
    ['the Runs page', '/runs'],
    ['the Command Deck', '/'],
  ] as const) {
    it(`${where} says live updates stopped, and Reconnect shows what changed meanwhile and goes live again`, async () => {
      const { page } = browser;
      await page.goto(path);
      await page.getByText('Live', { exact: true }).waitFor();

      await endLiveUpdates();
      await page.getByRole('status').filter({ hasText: 'Live updates stopped' }).waitFor();
      const input = `Started while ${where} was not live`;
      await api(START_RUN, { input: { agentId, input } });
      await page.waitForTimeout(500);
      expect(await page.getByText(input).count()).toBe(0);

      await page.getByRole('button', { name: 'Reconnect' }).click();
      await page.getByText('Live', { exact: true }).waitFor();
      expect(await page.getByText('Live updates stopped').count()).toBe(0);
      await page.getByText(input).first().waitFor();
    });
  }
});
