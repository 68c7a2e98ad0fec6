import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId } from '../../api/src/lib/ids.js';
import { budgetChannel } from '../../api/src/modules/budgets/budget-guard.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { addDays, daysBetween, eachDay, startOfDay, zonedDay } from '../src/routes/budgets/dates.js';
import { signedInBrowser, signIn, signUp } from './accounts.js';
import { CREATE_ORG, CREATE_PROJECT } from './operations.js';
import { anotherContext, type BrowserSession, type Page } from './browser.js';

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? '/tmp';
const TIME_ZONE = 'America/New_York';
const DAY_MS = 86_400_000;

async function screenshot(page: Page, name: string) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${SCREENSHOTS}/hub-budgets-${name}.png`, fullPage: true, animations: 'disabled' });
}

describe('organization days for usage ranges', () => {
  it('counts and lists calendar days, across month and year ends', () => {
    expect(addDays('2026-02-27', 2)).toBe('2026-03-01');
    expect(addDays('2028-02-28', 1)).toBe('2028-02-29');
    expect(addDays('2026-01-01', -1)).toBe('2025-12-31');
    expect(daysBetween('2026-03-28', '2026-04-02')).toBe(5);
    expect(eachDay('2026-12-30', '2027-01-02')).toEqual(['2026-12-30', '2026-12-31', '2027-01-01', '2027-01-02']);
    expect(eachDay('2026-01-02', '2026-01-01')).toEqual([]);
  });

  it('finds midnight on the organization’s wall clock, daylight saving time included', () => {
    expect(startOfDay('2026-07-01', 'UTC').toISOString()).toBe('2026-07-01T00:00:00.000Z');
    expect(startOfDay('2026-01-15', TIME_ZONE).toISOString()).toBe('2026-01-15T05:00:00.000Z');
    expect(startOfDay('2026-07-15', TIME_ZONE).toISOString()).toBe('2026-07-15T04:00:00.000Z');
    // The days daylight saving time starts and ends in New York: 23 and 25 hours long.
    expect(startOfDay('2026-03-08', TIME_ZONE).toISOString()).toBe('2026-03-08T05:00:00.000Z');
    expect(startOfDay('2026-03-09', TIME_ZONE).toISOString()).toBe('2026-03-09T04:00:00.000Z');
    expect(startOfDay('2026-11-01', TIME_ZONE).toISOString()).toBe('2026-11-01T04:00:00.000Z');
    expect(startOfDay('2026-11-02', TIME_ZONE).toISOString()).toBe('2026-11-02T05:00:00.000Z');
    expect(startOfDay('2026-06-01', 'Asia/Kolkata').toISOString()).toBe('2026-05-31T18:30:00.000Z');
    expect(zonedDay(new Date('2026-06-01T03:59:59Z'), TIME_ZONE)).toBe('2026-05-31');
    expect(zonedDay(new Date('2026-06-01T04:00:00Z'), TIME_ZONE)).toBe('2026-06-01');
  });
});

// A loaded two-core machine can take a while to start extra browser contexts.
describe('budgets and usage page', { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let org: { id: string; gid: string; slug: string };
  const projects: Record<string, string> = {};
  /** Operation names of graphql-ws subscriptions the page has opened. */
  const subscribed: string[] = [];

  beforeAll(async () => {
    // Nothing runs here: usage is written straight into the ledger.
    server = await startTestServer({ web: true, worker: false });
    const { session, api } = await signUp(server, 'Bea Budgeter');

    const created = (await api(CREATE_ORG, { input: { name: 'Budget Labs', timeZone: TIME_ZONE } })).createOrganization.organization;
    org = { gid: created.id, id: fromGlobalId(created.id, 'Organization'), slug: created.slug };
    for (const name of ['Website relaunch', 'Data pipeline']) {
      const project = await api(CREATE_PROJECT, { input: { organizationId: org.gid, name } });
      projects[name] = fromGlobalId(project.createProject.project.id, 'Project');
    }
    await seedUsage(server, org.id, projects);

    browser = await signedInBrowser(server, session, { viewport: { width: 1360, height: 900 } });
    browser.page.on('websocket', (ws) =>
      ws.on('framesent', ({ payload }) => {
        const message = JSON.parse(String(payload)) as { type: string; payload?: { operationName?: string } };
        if (message.type === 'subscribe' && message.payload?.operationName) subscribed.push(message.payload.operationName);
      }),
    );
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const main = () => browser.page.getByRole('main');
  const card = (name: string) => main().getByRole('article', { name });

  it('explains budgets and offers to set one when there is none', async () => {
    const { page } = browser;
    await page.goto('/budgets');
    await page.getByRole('heading', { level: 1, name: 'Budgets & Usage' }).waitFor();
    await main().getByRole('heading', { name: 'No budgets yet' }).waitFor();
    await main().getByRole('button', { name: 'Set a budget' }).waitFor();
    await main().getByTestId('usage-total').waitFor();
    await screenshot(page, 'empty');
  });

  it('sets a budget through the form, with field errors first', async () => {
    const { page } = browser;
    await main().getByRole('button', { name: 'Set a budget' }).click();
    const dialog = page.getByRole('dialog', { name: 'Set a budget' });
    await dialog.waitFor();
    expect(await dialog.getByLabel('Applies to').inputValue()).toBe('');
    expect(await dialog.getByRole('radio', { name: 'Daily' }).isChecked()).toBe(true);

    // Checked in the browser: not an amount.
    await dialog.getByLabel('Limit').fill('twenty');
    await dialog.getByRole('button', { name: 'Set budget' }).click();
    await dialog.getByText('Enter an amount in dollars, like 25 or 12.50.').waitFor();
    expect(await dialog.getByLabel('Limit').getAttribute('aria-invalid')).toBe('true');

    // Checked by the API: a ValidationError issue, shown next to the field.
    await dialog.getByLabel('Limit').fill('$2,000,000,000,000');
    await dialog.getByRole('button', { name: 'Set budget' }).click();
    await dialog.getByText('The limit can be at most $1,000,000,000').waitFor();
    await screenshot(page, 'form-error');

    await dialog.getByLabel('Limit').fill('$25');
    await dialog.getByText('$25.00 per day.').waitFor();
    await dialog.getByRole('button', { name: 'Set budget' }).click();
    await dialog.waitFor({ state: 'hidden' });

    const daily = card('Daily budget, Organization-wide');
    await daily.waitFor();
    expect(await daily.getByTestId('budget-limit').innerText()).toBe('$25.00');
    expect(await daily.getByTestId('budget-spent').innerText()).toBe('$0.00');
    expect(await daily.getByTestId('budget-reserved').innerText()).toBe('$0.00');
    expect(await daily.getByTestId('budget-remaining').innerText()).toBe('$25.00');
    expect(await daily.getByTestId('budget-percent').innerText()).toMatch(/^0\s*%$/);
    // Midnight in New York, wherever the browser is.
    const resets = await daily.getByTestId('budget-resets').innerText();
    expect(resets).toMatch(/^Resets in \d+ (hours?|minutes?) \(.+12:00\sAM.+\)$/);
    expect(resets).toMatch(/[EC][DS]T|GMT-[45]/);
  });

  it('sets a monthly project budget with cents, and changes a limit', async () => {
    const { page } = browser;
    await main().getByRole('button', { name: 'Set a budget' }).click();
    const dialog = page.getByRole('dialog', { name: 'Set a budget' });
    await dialog.getByLabel('Applies to').selectOption({ label: 'Website relaunch' });
    await dialog.getByRole('radio', { name: 'Monthly' }).check();
    await dialog.getByLabel('Limit').fill('100.5');
    await dialog.getByRole('button', { name: 'Set budget' }).click();
    await dialog.waitFor({ state: 'hidden' });
    const monthly = card('Monthly budget, Website relaunch');
    expect(await monthly.getByTestId('budget-limit').innerText()).toBe('$100.50');

    await card('Daily budget, Organization-wide').getByRole('button', { name: 'Change the daily limit of Organization-wide' }).click();
    const edit = page.getByRole('dialog', { name: 'Change the daily limit' });
    expect(await edit.getByLabel('Limit').inputValue()).toBe('25');
    await edit.getByLabel('Limit').fill('30');
    await edit.getByRole('button', { name: 'Update budget' }).click();
    await edit.waitFor({ state: 'hidden' });
    await card('Daily budget, Organization-wide').getByTestId('budget-limit').getByText('$30.00').waitFor();
  });

  it('shows a live alert when a budget crosses a threshold, and refreshes the gauges', async () => {
    const { page } = browser;
    const budget = await server.rt.prisma.budget.findFirstOrThrow({ where: { organizationId: org.id, projectId: null, period: 'DAILY' } });
    // What the budget guard does as a run settles: record the spend, then announce the crossing.
    await server.rt.prisma.budget.update({ where: { id: budget.id }, data: { spentMicros: 24_000_000n, reservedMicros: 1_500_000n, alertedPercent: 80 } });
    await expect.poll(() => subscribed.includes('BudgetAlerts'), { timeout: 10_000 }).toBe(true);

    const alert = main().getByTestId('budget-alert');
    const announce = () =>
      server.rt.bus.publish(budgetChannel(org.id), {
        budgetId: budget.id,
        projectId: null,
        period: 'DAILY',
        percent: 80,
        limitMicros: '30000000',
        spentMicros: '24000000',
        resetsAt: new Date(Date.now() + 3 * 3600_000).toISOString(),
      });
    // The server registers the subscription a moment after the browser asks for it.
    for (let attempt = 0; attempt < 10 && (await alert.count()) === 0; attempt++) {
      await announce();
      await page.waitForTimeout(300);
    }
    await alert.filter({ hasText: 'Daily budget crossed 80 %' }).first().waitFor();
    expect(await alert.first().getAttribute('role')).toBe('status');
    expect(await alert.first().innerText()).toMatch(/Organization-wide · \$24\.00 of \$30\.00 spent; resets in (3|2) hours\.$/);

    const daily = card('Daily budget, Organization-wide');
    await daily.getByTestId('budget-spent').getByText('$24.00').waitFor();
    expect(await daily.getByTestId('budget-reserved').innerText()).toBe('$1.50');
    expect(await daily.getByTestId('budget-remaining').innerText()).toBe('$4.50');
    expect(await daily.getByTestId('budget-percent').innerText()).toMatch(/^85\s*%$/);
    expect(await daily.getByText('Nearly used up').count()).toBe(1);
    await screenshot(page, 'alert');
    await daily.screenshot({ path: `${SCREENSHOTS}/hub-budgets-card.png`, animations: 'disabled' });
  });

  it('charts spend per day and breaks it down by model, project, provider and agent', async () => {
    const { page } = browser;
    // The last 30 days in New York: the usage from 40 days ago is outside.
    expect(await main().getByTestId('usage-total').innerText()).toBe('$4.19');
    const charts = main().getByTestId('spend-chart');
    await expect.poll(() => charts.count()).toBe(2);
    for (const chart of await charts.all()) expect(await paintedPixels(chart)).toBeGreaterThan(100);

    const rows = main().getByTestId('usage-row');
    expect(await rows.allInnerTexts()).toEqual([
      expect.stringMatching(/^Claude Sonnet 4\.6\s+Anthropic\s+\$2\.500001\s+59\.7 %\s+3,000\s+0\s+1,500\s+1\s+1$/),
      expect.stringMatching(/^GPT-4\.1\s+OpenAI\s+\$1\.59\s+37\.9 %\s+2,400\s+200\s+1,600\s+2\s+1$/),
      expect.stringMatching(/^GPT-4\.1 mini\s+OpenAI\s+\$0\.099999\s+2\.4 %\s+500\s+0\s+100\s+1\s+1$/),
    ]);
    expect(await main().getByTestId('usage-total-row').innerText()).toMatch(/^Total\s+\$4\.19\s+100\.0 %\s+5,900\s+200\s+3,200\s+4\s+3$/);
    await screenshot(page, 'usage');

    // The grouping tabs work from the keyboard too.
    await main().getByRole('tab', { name: 'Model' }).focus();
    await page.keyboard.press('ArrowRight');
    expect(await main().getByRole('tab', { name: 'Project' }).getAttribute('aria-selected')).toBe('true');
    await rows.first().getByText('Website relaunch').waitFor();
    expect(await rows.allInnerTexts()).toEqual([
      expect.stringMatching(/^Website relaunch\s+\$4\.090001\s+97\.6 %/),
      expect.stringMatching(/^Data pipeline\s+\$0\.099999\s+2\.4 %/),
    ]);
    await main().getByRole('tab', { name: 'Agent' }).click();
    await rows.first().getByText('Copy editor').waitFor();
    expect(await rows.count()).toBe(3);

    // A longer range takes in the older run.
    await main().getByRole('button', { name: '90 days' }).click();
    await main().getByTestId('usage-total').getByText('$11.19').waitFor();
    // The rows may follow the total by a render: wait for them rather than read them once.
    await expect.poll(() => rows.filter({ hasText: 'Release planner' }).innerText()).toMatch(/\$8\.59/);

    // An impossible range is explained, not sent.
    await main().getByLabel('From').fill(addDays(zonedDay(Date.now(), TIME_ZONE), 1));
    await main().getByText('The start date is after the end date.').waitFor();
    await main().getByRole('button', { name: '30 days' }).click();
    await main().getByTestId('usage-total').getByText('$4.19').waitFor();
  });

  it('downloads the report as CSV', async () => {
    const { page } = browser;
    await main().getByRole('tab', { name: 'Model' }).click();
    await main().getByTestId('usage-row').first().getByText('Claude Sonnet 4.6').waitFor();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      main().getByRole('button', { name: 'Download CSV of spend by model' }).click(),
    ]);
    const today = zonedDay(Date.now(), TIME_ZONE);
    expect(download.suggestedFilename()).toBe(`${org.slug}-usage-by-model-${addDays(today, -29)}-to-${today}.csv`);
    const csv = await readFile((await download.path())!, 'utf8');
    const lines = csv.trim().split('\n');
    expect(lines[0]).toBe('key,label,cost_micros,cost_usd,input_tokens,cached_input_tokens,output_tokens,attempts,runs');
    expect(lines).toContain('ANTHROPIC/claude-sonnet-4-6,ANTHROPIC/claude-sonnet-4-6,2500001,2.500001,3000,0,1500,1,1');
    expect(lines.at(-1)).toBe('total,Total,4190000,4.190000,5900,200,3200,4,3');

    const [daily] = await Promise.all([
      page.waitForEvent('download'),
      main().getByRole('button', { name: 'Download CSV of spend per day' }).click(),
    ]);
    expect(daily.suggestedFilename()).toMatch(/-usage-by-day-\d{4}-\d\d-\d\d-to-\d{4}-\d\d-\d\d\.csv$/);
  });

  it('removes a budget after confirmation', async () => {
    const { page } = browser;
    await card('Monthly budget, Website relaunch').getByRole('button', { name: 'Remove the monthly budget of Website relaunch' }).click();
    const confirm = page.getByRole('dialog', { name: 'Remove the monthly budget of Website relaunch?' });
    await confirm.waitFor();
    await screenshot(page, 'remove');
    await confirm.getByRole('button', { name: 'Remove budget' }).click();
    await confirm.waitFor({ state: 'hidden' });
    await card('Monthly budget, Website relaunch').waitFor({ state: 'detached' });
    expect(await main().getByTestId('budget-card').count()).toBe(1);
  });

  it('looks right in dark mode', async () => {
    const dark = await anotherContext(browser, { baseURL: server.url, colorScheme: 'dark', viewport: { width: 1360, height: 900 } });
    try {
      await dark.page.context().addCookies(await browser.page.context().cookies());
      await dark.page.goto('/budgets');
      await dark.page.getByTestId('budget-card').first().waitFor();
      await dark.page.getByTestId('usage-row').first().waitFor();
      await dark.page.waitForTimeout(400);
      await screenshot(dark.page, 'dark');
      expect(dark.errors).toEqual([]);
    } finally {
      await dark.close();
    }
  });

  it('shows viewers the budgets but not the controls', async () => {
    const viewer = await signUp(server, 'Vic Viewer');
    const user = await server.rt.prisma.user.findUniqueOrThrow({ where: { email: viewer.email } });
    await server.rt.prisma.membership.create({ data: { organizationId: org.id, userId: user.id, role: 'VIEWER' } });
    // On a phone-sized screen, too.
    const other = await anotherContext(browser, { baseURL: server.url, viewport: { width: 390, height: 844 } });
    try {
      await signIn(other, server, viewer.session);
      await other.page.goto('/budgets');
      const daily = other.page.getByRole('main').getByRole('article', { name: 'Daily budget, Organization-wide' });
      await daily.waitFor();
      expect(await daily.getByRole('button').count()).toBe(0);
      expect(await other.page.getByRole('button', { name: 'Set a budget' }).count()).toBe(0);
      await other.page.getByRole('main').getByTestId('usage-total').getByText('$4.19').waitFor();
      await other.page.getByRole('main').getByTestId('usage-row').first().waitFor();
      await screenshot(other.page, 'viewer-mobile');
      expect(other.errors).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it('logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});

/** How many pixels a chart's canvas has drawn, so an empty canvas fails. */
async function paintedPixels(chart: ReturnType<Page['getByTestId']>): Promise<number> {
  await chart.page().waitForTimeout(400); // the bars grow in
  return chart.locator('canvas').evaluate((canvas: HTMLCanvasElement) => {
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) painted++;
    return painted;
  });
}

/**
 * The ledger for the last 40 days in two projects: four runs, one retried, with exact sub-cent costs.
 * Totals over the last 30 days: $4.19 over 3 runs and 4 attempts; with the run 40 days ago, $11.19.
 */
async function seedUsage(server: TestServer, organizationId: string, projects: Record<string, string>) {
  const prisma = server.rt.prisma;
  const agent = (projectId: string, name: string, provider: 'OPENAI' | 'ANTHROPIC', model: string) =>
    prisma.agent.create({ data: { organizationId, projectId, name, provider, model } });
  const planner = await agent(projects['Website relaunch']!, 'Release planner', 'OPENAI', 'gpt-4.1');
  const editor = await agent(projects['Website relaunch']!, 'Copy editor', 'ANTHROPIC', 'claude-sonnet-4-6');
  const checker = await agent(projects['Data pipeline']!, 'Schema checker', 'OPENAI', 'gpt-4.1-mini');

  const ago = (days: number) => new Date(Date.now() - days * DAY_MS - 60_000);
  const spend = [
    { agent: planner, at: ago(0), attempts: [{ cost: 1_250_000n, input: 1200, cached: 200, output: 800 }, { cost: 340_000n, input: 1200, cached: 0, output: 800 }] },
    { agent: editor, at: ago(2), attempts: [{ cost: 2_500_001n, input: 3000, cached: 0, output: 1500 }] },
    { agent: checker, at: ago(5), attempts: [{ cost: 99_999n, input: 500, cached: 0, output: 100 }] },
    { agent: planner, at: ago(40), attempts: [{ cost: 7_000_000n, input: 9000, cached: 0, output: 4000 }] },
  ];
  for (const { agent, at, attempts } of spend) {
    const run = await prisma.agentRun.create({
      data: {
        organizationId,
        projectId: agent.projectId,
        agentId: agent.id,
        status: 'SUCCEEDED',
        input: 'Seeded',
        provider: agent.provider,
        model: agent.model,
        createdAt: at,
        finishedAt: at,
      },
    });
    for (const [i, a] of attempts.entries()) {
      await prisma.usageRecord.create({
        data: {
          organizationId,
          projectId: agent.projectId,
          agentId: agent.id,
          runId: run.id,
          attempt: i + 1,
          provider: agent.provider,
          model: agent.model,
          inputTokens: a.input,
          cachedInputTokens: a.cached,
          outputTokens: a.output,
          costMicros: a.cost,
          createdAt: at,
        },
      });
    }
  }
}
