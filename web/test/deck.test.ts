import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { type Account, signedInBrowser, signUp } from './accounts.js';
import { CREATE_ORG, CREATE_PROJECT, START_RUN } from './operations.js';
import { anotherContext, type BrowserSession, type Page } from './browser.js';

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? '/tmp';
const TIME_ZONE = 'America/New_York';

const SET_BUDGET = /* GraphQL */ `
  mutation ($input: SetBudgetInput!) {
    setBudget(input: $input) { __typename ... on SetBudgetPayload { budget { id } } ... on Error { message } }
  }
`;

async function screenshot(page: Page, name: string) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${SCREENSHOTS}/hub-deck-${name}.png`, fullPage: true, animations: 'disabled' });
}

// A loaded two-core machine can take a while to start a browser and finish a run.
describe('spend against budgets on the Command Deck', { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let api: Account['api'];
  let org: { gid: string; id: string };
  /** Global ids by name; "Website relaunch" is created first, and a browser with no project remembered opens the oldest. */
  const projects: Record<string, string> = {};
  let agentGid: string;
  /** Dee's session cookie. */
  let deckerSession = '';

  /** Sets a budget through the API, as the budgets page does. */
  async function setBudget(period: 'DAILY' | 'MONTHLY', limit: bigint, project?: string) {
    const input = { organizationId: org.gid, period, limit: limit.toString(), projectId: project ? projects[project] : undefined };
    const result = await api(SET_BUDGET, { input });
    expect(result.setBudget.__typename).toBe('SetBudgetPayload');
    return fromGlobalId(result.setBudget.budget.id, 'Budget');
  }

  /** What the budget guard does as a run settles: records the spend on the budget. */
  async function recordSpend(budgetId: string, spentMicros: bigint) {
    await server.rt.prisma.budget.update({ where: { id: budgetId }, data: { spentMicros } });
  }

  const budgets: Record<'orgDaily' | 'projectMonthly' | 'otherDaily', string> = { orgDaily: '', projectMonthly: '', otherDaily: '' };

  beforeAll(async () => {
    server = await startTestServer({ web: true });
    const account = await signUp(server, 'Dee Decker');
    api = account.api;
    deckerSession = account.session;

    const created = (await api(CREATE_ORG, { input: { name: 'Spend Labs', timeZone: TIME_ZONE } })).createOrganization.organization;
    org = { gid: created.id, id: fromGlobalId(created.id, 'Organization') };
    for (const name of ['Website relaunch', 'Data pipeline']) {
      projects[name] = (await api(CREATE_PROJECT, { input: { organizationId: org.gid, name } })).createProject.project.id;
    }
    const agent = await server.rt.prisma.agent.create({
      data: {
        organizationId: org.id,
        projectId: fromGlobalId(projects['Website relaunch']!, 'Project'),
        name: 'Release planner',
        provider: 'OFFLINE',
        model: 'offline-small',
      },
    });
    agentGid = toGlobalId('Agent', agent.id);
    // Another project's budget: it limits that project only, never this deck's.
    budgets.otherDaily = await setBudget('DAILY', 5_000_000n, 'Data pipeline');

    browser = await signedInBrowser(server, account.session, { viewport: { width: 1360, height: 900 } });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const main = () => browser.page.getByRole('main');
  const spend = () => main().getByRole('region', { name: 'Spend' });
  const budget = (name: string) => spend().getByRole('listitem', { name });
  const spendStat = () => main().getByTestId('deck-stat').filter({ hasText: 'Spend' });

  it('says spending is unlimited when no budget applies, and links to the budgets page', async () => {
    const { page } = browser;
    await page.goto('/');
    await page.getByText('What is running in Website relaunch right now, live.').waitFor();
    await spend().getByText('Spending is unlimited').waitFor();

    expect(await spend().getByRole('link', { name: 'Set a budget' }).getAttribute('href')).toBe('/budgets');
    expect(await spend().getByRole('link', { name: 'Budgets & Usage' }).getAttribute('href')).toBe('/budgets');
    expect(await spend().getByRole('listitem').count()).toBe(0);
    expect(await spendStat().innerText()).toMatch(/^Spend\s+Unlimited\s+No budget applies to this project$/);
    // The providers stat moved into its section.
    expect(await main().getByTestId('deck-providers-ready').innerText()).toBe('1 of 5 ready');
    await screenshot(page, 'spend-empty');
  });

  it('shows each budget that applies as spent of limit, and the tightest in the stat row', async () => {
    const { page } = browser;
    budgets.orgDaily = await setBudget('DAILY', 30_000_000n);
    budgets.projectMonthly = await setBudget('MONTHLY', 100_500_000n, 'Website relaunch');
    await recordSpend(budgets.orgDaily, 24_000_000n);
    await recordSpend(budgets.projectMonthly, 12_060_000n);
    // Tighter than both, but in another project.
    await recordSpend(budgets.otherDaily, 4_500_000n);

    await page.reload();
    const daily = budget('Daily budget, Organization-wide');
    const monthly = budget('Monthly budget, Website relaunch');
    await daily.waitFor();
    // Organization-wide first, then the project's own; nothing of Data pipeline.
    expect(await spend().getByRole('listitem').count()).toBe(2);
    expect(await spend().getByTestId('deck-budget').evaluateAll((items) => items.map((li) => li.getAttribute('aria-label')))).toEqual([
      'Daily budget, Organization-wide',
      'Monthly budget, Website relaunch',
    ]);
    expect(await spend().getByText('Data pipeline').count()).toBe(0);

    expect(await daily.getByTestId('deck-budget-spent').innerText()).toBe('$24.00 of $30.00');
    expect(await daily.getByTestId('deck-budget-percent').innerText()).toBe('80 %');
    expect(await daily.getByRole('progressbar').getAttribute('value')).toBe('80');
    expect(await daily.getByRole('progressbar').getAttribute('class')).toContain('progress-warning');
    expect(await daily.getByTestId('deck-budget-resets').innerText()).toMatch(/^Resets in (\d+ (hours?|minutes?)|less than a minute)$/);

    expect(await monthly.getByTestId('deck-budget-spent').innerText()).toBe('$12.06 of $100.50');
    expect(await monthly.getByTestId('deck-budget-percent').innerText()).toBe('12 %');
    expect(await monthly.getByRole('progressbar').getAttribute('value')).toBe('12');
    expect(await monthly.getByRole('progressbar').getAttribute('class')).toContain('progress-success');
    expect(await monthly.getByTestId('deck-budget-resets').innerText()).toMatch(/^Resets (tomorrow|in \d+ (days?|hours?|minutes?))$/);

    expect(await spendStat().innerText()).toMatch(/^Spend\s+80 %\s+\$24\.00 of \$30\.00 today, org-wide$/);
    expect(await spend().getByText('Spending is unlimited').count()).toBe(0);
    await screenshot(page, 'spend');
  });

  it('offers Run an agent on an empty deck only to whoever may start runs: a viewer is told they can watch them', async () => {
    await browser.page.goto('/');
    const empty = main().getByText('No runs yet');
    await empty.waitFor();
    expect(await main().getByRole('link', { name: 'Run an agent' }).count()).toBe(1);

    const watcher = await signUp(server, 'Wes Watcher');
    const user = await server.rt.prisma.user.findUniqueOrThrow({ where: { email: watcher.email } });
    await server.rt.prisma.membership.create({ data: { organizationId: org.id, userId: user.id, role: 'VIEWER' } });
    const session = await anotherContext(browser, { baseURL: server.url });
    try {
      await session.page.context().addCookies([{ name: 'hub_session', value: watcher.session, url: server.url, httpOnly: true }]);
      await session.page.goto('/');
      const theirs = session.page.getByRole('main');
      await theirs.getByText('Your role can watch them but not start them.').waitFor();
      expect(await theirs.getByText('No runs yet').count()).toBe(1);
      expect(await theirs.getByRole('link', { name: 'Run an agent' }).count()).toBe(0);
      expect(session.errors).toEqual([]);
    } finally {
      await session.close();
    }
  });

  it('refreshes with the deck when a run finishes', async () => {
    const { page } = browser;
    await recordSpend(budgets.projectMonthly, 90_450_000n);
    // Nothing reloads the page: the finished run's status update makes the deck read everything again.
    await api(START_RUN, { input: { agentId: agentGid, input: 'Spend check' } });
    await main().getByTestId('run-row').filter({ hasText: 'Spend check' }).getByText('Succeeded').waitFor({ timeout: 20_000 });

    const monthly = budget('Monthly budget, Website relaunch');
    await monthly.getByTestId('deck-budget-spent').getByText('$90.45 of $100.50').waitFor();
    expect(await monthly.getByTestId('deck-budget-percent').innerText()).toBe('90 %');
    expect(await monthly.getByRole('progressbar').getAttribute('class')).toContain('progress-warning');
    // Now the project's budget is the one a run would hit first.
    expect(await spendStat().innerText()).toMatch(/^Spend\s+90 %\s+\$90\.45 of \$100\.50 this month, this project$/);
  });

  it('marks a used-up budget as an error', async () => {
    const { page } = browser;
    await recordSpend(budgets.orgDaily, 31_000_000n);
    await page.reload();
    const daily = budget('Daily budget, Organization-wide');
    await daily.getByTestId('deck-budget-spent').getByText('$31.00 of $30.00').waitFor();
    expect(await daily.getByTestId('deck-budget-percent').innerText()).toBe('103 %');
    expect(await daily.getByRole('progressbar').getAttribute('value')).toBe('100');
    expect(await daily.getByRole('progressbar').getAttribute('class')).toContain('progress-error');
    expect(await spendStat().innerText()).toMatch(/^Spend\s+103 %\s+\$31\.00 of \$30\.00 today, org-wide$/);
    expect(await spendStat().locator('dd').first().getAttribute('class')).toContain('text-error');
    await screenshot(page, 'spend-over');
  });

  it('sets the four stats two by two on a phone, so the runs start on the first screen', async () => {
    const phone = await anotherContext(browser, { baseURL: server.url, viewport: { width: 390, height: 844 } });
    try {
      const { page } = phone;
      await page.context().addCookies([{ name: 'hub_session', value: deckerSession, url: server.url, httpOnly: true }]);
      await page.goto('/');
      const stats = page.getByRole('main').getByTestId('deck-stat');
      await stats.first().waitFor();
      const boxes = await stats.evaluateAll((els) => els.map((el) => el.getBoundingClientRect()).map((r) => ({ top: r.top, left: r.left, right: r.right })));
      expect(boxes).toHaveLength(4);
      // Running beside Queued, Agents beside Spend, nothing wider than the screen.
      expect(boxes[0]!.top).toBe(boxes[1]!.top);
      expect(boxes[2]!.top).toBe(boxes[3]!.top);
      expect(boxes[1]!.left).toBeGreaterThan(boxes[0]!.right);
      expect(Math.max(...boxes.map((b) => b.right))).toBeLessThanOrEqual(390);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      const runs = page.getByRole('main').getByTestId('run-row').first();
      expect(await runs.evaluate((el) => el.getBoundingClientRect().top)).toBeLessThan(844);
      // The recent runs fit too: nothing to scroll sideways for, each run's cost read beside its title.
      const table = page.getByRole('main').locator('.scroll-x', { has: page.getByTestId('run-row') });
      expect(await table.evaluate((el) => el.scrollWidth - el.clientWidth)).toBeLessThanOrEqual(0);
      expect(await runs.getByTestId('run-figures').innerText()).toMatch(/\$[\d.,]+/);
      expect(await runs.getByTestId('run-figures').evaluate((el) => el.getBoundingClientRect().right)).toBeLessThanOrEqual(390);
      expect(phone.errors).toEqual([]);
    } finally {
      await phone.close();
    }
  });

  it('logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
