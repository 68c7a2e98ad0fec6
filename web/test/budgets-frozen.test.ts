import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { type Account, signedInBrowser, signIn, signUp } from './accounts.js';
import { anotherContext, type BrowserSession, type Page } from './browser.js';
import { CREATE_ORG, CREATE_PROJECT, START_RUN } from './operations.js';

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? '/tmp';
const FROZEN = 'Spending frozen: only free runs (the offline provider) can run';

async function screenshot(page: Page, name: string) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${SCREENSHOTS}/hub-budgets-frozen-${name}.png`, fullPage: true, animations: 'disabled' });
}

// A $0 budget freezes spending (docs/budgets.md, "A zero limit"): the pages say so instead of "100 % · Limit reached".
describe('a $0 budget, and the budgets page on a phone', { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let api: Account['api'];
  let session = '';
  let org: { gid: string; id: string };
  let projectId = '';
  let freeAgentGid = '';

  beforeAll(async () => {
    server = await startTestServer({ web: true });
    const account = await signUp(server, 'Fay Frozen');
    api = account.api;
    session = account.session;
    const created = (await api(CREATE_ORG, { input: { name: 'Frost Labs', timeZone: 'UTC' } })).createOrganization.organization;
    org = { gid: created.id, id: fromGlobalId(created.id, 'Organization') };
    projectId = fromGlobalId((await api(CREATE_PROJECT, { input: { organizationId: org.gid, name: 'Website relaunch' } })).createProject.project.id, 'Project');
    const free = await server.rt.prisma.agent.create({
      data: { organizationId: org.id, projectId, name: 'Offline helper', provider: 'OFFLINE', model: 'offline-small', maxOutputTokens: 50 },
    });
    freeAgentGid = toGlobalId('Agent', free.id);
    await seedUsage(server, org.id, projectId);

    browser = await signedInBrowser(server, session, { viewport: { width: 1360, height: 900 } });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const main = () => browser.page.getByRole('main');

  it('explains a $0 limit in the budget form', async () => {
    const { page } = browser;
    await page.goto('/budgets');
    await main().getByRole('button', { name: 'Set a budget' }).click();
    const dialog = page.getByRole('dialog', { name: 'Set a budget' });
    await dialog.getByLabel('Limit').fill('5');
    await dialog.getByText('$5.00 per day.').waitFor();
    expect(await dialog.getByTestId('budget-zero-note').count()).toBe(0);

    await dialog.getByLabel('Limit').fill('0');
    const note = dialog.getByTestId('budget-zero-note');
    await note.waitFor();
    expect(await note.innerText()).toMatch(
      /^A \$0 limit freezes spending: only free runs \(the offline provider\) can run, and every paid run in the organization is blocked until the limit is raised\.$/,
    );
    await screenshot(page, 'form');
    await dialog.getByRole('button', { name: 'Set budget' }).click();
    await dialog.waitFor({ state: 'hidden' });
  });

  it('shows the budget as frozen, not as 100 % used with its limit reached', async () => {
    const card = main().getByRole('article', { name: 'Daily budget, Organization-wide' });
    await card.waitFor();
    expect(await card.getByTestId('budget-frozen').innerText()).toBe('Frozen');
    expect(await card.getByTestId('budget-status').innerText()).toBe('Spending frozen');
    expect(await card.getByTestId('budget-frozen-note').innerText()).toBe(
      'Only free runs (the offline provider) can run; every paid run is blocked until the limit is raised.',
    );
    expect(await card.getByTestId('budget-percent').count()).toBe(0);
    expect(await card.getByText('Limit reached').count()).toBe(0);
    expect(await card.getByText('100').count()).toBe(0);
    expect(await card.getAttribute('class')).not.toContain('border-error');
    await screenshot(browser.page, 'card');
  });

  it('lets a free run through, and the Command Deck says spending is frozen', async () => {
    const { page } = browser;
    const started = await api(START_RUN, { input: { agentId: freeAgentGid, input: 'Still free' } });
    const runId = fromGlobalId(started.startRun.run.id, 'Run');
    await expect.poll(async () => (await server.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: runId } })).status, { timeout: 20_000 }).toBe('SUCCEEDED');
    // Nothing was spent: no threshold of a $0 limit was crossed.
    expect(await server.rt.prisma.auditLog.count({ where: { organizationId: org.id, action: 'budget.threshold_crossed' } })).toBe(0);

    await page.goto('/');
    const spend = main().getByRole('region', { name: 'Spend' });
    const daily = spend.getByRole('listitem', { name: 'Daily budget, Organization-wide' });
    await daily.waitFor();
    expect(await daily.getByTestId('deck-budget-percent').innerText()).toBe('Frozen');
    expect(await daily.getByTestId('deck-budget-frozen').innerText()).toBe(`${FROZEN}.`);
    expect(await daily.getByRole('progressbar').count()).toBe(0);
    expect(await spend.getByText('%').count()).toBe(0);
    const stat = main().getByTestId('deck-stat').filter({ hasText: 'Spend' });
    expect(await stat.innerText()).toMatch(/^Spend\s+Frozen\s+Only free runs \(the offline provider\), org-wide$/);
    await screenshot(page, 'deck');
  });

  it('fits “Where it went” on a 390 px wide screen, every figure still there', async () => {
    const phone = await anotherContext(browser, { baseURL: server.url, viewport: { width: 390, height: 844 } });
    try {
      await signIn(phone, server, session);
      await phone.page.goto('/budgets');
      const table = phone.page.getByRole('main').getByRole('table', { name: 'Spend by model' });
      await table.getByTestId('usage-row').first().waitFor();
      const fit = await table.evaluate((el) => ({
        table: el.scrollWidth,
        box: el.parentElement!.clientWidth,
        page: document.documentElement.scrollWidth,
        cells: [...el.querySelectorAll('thead th')]
          .filter((th) => (th as HTMLElement).offsetParent !== null)
          .map((th) => ({ text: (th as HTMLElement).innerText, right: th.getBoundingClientRect().right })),
      }));
      expect(fit.table).toBeLessThanOrEqual(fit.box);
      expect(fit.page).toBeLessThanOrEqual(390);
      expect(fit.cells.map((c) => c.text)).toEqual(['Model', 'Cost', 'Share']);
      for (const cell of fit.cells) expect(cell.right).toBeLessThanOrEqual(390);
      // The counts the hidden columns held are under each name.
      expect(await table.getByTestId('usage-row').first().innerText()).toMatch(
        /^GPT-4\.1\s+OpenAI\s+1,200 in \(200 cached\) · 800 out · 2 attempts · 1 run\s+\$1\.59\s+100\.0 %$/,
      );
      await phone.page.getByRole('heading', { name: 'Where it went' }).scrollIntoViewIfNeeded();
      await phone.page.screenshot({ path: `${SCREENSHOTS}/hub-budgets-frozen-phone.png`, fullPage: true, animations: 'disabled' });
      expect(phone.errors).toEqual([]);
    } finally {
      await phone.close();
    }
  });

  it('keeps every column as columns on a wide screen', async () => {
    await browser.page.goto('/budgets');
    const table = main().getByRole('table', { name: 'Spend by model' });
    await table.getByTestId('usage-row').first().waitFor();
    expect(await table.getByTestId('usage-row').first().innerText()).toMatch(/^GPT-4\.1\s+OpenAI\s+\$1\.59\s+100\.0 %\s+1,200\s+200\s+800\s+2\s+1$/);
  });

  it('logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});

/** One run today with two attempts: $1.59 on GPT-4.1 (a retry included). */
async function seedUsage(server: TestServer, organizationId: string, projectId: string) {
  const prisma = server.rt.prisma;
  const agent = await prisma.agent.create({ data: { organizationId, projectId, name: 'Release planner', provider: 'OPENAI', model: 'gpt-4.1' } });
  const at = new Date(Date.now() - 60_000);
  const run = await prisma.agentRun.create({
    data: { organizationId, projectId, agentId: agent.id, status: 'SUCCEEDED', input: 'Seeded', provider: 'OPENAI', model: 'gpt-4.1', createdAt: at, finishedAt: at },
  });
  const attempts = [
    { cost: 1_250_000n, input: 600, cached: 200, output: 400 },
    { cost: 340_000n, input: 600, cached: 0, output: 400 },
  ];
  for (const [i, a] of attempts.entries()) {
    await prisma.usageRecord.create({
      data: {
        organizationId,
        projectId,
        agentId: agent.id,
        runId: run.id,
        attempt: i + 1,
        provider: 'OPENAI',
        model: 'gpt-4.1',
        inputTokens: a.input,
        cachedInputTokens: a.cached,
        outputTokens: a.output,
        costMicros: a.cost,
        createdAt: at,
      },
    });
  }
}
