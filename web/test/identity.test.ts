import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestUser } from '../../api/test/factories.js';
import { gql, startTestServer, type TestServer } from '../../api/test/harness.js';
import { openBrowser, type BrowserSession } from './browser.js';
import { ACCEPT_INVITATION } from './operations.js';

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? '/tmp';

describe('identity and tenancy pages', () => {
  let server: TestServer;
  let browser: BrowserSession;
  const ada = { name: 'Ada Lovelace', email: 'ada@example.test', password: 'analytical-engine-1843' };
  let grace: TestUser;
  let secret = '';

  beforeAll(async () => {
    server = await startTestServer({ web: true });
    browser = await openBrowser({ baseURL: server.url });
    // Fail on the step that is stuck, well before the test's own timeout.
    browser.page.setDefaultTimeout(10_000);
    await browser.page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    grace = await given(server).aUser('Grace Hopper');
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const shot = (name: string) =>
    browser.page.screenshot({ path: `${SCREENSHOTS}/hub-identity-${name}.png`, fullPage: true, animations: 'disabled' });
  const main = () => browser.page.locator('main');

  it('sends anonymous visitors to sign in, then back where they were going', async () => {
    const { page } = browser;
    await page.goto('/members');
    await page.waitForURL('**/sign-in?next=%2Fmembers');
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    await shot('sign-in');
    expect(await page.getByRole('link', { name: 'Create an account' }).getAttribute('href')).toBe('/sign-up?next=%2Fmembers');
  });

  it('cannot send a sign-in or sign-up before the page script runs, says so, and never puts a password in the address', async () => {
    const bare = await openBrowser({ baseURL: server.url, javaScriptEnabled: false });
    try {
      for (const path of ['/sign-in', '/sign-up']) {
        await bare.page.goto(path);
        // Before its script runs the form cannot be sent, and the page says why.
        expect(await bare.page.locator('button[type="submit"]').isDisabled()).toBe(true);
        // (Playwright's text locators skip <noscript>, so read it as an element.)
        expect(await bare.page.locator('noscript p').isVisible()).toBe(true);
        expect(await bare.page.locator('noscript p').textContent()).toContain('Orchestration Hub needs JavaScript');
        await bare.page.locator('input[name="email"]').fill('early@example.test');
        await bare.page.locator('input[name="password"]').fill('hunter2-early-bird');
        await bare.page.locator('input[name="password"]').press('Enter');
        await bare.page.waitForLoadState('load');
        expect(bare.page.url()).not.toMatch(/hunter2|password|early%40/);
        expect(new URL(bare.page.url()).pathname).toBe(path);
      }
    } finally {
      await bare.close();
    }
  });

  it('signs up, showing each invalid field next to it', async () => {
    const { page } = browser;
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByRole('heading', { level: 1, name: 'Create your account' }).waitFor();

    await page.getByLabel('Work email').fill('not-an-email');
    await page.getByLabel('Password').fill('short');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByText('Enter your name').waitFor();
    await page.getByText('Enter a valid email address').waitFor();
    await page.getByText('Use at least 10 characters').waitFor();
    expect(await page.getByLabel('Password').getAttribute('aria-invalid')).toBe('true');
    await shot('sign-up-errors');

    await page.getByLabel('Name').fill(ada.name);
    await page.getByLabel('Work email').fill(ada.email);
    await page.getByLabel('Password').fill(ada.password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL('**/members');
    await page.getByLabel('Account menu').getByText(ada.name).waitFor();
  });

  it('offers to create an organization when the viewer has none', async () => {
    const { page } = browser;
    await main().getByRole('heading', { name: 'You have no organization yet — create one' }).waitFor();
    await shot('no-organization');

    await main().getByRole('button', { name: 'Create organization' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create organization' });
    await dialog.getByLabel('Name').fill('Acme Research');
    expect(await dialog.getByLabel('Slug').inputValue()).toBe('acme-research');
    await dialog.getByLabel('Time zone').selectOption('Europe/Paris');
    await shot('create-organization');
    await dialog.getByRole('button', { name: 'Create organization' }).click();
    await dialog.waitFor({ state: 'hidden' });

    await page.getByLabel('Switch organization').getByText('Acme Research').waitFor();
    await page.getByRole('heading', { level: 1, name: 'Members' }).waitFor();
    await main().getByRole('row', { name: /Ada Lovelace/ }).getByText('Owner').waitFor();
  });

  it('creates a project and makes it the current one', async () => {
    const { page } = browser;
    await page.getByLabel('Switch organization').click();
    await page.getByRole('link', { name: 'Projects' }).click();
    await page.getByRole('heading', { level: 1, name: 'Projects' }).waitFor();
    await main().getByRole('heading', { name: 'No projects yet' }).waitFor();

    await page.getByRole('button', { name: 'New project' }).first().click();
    const dialog = page.getByRole('dialog', { name: 'New project' });
    await dialog.getByLabel('Name').fill('Support Bots');
    await dialog.getByLabel('Description').fill('Agents that triage and answer customer tickets.');
    await dialog.getByRole('button', { name: 'Create project' }).click();
    await dialog.waitFor({ state: 'hidden' });

    const card = main().getByRole('listitem').filter({ hasText: 'Support Bots' });
    await card.getByText('support-bots').waitFor();
    await card.getByText('Current').waitFor();
    await page.getByLabel('Switch project').getByText('Support Bots').waitFor();
    await shot('projects');
  });

  it('invites a member who joins through the link, changes their role, and explains why the last owner cannot step down', async () => {
    const { page } = browser;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Members' }).click();
    await page.getByRole('heading', { level: 1, name: 'Members' }).waitFor();

    await page.getByRole('button', { name: 'Invite member' }).click();
    const dialog = page.getByRole('dialog', { name: 'Invite a member' });
    await dialog.getByLabel('Email').fill(grace.email);
    await dialog.getByText('Viewer', { exact: true }).click();
    await shot('invite-member');
    await dialog.getByRole('button', { name: 'Create invitation link' }).click();
    const sent = page.getByRole('dialog', { name: 'Send the invitation link' });
    const link = await sent.getByLabel('Invitation link').inputValue();
    await sent.getByRole('button', { name: 'Done' }).click();
    await sent.waitFor({ state: 'hidden' });

    // Grace follows the link in her own session (web/test/invitations.test.ts drives that page).
    const accepted = await grace.gql(ACCEPT_INVITATION, { input: { token: link } });
    expect(accepted.data?.acceptInvitation.__typename).toBe('AcceptInvitationPayload');
    await page.reload();

    const graceRow = main().getByRole('row', { name: /Grace Hopper/ });
    const role = graceRow.getByRole('combobox', { name: 'Role of Grace Hopper' });
    await role.waitFor();
    expect(await role.inputValue()).toBe('VIEWER');
    await role.selectOption('ADMIN');
    await main().getByText('2 members').waitFor();
    await expect.poll(() => role.isDisabled()).toBe(false);
    expect(await role.inputValue()).toBe('ADMIN');


    // Grace becomes an owner, so Ada may now step down too...
    await role.selectOption('OWNER');
    const adaRole = main().getByRole('combobox', { name: 'Role of Ada Lovelace' });
    await adaRole.waitFor();
    // ...but Grace steps down in another session first: the API refuses to leave no owner.
    const { data } = await grace.gql<{ organization: { members: { edges: { node: { id: string; user: { email: string } } }[] } } }>(
      '{ organization(slug: "acme-research") { members { edges { node { id user { email } } } } } }',
    );
    const graceMembership = data!.organization.members.edges.find((e) => e.node.user.email === grace.email)!.node.id;
    const stepDown = await grace.gql(
      'mutation ($input: UpdateMemberRoleInput!) { updateMemberRole(input: $input) { __typename } }',
      { input: { membershipId: graceMembership, role: 'ADMIN' } },
    );
    expect(stepDown.data?.updateMemberRole.__typename).toBe('UpdateMemberRolePayload');

    await adaRole.selectOption('MEMBER');
    await main().getByText('An organization must keep at least one OWNER').waitFor();
    // The list is re-read: Ada is the last owner again, so her role is no longer editable.
    await adaRole.waitFor({ state: 'detached' });
    await main().getByRole('row', { name: /Ada Lovelace/ }).getByText('Owner', { exact: true }).waitFor();
    expect(await role.inputValue()).toBe('ADMIN');
    await shot('members');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot('members-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('creates an API token and shows its secret exactly once', async () => {
    const { page } = browser;
    await page.goto('/tokens');
    await main().getByRole('heading', { name: 'No API tokens yet' }).waitFor();

    await page.getByRole('button', { name: 'New token' }).click();
    const dialog = page.getByRole('dialog', { name: 'New API token' });
    await dialog.getByLabel('Name').fill('CI deploys');
    await dialog.getByRole('button', { name: 'Create token' }).click();

    const secretDialog = page.getByRole('dialog', { name: 'Copy your new token' });
    await secretDialog.getByText('You won’t see this token again').waitFor();
    secret = await secretDialog.getByLabel('API token').inputValue();
    expect(secret.length).toBeGreaterThan(20);
    await secretDialog.getByRole('button', { name: 'Copy' }).click();
    await secretDialog.getByRole('button', { name: 'Copied' }).waitFor();
    // A string expression: this file is type-checked without the DOM library.
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(secret);
    await shot('token-secret');

    // Escape does not dismiss it: only the explicit button does.
    await page.keyboard.press('Escape');
    expect(await secretDialog.isVisible()).toBe(true);
    await secretDialog.getByRole('button', { name: /stored it/ }).click();
    await secretDialog.waitFor({ state: 'hidden' });

    const row = main().getByRole('row', { name: /CI deploys/ });
    await row.getByText('Active').waitFor();
    const prefix = (await row.locator('code').textContent())!.replace('…', '');
    expect(secret.startsWith(prefix)).toBe(true);
    expect(await page.content()).not.toContain(secret);
    // The account's own record shows the new token first, then how this browser signed in.
    const newest = main().getByRole('list', { name: 'Account activity' }).getByRole('listitem').first();
    await newest.getByText('API token created').waitFor();
    expect(await newest.textContent()).toContain('CI deploys');
    await main().getByRole('list', { name: 'Account activity' }).getByText(/Signed in|Account created/).first().waitFor();
    await shot('tokens');

    const viewer = await gql<{ viewer: { user: { email: string } } }>(server.url, '{ viewer { user { email } } }', {}, { token: secret });
    expect(viewer.data?.viewer.user.email).toBe(ada.email);
  });

  it('revokes a token after confirmation', async () => {
    const { page } = browser;
    await main().getByRole('button', { name: 'Revoke CI deploys' }).click();
    const confirm = page.getByRole('dialog', { name: 'Revoke “CI deploys”?' });
    await confirm.getByRole('button', { name: 'Revoke token' }).click();
    await confirm.waitFor({ state: 'hidden' });
    await main().getByRole('row', { name: /CI deploys/ }).getByText('Revoked', { exact: true }).waitFor();

    const viewer = await gql(server.url, '{ viewer { user { email } } }', {}, { token: secret });
    expect(viewer.data?.viewer ?? null).toBeNull();

    // The activity follows, and pages back through older entries than one page holds.
    const activity = main().getByRole('list', { name: 'Account activity' });
    await activity.getByRole('listitem').first().getByText('API token revoked').waitFor();
    const user = await server.rt.prisma.user.findUniqueOrThrow({ where: { email: ada.email } });
    await server.rt.prisma.auditLog.createMany({
      data: Array.from({ length: 12 }, (_, i) => ({ actorId: user.id, action: 'auth.sign_in', ip: '192.0.2.1', createdAt: new Date(Date.now() - 86_400_000 - i * 1000) })),
    });
    await page.reload();
    await expect.poll(() => activity.getByRole('listitem').count()).toBe(10);
    await main().getByRole('button', { name: 'Show older' }).click();
    await expect.poll(() => activity.getByRole('listitem').count()).toBeGreaterThan(10);
    expect(await main().getByRole('button', { name: 'Show older' }).count()).toBe(0);
  });

  it('shows those actions in the audit log, with filters, details and exports', async () => {
    const { page } = browser;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();

    const table = main().getByRole('table');
    for (const action of ['org.created', 'project.created', 'member.invited', 'member.joined', 'member.role_changed']) {
      await table.getByText(action, { exact: true }).first().waitFor();
    }
    await shot('audit');

    const rows = () => table.getByRole('row').count();
    await main().getByLabel('Action').selectOption('member.role_changed');
    await expect.poll(rows).toBe(1 + 3); // header + Ada's two changes + Grace stepping down
    await main().getByLabel('Actor').selectOption(grace.gid);
    await expect.poll(rows).toBe(1 + 1);
    const entry = table.getByRole('row', { name: /Role changed/ });
    // Grace stepped down: she is the actor, and her membership the target, labelled with her name and email.
    await entry.getByText('Grace Hopper', { exact: true }).waitFor();
    expect(await entry.getByTestId('audit-target').innerText()).toMatch(/^Grace Hopper \(.+@.+\)/);
    await entry.getByRole('button', { name: 'Details' }).click();
    await table.getByText('"from": "OWNER"').waitFor();
    await table.getByText('"to": "ADMIN"').waitFor();
    await shot('audit-filtered');

    await main().getByLabel('From').fill('2099-01-01');
    await main().getByRole('heading', { name: 'Nothing matches these filters' }).waitFor();
    await main().getByRole('button', { name: 'Clear filters' }).click();
    await expect.poll(rows).toBeGreaterThanOrEqual(1 + 6);

    // Exports take the same action and date filters.
    await main().getByLabel('Action').selectOption('member.role_changed');
    const csvHref = await main().getByRole('link', { name: 'Export CSV' }).getAttribute('href');
    expect(csvHref).toBe('/api/organizations/acme-research/audit-logs.csv?action=member.role_changed');
    const csv = await page.request.get(csvHref!);
    expect(csv.status()).toBe(200);
    const lines = (await csv.text()).trim().split('\r\n');
    expect(lines).toHaveLength(1 + 3);
    expect(lines[0]).toContain('action');
    expect(lines.slice(1).every((line) => line.includes('member.role_changed'))).toBe(true);
    const ndjsonHref = await main().getByRole('link', { name: 'NDJSON' }).getAttribute('href');
    const ndjson = (await (await page.request.get(ndjsonHref!)).text()).trim().split('\n').map((line) => JSON.parse(line));
    expect(ndjson).toHaveLength(3);
    expect(ndjson.at(-1)).toMatchObject({ action: 'member.role_changed', actor: { email: ada.email }, metadata: { from: 'VIEWER', to: 'ADMIN' } });
  });

  it('edits the organization settings', async () => {
    const { page } = browser;
    await page.goto('/settings');
    await page.getByRole('heading', { level: 1, name: 'Organization settings' }).waitFor();
    const name = main().getByLabel('Name');
    expect(await name.inputValue()).toBe('Acme Research');
    expect(await main().getByLabel('Time zone').inputValue()).toBe('Europe/Paris');
    await name.fill('Acme Labs');
    await main().getByRole('button', { name: 'Save changes' }).click();
    await main().getByText('Saved').waitFor();
    await page.getByLabel('Switch organization').getByText('Acme Labs').waitFor();
    await main().getByRole('heading', { name: 'Delete organization' }).waitFor();
    await shot('settings');
  });

  it('signs out, rejects a wrong password with the generic error, and signs in to the Command Deck', async () => {
    const { page } = browser;
    await page.getByLabel('Account menu').click();
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.waitForURL('**/sign-in');

    // The session is gone: protected pages send us back here.
    await page.goto('/tokens');
    await page.waitForURL('**/sign-in?next=%2Ftokens');
    await page.goto('/sign-in');

    await page.getByLabel('Email').fill(ada.email);
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('Email or password is incorrect').waitFor();
    await shot('sign-in-error');

    await page.getByLabel('Password').fill(ada.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((url) => url.pathname === '/');
    await page.getByLabel('Switch organization').getByText('Acme Labs').waitFor();
  });

  it('shows a friendly notice to members who cannot read the audit log', async () => {
    const { page } = browser;
    // Ada makes Grace an owner and steps down to member; the audit page then explains itself.
    await page.goto('/members');
    await main().getByRole('combobox', { name: 'Role of Grace Hopper' }).selectOption('OWNER');
    await expect.poll(() => main().getByRole('combobox', { name: 'Role of Grace Hopper' }).inputValue()).toBe('OWNER');
    await main().getByRole('combobox', { name: 'Role of Ada Lovelace' }).selectOption('MEMBER');
    await main().getByRole('row', { name: /Ada Lovelace/ }).getByText('Member').waitFor();
    await expect.poll(() => page.getByRole('button', { name: 'Invite member' }).count()).toBe(0);

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit log' }).click();
    await main().getByRole('heading', { name: 'Only admins can read the audit log' }).waitFor();
    await shot('audit-forbidden');
  });

  it('has logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
