import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { anotherContext, type BrowserSession } from './browser.js';
import { type Account, signedInBrowser, signUp } from './accounts.js';
import { CREATE_ORG, INVITE_MEMBER } from './operations.js';

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? '/tmp';

describe('member invitations', { timeout: 60_000 }, () => {
  let server: TestServer;
  /** The owner's browser; the invitee gets a context of their own. */
  let owner: BrowserSession;
  let invitee: BrowserSession;
  let ownerApi: Account['api'];
  let orgGid = '';
  let orgSlug = '';
  const olive = { name: 'Olive Owner', email: 'olive@example.test' };
  const lin = { name: 'Lin Newcomer', email: 'lin@example.test', password: 'another horse battery staple' };
  /** The link the owner reads off the invite dialog, for Lin. */
  let link = '';
  let revokedLink = '';

  beforeAll(async () => {
    server = await startTestServer({ web: true });
    const account = await signUp(server, olive.name, olive.email);
    ownerApi = account.api;
    const created = await ownerApi(CREATE_ORG, { input: { name: 'Northwind Labs', timeZone: 'UTC' } });
    orgGid = created.createOrganization.organization.id;
    orgSlug = created.createOrganization.organization.slug;

    owner = await signedInBrowser(server, account.session);
    await owner.page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    invitee = await anotherContext(owner, { baseURL: server.url });
  }, 120_000);

  afterAll(async () => {
    await invitee?.close();
    await owner?.close();
    await server?.close();
  });

  const shot = (session: BrowserSession, name: string) =>
    session.page.screenshot({ path: `${SCREENSHOTS}/hub-invitations-${name}.png`, fullPage: true, animations: 'disabled' });
  const ownerMain = () => owner.page.locator('main');
  const pending = () => ownerMain().getByRole('region', { name: /Pending invitations/ });
  const pendingRow = (email: string) => pending().getByRole('row', { name: new RegExp(email) });
  const pathOf = (url: string) => new URL(url).pathname;

  /** Fills in and sends the invite dialog; returns the link it shows. */
  async function invite(email: string, role: 'Member' | 'Viewer') {
    const { page } = owner;
    await page.getByRole('button', { name: 'Invite member' }).click();
    const dialog = page.getByRole('dialog', { name: 'Invite a member' });
    await dialog.getByLabel('Email').fill(email);
    await dialog.getByText(role, { exact: true }).click();
    await dialog.getByRole('button', { name: 'Create invitation link' }).click();
    const linkDialog = page.getByRole('dialog', { name: 'Send the invitation link' });
    return { dialog: linkDialog, link: await linkDialog.getByLabel('Invitation link').inputValue() };
  }

  it('shows owners an empty list of pending invitations', async () => {
    const { page } = owner;
    await page.goto('/members');
    await page.getByRole('heading', { level: 1, name: 'Members' }).waitFor();
    await pending().getByText('No pending invitations').waitFor();
  });

  it('invites an email and shows its link once, saying what it is good for', async () => {
    const { page } = owner;
    await page.getByRole('button', { name: 'Invite member' }).click();
    const form = page.getByRole('dialog', { name: 'Invite a member' });
    await form.getByLabel('Email').fill('not-an-email');
    await form.getByRole('button', { name: 'Create invitation link' }).click();
    await form.getByText('Enter a valid email address').waitFor();
    // A member already: refused next to the email.
    await form.getByLabel('Email').fill(olive.email);
    await form.getByRole('button', { name: 'Create invitation link' }).click();
    await form.getByText('This person is already a member').waitFor();
    expect(await form.getByLabel('Email').getAttribute('aria-invalid')).toBe('true');
    expect(await form.getByRole('alert').count()).toBe(0);
    await form.getByRole('button', { name: 'Cancel' }).click();
    await form.waitFor({ state: 'hidden' });

    const sent = await invite(lin.email, 'Member');
    link = sent.link;
    expect(link).toMatch(new RegExp(`^${server.url}/invitations/hub_inv_[\\w-]{20,}$`));
    const note = (await sent.dialog.getByRole('alert').textContent()) ?? '';
    expect(note).toContain('This link is shown only once');
    expect(note).toContain(`It works once, for ${lin.email} only, until`);
    await sent.dialog.getByRole('button', { name: 'Copy' }).click();
    await sent.dialog.getByRole('button', { name: 'Copied' }).waitFor();
    // A string expression: this file is type-checked without the DOM library.
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(link);
    await shot(owner, 'link');

    // Shown once: only the explicit button closes it, and nothing else on the page holds the token.
    await page.keyboard.press('Escape');
    expect(await sent.dialog.isVisible()).toBe(true);
    await sent.dialog.getByRole('button', { name: 'Done' }).click();
    await sent.dialog.waitFor({ state: 'hidden' });
    const row = pendingRow(lin.email);
    await row.getByText('Member', { exact: true }).waitFor();
    await row.getByText(olive.name).waitFor();
    expect(await page.content()).not.toContain(pathOf(link));
  });

  it('revokes an invitation after confirmation', async () => {
    const { page } = owner;
    const sent = await invite('temp@example.test', 'Viewer');
    revokedLink = sent.link;
    await sent.dialog.getByRole('button', { name: 'Done' }).click();
    await pendingRow('temp@example.test').getByText('Viewer', { exact: true }).waitFor();
    expect(await pending().getByRole('row').count()).toBe(1 + 2);
    await shot(owner, 'pending');

    await pendingRow('temp@example.test').getByRole('button', { name: 'Revoke the invitation for temp@example.test' }).click();
    const confirm = page.getByRole('dialog', { name: 'Revoke the invitation for temp@example.test?' });
    await confirm.getByRole('button', { name: 'Revoke invitation' }).click();
    await confirm.waitFor({ state: 'hidden' });
    await pendingRow('temp@example.test').waitFor({ state: 'detached' });
    expect(await pending().getByRole('row').count()).toBe(1 + 1);
    await pendingRow(lin.email).waitFor();
  });

  it('refuses the link to an account with another email, saying whom it is for', async () => {
    const { page } = owner;
    await page.goto(pathOf(link));
    await ownerMain().getByText(`Signed in as ${olive.email}`).waitFor();
    await ownerMain().getByRole('button', { name: 'Accept invitation' }).click();
    await ownerMain().getByRole('alert').getByText(`This invitation is for ${lin.email}`).waitFor();
    await ownerMain().getByRole('button', { name: 'Sign in with another account' }).waitFor();
    await shot(owner, 'wrong-account');
  });

  it('explains the link to a signed-out visitor, who signs up and comes back to it', async () => {
    const { page } = invitee;
    await page.goto(pathOf(link));
    await page.getByRole('heading', { level: 1, name: 'Join Northwind Labs' }).waitFor();
    expect(await page.getByTestId('invitation-summary').textContent()).toMatch(
      new RegExp(`^\\s*${olive.name} invited\\s+${lin.email}\\s+to\\s+join\\s+Northwind Labs\\s+as a member\\.\\s*$`),
    );
    const next = encodeURIComponent(pathOf(link));
    expect(await page.getByRole('main').getByRole('link', { name: 'Sign in' }).getAttribute('href')).toBe(`/sign-in?next=${next}`);
    await shot(invitee, 'signed-out');

    await page.getByRole('main').getByRole('link', { name: 'Sign up' }).click();
    await page.getByRole('heading', { level: 1, name: 'Create your account' }).waitFor();
    // The invited email is filled in and kept: the invitation works for no other.
    const email = page.getByLabel('Work email');
    await expect.poll(() => email.inputValue()).toBe(lin.email);
    expect(await email.getAttribute('readonly')).not.toBeNull();
    await page.getByText('Your invitation to Northwind Labs is for this email.').waitFor();
    // Signing in instead starts from that email too, and keeps it editable.
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    await expect.poll(() => page.getByLabel('Email').inputValue()).toBe(lin.email);
    expect(await page.getByLabel('Email').getAttribute('readonly')).toBeNull();
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByRole('heading', { level: 1, name: 'Create your account' }).waitFor();
    await expect.poll(() => email.inputValue()).toBe(lin.email);
    await page.getByLabel('Name').fill(lin.name);
    await page.getByLabel('Password').fill(lin.password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL((url) => url.pathname === pathOf(link));
    await page.getByRole('main').getByText(`Signed in as ${lin.email}`).waitFor();
  });

  it('accepts, and lands in the organization', async () => {
    const { page } = invitee;
    await page.getByRole('main').getByRole('button', { name: 'Accept invitation' }).click();
    await page.waitForURL((url) => url.pathname === '/');
    await page.getByLabel('Switch organization').getByText('Northwind Labs').waitFor();
    await page.getByRole('heading', { level: 1, name: 'Command Deck' }).waitFor();
    await shot(invitee, 'joined');
  });

  it('shows the owner the new member, and no pending invitation left', async () => {
    const { page } = owner;
    await page.goto('/members');
    const row = ownerMain().getByRole('row', { name: new RegExp(lin.name) });
    await row.getByText(lin.email).waitFor();
    expect(await row.getByRole('combobox', { name: `Role of ${lin.name}` }).inputValue()).toBe('MEMBER');
    await ownerMain().getByText('2 members').waitFor();
    await pending().getByText('No pending invitations').waitFor();
  });

  it('says a used or revoked link is no longer valid', async () => {
    const { page } = invitee;
    for (const dead of [link, revokedLink]) {
      await page.goto(pathOf(dead));
      await page.getByRole('heading', { name: 'This invitation link is no longer valid' }).waitFor();
      expect(await page.getByRole('button', { name: 'Accept invitation' }).count()).toBe(0);
    }
    await shot(invitee, 'invalid');
  });

  it('pages through many pending invitations', async () => {
    const { page } = owner;
    for (let i = 1; i <= 21; i++) {
      const result = await ownerApi(INVITE_MEMBER, { input: { organizationId: orgGid, email: `guest-${i}@example.test`, role: 'VIEWER' } });
      expect(result.inviteMember.__typename).toBe('InviteMemberPayload');
    }
    await page.reload();
    const rows = () => pending().getByRole('row').count();
    await expect.poll(rows).toBe(1 + 20);
    // Newest first.
    await pending().getByRole('row').nth(1).getByText('guest-21@example.test').waitFor();
    await pending().getByText('20 of 21 shown').waitFor();
    await pending().getByRole('button', { name: 'Load more' }).click();
    await expect.poll(rows).toBe(1 + 21);
    expect(await pending().getByRole('button', { name: 'Load more' }).count()).toBe(0);
    await shot(owner, 'paged');
  });

  it('offers an admin no role above their own, when inviting or changing a role', async () => {
    const data = await ownerApi(`query ($slug: String!) { organization(slug: $slug) { members { edges { node { id user { email } } } } } }`, {
      slug: orgSlug,
    });
    const linMembership = data.organization.members.edges.find((e: { node: { user: { email: string } } }) => e.node.user.email === lin.email).node.id;
    const promoted = await ownerApi(`mutation ($input: UpdateMemberRoleInput!) { updateMemberRole(input: $input) { __typename } }`, {
      input: { membershipId: linMembership, role: 'ADMIN' },
    });
    expect(promoted.updateMemberRole.__typename).toBe('UpdateMemberRolePayload');

    const { page } = invitee;
    await page.goto('/members');
    const main = page.getByRole('main');
    const ownRole = main.getByRole('combobox', { name: `Role of ${lin.name}` });
    await expect.poll(() => ownRole.inputValue()).toBe('ADMIN');
    expect(await ownRole.locator('option').allTextContents()).toEqual(['Admin', 'Member', 'Viewer']);
    // The owner's role is not Lin's to change.
    expect(await main.getByRole('combobox', { name: `Role of ${olive.name}` }).count()).toBe(0);

    await page.getByRole('button', { name: 'Invite member' }).click();
    const dialog = page.getByRole('dialog', { name: 'Invite a member' });
    expect(await dialog.getByRole('radio').evaluateAll((inputs) => inputs.map((i) => (i as HTMLInputElement).value))).toEqual(['ADMIN', 'MEMBER', 'VIEWER']);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
  });

  it('has logged no console errors, hydration warnings or page errors', () => {
    expect(owner.errors).toEqual([]);
    expect(invitee.errors).toEqual([]);
  });
});
