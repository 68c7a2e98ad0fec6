import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { signedInBrowser, signUp, type Account } from './accounts.js';
import type { BrowserSession } from './browser.js';
import { CREATE_ORG, CREATE_PROJECT, START_RUN } from './operations.js';

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? '/tmp';

// "All N runs" on an agent's page: the Runs page filtered by that agent, kept live, and cleared again.

describe("an agent's runs on the Runs page", { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let account: Account;
  let organizationId = '';
  let projectId = '';
  /** Global ids. */
  let scout = '';
  let editor = '';

  async function agent(name: string, project = projectId, organization = organizationId): Promise<string> {
    const created = await server.rt.prisma.agent.create({
      data: { organizationId: organization, projectId: project, name, provider: 'OFFLINE', model: 'offline-small' },
    });
    return toGlobalId('Agent', created.id);
  }

  /** Finished runs from earlier, straight into the database; every fifth one failed. */
  async function earlierRuns(agentId: string, count: number, label: string, startedAgo: number) {
    const since = Date.now() - startedAgo;
    await server.rt.prisma.agentRun.createMany({
      data: Array.from({ length: count }, (_, i) => ({
        organizationId,
        projectId,
        agentId: fromGlobalId(agentId, 'Agent'),
        status: i % 5 === 0 ? ('FAILED' as const) : ('SUCCEEDED' as const),
        input: `${label} #${i + 1}`,
        output: 'Done.',
        createdAt: new Date(since + i * 60_000),
        startedAt: new Date(since + i * 60_000 + 100),
        finishedAt: new Date(since + i * 60_000 + 900),
      })),
    });
  }

  beforeAll(async () => {
    // No worker: started runs stay queued, so what the list shows does not change under the test.
    server = await startTestServer({ web: true, worker: false });
    account = await signUp(server, 'Fern Filter');
    const org = await account.api(CREATE_ORG, { input: { name: 'Filter Works', timeZone: 'UTC' } });
    organizationId = fromGlobalId(org.createOrganization.organization.id, 'Organization');
    const project = await account.api(CREATE_PROJECT, { input: { organizationId: org.createOrganization.organization.id, name: 'Field notes' } });
    projectId = fromGlobalId(project.createProject.project.id, 'Project');
    scout = await agent('Scout');
    editor = await agent('Editor');
    // Interleaved in time, so neither agent's runs sit on a page of their own.
    await earlierRuns(scout, 28, 'Scouting', 3 * 86_400_000);
    await earlierRuns(editor, 12, 'Editing', 3 * 86_400_000 + 30_000);
    browser = await signedInBrowser(server, account.session);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("follows All N runs from the agent's page: only its runs, paged, counted and live; clearing the filter shows every run", async () => {
    const { page } = browser;
    await page.goto(`/agents/${encodeURIComponent(scout)}`);
    await page.getByRole('heading', { level: 1, name: 'Scout' }).waitFor();
    await page.getByRole('link', { name: 'All 28 runs' }).click();
    await page.waitForURL((url) => url.pathname === '/runs' && url.searchParams.get('agent') === scout);

    const chip = page.getByRole('group', { name: 'Agent filter' });
    await chip.getByText('Scout').waitFor();
    await page.getByText('Showing 25 of 28 runs').waitFor();
    const rows = page.getByTestId('run-row');
    expect(await rows.filter({ hasText: 'Editing' }).count()).toBe(0);
    await page.getByRole('button', { name: 'Load more' }).click();
    await page.getByText('Showing 28 of 28 runs').waitFor();
    expect(await rows.count()).toBe(28);
    expect(await rows.filter({ hasText: 'Scouting' }).count()).toBe(28);
    expect(await page.getByRole('button', { name: 'Load more' }).count()).toBe(0);

    // Live: the other agent's new run stays away; this agent's appears on top and is counted.
    await page.getByText('Live', { exact: true }).waitFor();
    await account.api(START_RUN, { input: { agentId: editor, input: 'Editing live: not for this list' } });
    await account.api(START_RUN, { input: { agentId: scout, input: 'Scouting live: the north ridge' } });
    await rows.first().getByText('Scouting live: the north ridge').waitFor();
    await page.getByText('Showing 29 of 29 runs').waitFor();
    expect(await rows.filter({ hasText: 'Editing live' }).count()).toBe(0);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: `${SCREENSHOTS}/hub-runs-agent-filter.png` });

    // The status filters keep the agent; clearing the agent keeps the status.
    await page.getByRole('navigation', { name: 'Filter runs by status' }).getByRole('link', { name: 'Failed', exact: true }).click();
    await page.waitForURL((url) => url.searchParams.get('status') === 'failed' && url.searchParams.get('agent') === scout);
    await page.getByText('Showing 6 of 6 runs').waitFor();
    expect(await rows.filter({ hasText: 'Scouting' }).count()).toBe(6);
    await page.getByRole('link', { name: 'Clear the agent filter' }).click();
    await page.waitForURL((url) => url.searchParams.get('status') === 'failed' && !url.searchParams.has('agent'));
    await page.getByText('Showing 9 of 9 runs').waitFor();
    expect(await chip.count()).toBe(0);
    // Focus stays on the filters, on the status still applied.
    await expect
      .poll(() => page.evaluate(() => document.activeElement?.getAttribute('aria-current')))
      .toBe('page');

    // Every run of the project: both agents', the live ones too.
    await page.getByRole('link', { name: 'All', exact: true }).click();
    await page.getByText('Showing 25 of 42 runs').waitFor();
    await rows.filter({ hasText: 'Editing live: not for this list' }).waitFor();
    await rows.filter({ hasText: 'Scouting live: the north ridge' }).waitFor();
  });

  it("says when the agent has no runs that match, with a way to its other runs and to every agent's", async () => {
    const { page } = browser;
    const idle = await agent('Idle hands');
    await page.goto(`/runs?status=blocked&agent=${encodeURIComponent(idle)}`);
    await page.getByRole('heading', { name: 'Idle hands has no blocked runs' }).waitFor();
    expect(await page.getByRole('link', { name: 'Show all of its runs' }).getAttribute('href')).toBe(`/runs?agent=${encodeURIComponent(idle)}`);
    await page.getByRole('link', { name: 'Show all of its runs' }).click();
    await page.getByRole('heading', { name: 'Idle hands has no runs yet' }).waitFor();
    // A run of it started now shows up without a reload.
    await page.getByText('Live', { exact: true }).waitFor();
    await account.api(START_RUN, { input: { agentId: idle, input: 'Finally some work' } });
    await page.getByTestId('run-row').filter({ hasText: 'Finally some work' }).waitFor();
    await page.getByText('Showing 1 of 1 run').waitFor();
  });

  it("says when the agent page's recent runs could not be loaded, rather than that the agent has not run, and loads them on Try again", async () => {
    const { page } = browser;
    const recent = page.getByRole('region', { name: 'Recent runs' });
    // The API answers the runs query with an error (as when its database is out of reach).
    await page.route('**/graphql', (route) =>
      route.request().postData()?.includes('RunsPage')
        ? route.fulfill({ contentType: 'application/json', body: JSON.stringify({ errors: [{ message: 'The database did not answer' }] }) })
        : route.continue(),
    );
    try {
      await page.goto(`/agents/${encodeURIComponent(scout)}`);
      await recent.getByRole('alert').getByText('Its runs could not be loaded.').waitFor();
      expect(await recent.getByText('This agent has not run yet.').count()).toBe(0);
    } finally {
      await page.unroute('**/graphql');
    }
    await recent.getByRole('button', { name: 'Try again' }).click();
    await recent.getByRole('link', { name: /^All \d+ runs$/ }).waitFor();
  });

  it("keeps the agent page's recent runs live: a run of it started now shows up, another agent's does not", async () => {
    const { page } = browser;
    const recent = page.getByRole('region', { name: 'Recent runs' });
    const fresh = await agent('Fresh eyes');
    await page.goto(`/agents/${encodeURIComponent(fresh)}`);
    await recent.getByText('This agent has not run yet.').waitFor();
    await recent.getByText('Live', { exact: true }).waitFor();
    await account.api(START_RUN, { input: { agentId: scout, input: 'Scouting now: the south pass' } });
    await account.api(START_RUN, { input: { agentId: fresh, input: 'Looking now: the field guide' } });
    await recent.getByRole('link', { name: 'Looking now: the field guide' }).waitFor();
    expect(await recent.getByText('Scouting now').count()).toBe(0);
  });

  it("counts the agent page's recent runs' ages up as the page stays open", async () => {
    const { page } = browser;
    const watcher = await agent('Clockwatcher');
    await server.rt.prisma.agentRun.create({
      data: { organizationId, projectId, agentId: fromGlobalId(watcher, 'Agent'), status: 'SUCCEEDED', input: 'Tick check', output: 'Done.', createdAt: new Date(Date.now() - 5_000) },
    });
    await page.goto(`/agents/${encodeURIComponent(watcher)}`);
    const age = page.getByRole('region', { name: 'Recent runs' }).getByRole('listitem').filter({ hasText: 'Tick check' }).locator('time');
    const first = await age.innerText();
    expect(first).toMatch(/^\d+s ago$/);
    // Nothing happens to the run meanwhile: only the clock moves on.
    await expect.poll(() => age.innerText(), { timeout: 20_000 }).not.toBe(first);
    expect(Number.parseInt(await age.innerText(), 10)).toBeGreaterThan(Number.parseInt(first, 10));
  });

  it('an archived agent still lists its runs, marked as archived', async () => {
    const { page } = browser;
    await account.api(`mutation($id: ID!) { archiveAgent(input: { id: $id }) { __typename } }`, { id: editor });
    await page.goto(`/runs?agent=${encodeURIComponent(editor)}`);
    const chip = page.getByRole('group', { name: 'Agent filter' });
    await chip.getByText('Archived').waitFor();
    await page.getByText('Showing 13 of 13 runs').waitFor();
  });

  it("a malformed, unknown or other organization's agent shows a clear message, never someone else's runs", async () => {
    const { page } = browser;
    const stranger = await signUp(server, 'Sly Stranger');
    const theirOrg = await stranger.api(CREATE_ORG, { input: { name: 'Elsewhere Inc', timeZone: 'UTC' } });
    const theirProject = await stranger.api(CREATE_PROJECT, { input: { organizationId: theirOrg.createOrganization.organization.id, name: 'Secrets' } });
    const theirs = await agent(
      'Their agent',
      fromGlobalId(theirProject.createProject.project.id, 'Project'),
      fromGlobalId(theirOrg.createOrganization.organization.id, 'Organization'),
    );
    const unknown = toGlobalId('Agent', '00000000-0000-4000-8000-000000000000');
    for (const id of ['not-an-id', unknown, theirs, toGlobalId('Run', '00000000-0000-4000-8000-000000000000')]) {
      await page.goto(`/runs?status=failed&agent=${encodeURIComponent(id)}`);
      await page.getByRole('heading', { name: 'There is no such agent' }).waitFor();
      expect(await page.getByTestId('run-row').count()).toBe(0);
      expect(await page.getByText('Their agent').count()).toBe(0);
      // The way out keeps the status.
      expect(await page.getByRole('link', { name: 'Show runs of every agent' }).getAttribute('href')).toBe('/runs?status=failed');
    }
    await page.getByRole('link', { name: 'Show runs of every agent' }).click();
    await page.getByText('Showing 9 of 9 runs').waitFor();
  });

  it('an agent of another project of the organization offers to switch to that project', async () => {
    const { page } = browser;
    const other = await account.api(CREATE_PROJECT, {
      input: { organizationId: toGlobalId('Organization', organizationId), name: 'Side quest' },
    });
    const wanderer = await agent('Wanderer', fromGlobalId(other.createProject.project.id, 'Project'));
    await page.goto(`/runs?agent=${encodeURIComponent(wanderer)}`);
    await page.getByRole('heading', { name: 'Wanderer is in another project' }).waitFor();
    await page.getByRole('button', { name: 'Switch to Side quest' }).click();
    await page.getByRole('heading', { name: 'Wanderer has no runs yet' }).waitFor();
    await page.getByRole('group', { name: 'Agent filter' }).getByText('Wanderer').waitFor();
  });

  it('logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
