import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { aTeamWithAnAgent, type Account, signedInBrowser, signUp } from './accounts.js';
import { anotherContext, type BrowserSession } from './browser.js';
import { START_RUN } from './operations.js';

describe("the Run dialog and the API's refusals", { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let owner: Account;
  let organizationId = '';
  let agentId = '';
  /** AgentsPageStartRun requests the page has sent so far. */
  let startsSent = 0;

  beforeAll(async () => {
    // No worker: a started run stays queued, which is all these tests need.
    server = await startTestServer({ web: true, worker: false });
    const team = await aTeamWithAnAgent(server, { person: 'Rhea Runner', org: 'Run Works', orgInput: { timeZone: 'UTC' }, project: 'Yard', agent: 'Summarizer' });
    ({ account: owner, agentId } = team);
    organizationId = fromGlobalId(team.organizationId, 'Organization');
    browser = await signedInBrowser(server, owner.session);
    browser.page.on('request', (request) => {
      if (request.url().endsWith('/graphql') && request.postData()?.includes('AgentsPageStartRun')) startsSent++;
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** Opens the Run dialog of the agent from the agents list. */
  async function openDialog(session: BrowserSession = browser) {
    const { page } = session;
    await page.goto('/agents');
    await page.getByTestId('agent-row').filter({ hasText: 'Summarizer' }).getByRole('button', { name: 'Run' }).click();
    const dialog = page.getByRole('dialog', { name: 'Run Summarizer' });
    await dialog.getByLabel('Prompt').waitFor();
    return dialog;
  }

  /** The name of the focused control. */
  const focusedName = (session: BrowserSession = browser) =>
    session.page.evaluate(() => (document.activeElement as HTMLInputElement | null)?.name ?? document.activeElement?.tagName);

  it('refuses a prompt of only spaces and line breaks before sending, under the prompt, which keeps focus', async () => {
    const { page } = browser;
    const dialog = await openDialog();
    const sentBefore = startsSent;
    await dialog.getByLabel('Prompt').fill('  \n\t ');
    await dialog.getByRole('button', { name: 'Start run' }).click();
    await dialog.getByText('Give the agent something to do').waitFor();
    expect(await dialog.getByLabel('Prompt').getAttribute('aria-invalid')).toBe('true');
    expect(await focusedName()).toBe('input');
    expect(startsSent).toBe(sentBefore);
    const border = () => dialog.getByLabel('Prompt').evaluate((el) => getComputedStyle(el).borderTopColor);
    const refusedBorder = await border();
    // Typing a prompt hides what was said about the blank one.
    await page.keyboard.type('Summarize');
    expect(await dialog.getByText('Give the agent something to do').count()).toBe(0);
    expect(await dialog.getByLabel('Prompt').getAttribute('aria-invalid')).toBeNull();
    // The refused prompt was drawn in the error colour, as the agent form's fields are.
    expect(refusedBorder).not.toBe(await border());
  });

  it('shows the API refusing a NUL character under the prompt, without the field name in front, and focuses it', async () => {
    const dialog = await openDialog();
    await dialog.getByLabel('Prompt').fill('a file\u0000with a NUL');
    await dialog.getByRole('button', { name: 'Start run' }).click();
    await dialog.getByText('Remove the NUL characters (U+0000): text cannot hold them').waitFor();
    expect(await dialog.getByLabel('Prompt').getAttribute('aria-invalid')).toBe('true');
    expect(await dialog.innerText()).not.toContain('input:');
    expect(await focusedName()).toBe('input');
    expect(await server.rt.prisma.agentRun.count()).toBe(0);
  });

  it('tells someone whose role was lowered to VIEWER, in a banner, that their role cannot start runs', async () => {
    const member = await signUp(server, 'Vic Viewer');
    const user = await server.rt.prisma.user.findUniqueOrThrow({ where: { email: member.email } });
    const membership = await server.rt.prisma.membership.create({ data: { organizationId, userId: user.id, role: 'MEMBER' } });
    const session = await anotherContext(browser, { baseURL: server.url });
    try {
      await session.page.context().addCookies([{ name: 'hub_session', value: member.session, url: server.url, httpOnly: true }]);
      const dialog = await openDialog(session);
      await dialog.getByLabel('Prompt').fill('Summarize the week');
      await server.rt.prisma.membership.update({ where: { id: membership.id }, data: { role: 'VIEWER' } });
      await dialog.getByRole('button', { name: 'Start run' }).click();
      await dialog.getByRole('alert').getByText('Your role (VIEWER) cannot start runs').waitFor();
      expect(await dialog.getByLabel('Prompt').getAttribute('aria-invalid')).toBeNull();
      expect(session.errors).toEqual([]);
    } finally {
      await session.close();
    }
  });

  it("explains a key that already started another run in a banner, and starts the run when asked again", async () => {
    const { page } = browser;
    const dialog = await openDialog();
    await dialog.getByLabel('Prompt').fill('Summarize the release notes');
    // Another run takes the dialog's idempotency key just before its request reaches the API.
    let taken: string | undefined;
    await page.route('**/graphql', async (route) => {
      const body = JSON.parse(route.request().postData() ?? '{}');
      if (body.operationName === 'AgentsPageStartRun' && !taken) {
        const other = await owner.api(START_RUN, { input: { agentId, input: 'Something else', idempotencyKey: body.variables.input.idempotencyKey } });
        taken = other.startRun.__typename;
      }
      return route.continue();
    });
    await dialog.getByRole('button', { name: 'Start run' }).click();
    await dialog
      .getByRole('alert')
      .getByText('This idempotency key already started a run with another agent or input: use a new key for a new run')
      .waitFor();
    await page.unroute('**/graphql');
    expect(taken).toBe('StartRunPayload');
    expect(await server.rt.prisma.agentRun.count({ where: { input: 'Summarize the release notes' } })).toBe(0);

    // Asked again, the same prompt starts its own run (with a new key), not the same refusal.
    await dialog.getByRole('button', { name: 'Start run' }).click();
    await page.waitForURL('**/runs/**');
    expect(await server.rt.prisma.agentRun.count({ where: { input: 'Summarize the release notes' } })).toBe(1);
  });

  it('has logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
