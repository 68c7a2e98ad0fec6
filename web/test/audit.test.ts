import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
import { AUDIT_ACTIONS } from '../../api/src/modules/audit/actions.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { actionGroups, actionLabel } from '../src/routes/audit/actions.js';
import { signedInBrowser, signUp } from './accounts.js';
import type { BrowserSession } from './browser.js';
import { CREATE_ORG, CREATE_PROJECT, INVITE_MEMBER } from './operations.js';

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? '/tmp';

const SET_BUDGET = /* GraphQL */ `
  mutation ($input: SetBudgetInput!) {
    setBudget(input: $input) { __typename ... on Error { message } }
  }
`;

describe('the audit page knows every action', () => {
  it('names exactly the actions an organization’s log can hold (the API’s list)', () => {
    const named = actionGroups.flatMap((group) => Object.keys(group.actions)).sort();
    const expected = [...AUDIT_ACTIONS.organization, ...AUDIT_ACTIONS.retired].sort();
    expect(named.filter((a) => !expected.includes(a as never)), 'named on the page, but never in an organization’s log').toEqual([]);
    expect(expected.filter((a) => !named.includes(a)), 'written by the API, missing from web/src/routes/audit/actions.ts').toEqual([]);
    for (const action of expected) expect(actionLabel(action)).not.toBe(action);
  });
});

// A loaded two-core machine can take a while to start a browser.
describe('audit log page', { timeout: 60_000 }, () => {
  let server: TestServer;
  let browser: BrowserSession;
  let orgGid = '';

  beforeAll(async () => {
    server = await startTestServer({ web: true, worker: false });
    const owner = await signUp(server, 'Ada Auditor');
    const created = (await owner.api(CREATE_ORG, { input: { name: 'Audit Labs', timeZone: 'UTC' } })).createOrganization.organization;
    orgGid = created.id;
    const project = (await owner.api(CREATE_PROJECT, { input: { organizationId: orgGid, name: 'Website relaunch' } })).createProject.project;
    await owner.api(INVITE_MEMBER, { input: { organizationId: orgGid, email: 'newcomer@example.test', role: 'VIEWER' } });
    await owner.api(SET_BUDGET, { input: { organizationId: orgGid, period: 'DAILY', limit: '25000000' } });
    await owner.api(SET_BUDGET, { input: { organizationId: orgGid, period: 'DAILY', limit: '30000000' } });
    await owner.api(SET_BUDGET, { input: { organizationId: orgGid, projectId: project.id, period: 'MONTHLY', limit: '0' } });
    expect(await server.rt.prisma.auditLog.count({ where: { organizationId: fromGlobalId(orgGid, 'Organization') } })).toBe(6);

    browser = await signedInBrowser(server, owner.session, { viewport: { width: 1360, height: 900 } });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const main = () => browser.page.getByRole('main');
  const entries = () => main().getByRole('region', { name: 'Audit log entries' });
  const row = (action: string) => entries().locator('tbody tr').filter({ has: browser.page.locator('code', { hasText: new RegExp(`^${action.replace('.', '\\.')}$`) }) });

  it('names each action, and what it was done to as a person knows it', async () => {
    const { page } = browser;
    await page.goto('/audit');
    await entries().waitFor();
    await expect.poll(() => entries().locator('tbody tr').count()).toBe(6);

    expect(await row('budget.created').locator('.badge').allInnerTexts()).toEqual(['Budget created', 'Budget created']);
    expect(await row('budget.updated').locator('.badge').innerText()).toBe('Budget changed');

    const targets = async (action: string) => (await row(action).getByTestId('audit-target').allInnerTexts()).sort();
    expect(await targets('member.invited')).toEqual(['newcomer@example.test']);
    expect(await targets('budget.created')).toEqual(['Daily budget, Organization-wide', 'Monthly budget, Website relaunch']);
    expect(await targets('budget.updated')).toEqual(['Daily budget, Organization-wide']);
    expect(await targets('project.created')).toEqual(['Website relaunch']);
    expect(await targets('org.created')).toEqual(['Audit Labs']);
    // No opaque global id is on show; it is a hover and a click away.
    const shown = await entries().locator('tbody').innerText();
    const invitation = await server.rt.prisma.invitation.findFirstOrThrow({ where: { email: 'newcomer@example.test' } });
    const invitationGid = toGlobalId('Invitation', invitation.id);
    expect(shown).not.toContain(invitationGid.slice(0, 12));
    const invited = row('member.invited');
    expect(await invited.locator('[title^="Id: "]').getAttribute('title')).toBe(`Id: ${invitationGid}`);
    await invited.getByRole('button', { name: 'Details' }).click();
    await entries().getByText(invitationGid, { exact: true }).waitFor();
    await page.screenshot({ path: `${SCREENSHOTS}/hub-audit-targets.png`, fullPage: true, animations: 'disabled' });
  });

  it('filters on the budget actions', async () => {
    const action = main().getByLabel('Action');
    const options = await action.locator('optgroup[label="Budgets"] option').allInnerTexts();
    expect(options).toEqual(['Budget created', 'Budget changed', 'Budget removed', 'Budget threshold crossed', 'Budget exceeded']);
    await action.selectOption({ label: 'Budget changed' });
    await expect.poll(() => entries().locator('tbody tr').count()).toBe(1);
    expect(await entries().getByTestId('audit-target').innerText()).toBe('Daily budget, Organization-wide');
  });

  it('logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
