import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, startTestServer, type TestServer } from '../../../test/harness.js';
import { usingPostgres } from '../../../test/db.js';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { toGlobalId } from '../../lib/ids.js';
import { ACCESS_CHANGED_CLOSE, accessEnds } from './viewer.js';
import { given } from '../../../test/factories.js';

let app: TestServer;
beforeAll(async () => {
  app = await startTestServer({ worker: false });
});
afterAll(() => app.close());

const SIGN_UP = `mutation($input: SignUpInput!) { signUp(input: $input) {
  __typename ... on AuthPayload { viewer { user { email name } } }
  ... on Error { message code } ... on ValidationError { issues { path message } } } }`;
const SIGN_IN = `mutation($input: SignInInput!) { signIn(input: $input) {
  __typename ... on AuthPayload { viewer { user { email } } } ... on Error { message } } }`;
const VIEWER = `{ viewer { user { email } apiTokens { name prefix active lastUsedAt } } }`;

const cookieFrom = (res: { headers: Headers }) => res.headers.get('set-cookie')?.split(';')[0] ?? '';

describe('accounts and sessions', () => {
  it('signs up, sets an httpOnly SameSite session cookie, and knows the viewer by it', async () => {
    const res = await gql(app.url, SIGN_UP, { input: { email: 'Ada@Example.com', password: 'correct horse battery', name: 'Ada' } });
    expect(res.data!.signUp).toEqual({ __typename: 'AuthPayload', viewer: { user: { email: 'ada@example.com', name: 'Ada' } } });
    const setCookie = res.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/^hub_session=/);
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Lax/i);
    const me = await gql(app.url, VIEWER, {}, { cookie: cookieFrom(res) });
    expect(me.data!.viewer.user.email).toBe('ada@example.com');
    // The password is stored only as an argon2id hash.
    const row = await app.rt.prisma.user.findUniqueOrThrow({ where: { email: 'ada@example.com' } });
    expect(row.passwordHash).toMatch(/^\$argon2id\$/);
  });

  it('rejects a duplicate email, a weak password and a malformed email with typed errors, creating nothing', async () => {
    const before = await app.rt.prisma.user.count();
    const dup = await gql(app.url, SIGN_UP, { input: { email: 'ada@example.com', password: 'another long one', name: 'X' } });
    expect(dup.data!.signUp.__typename).toBe('ConflictError');
    const weak = await gql(app.url, SIGN_UP, { input: { email: 'not-an-email', password: 'short', name: '' } });
    expect(weak.data!.signUp.__typename).toBe('ValidationError');
    expect(weak.data!.signUp.issues.map((i: { path: string[] }) => i.path[0]).sort()).toEqual(['email', 'name', 'password']);
    expect(await app.rt.prisma.user.count()).toBe(before);
  });

  it('gives the same error for a wrong password and an unknown email, and audits both failures', async () => {
    const wrong = await gql(app.url, SIGN_IN, { input: { email: 'ada@example.com', password: 'wrong password!' } });
    const unknown = await gql(app.url, SIGN_IN, { input: { email: 'nobody@example.com', password: 'wrong password!' } });
    expect(wrong.data!.signIn).toEqual(unknown.data!.signIn);
    expect(wrong.data!.signIn.message).toBe('Email or password is incorrect');
    const failures = await app.rt.prisma.auditLog.count({ where: { action: 'auth.sign_in_failed' } });
    expect(failures).toBe(2);
    const ok = await gql(app.url, SIGN_IN, { input: { email: 'ADA@example.com', password: 'correct horse battery' } });
    expect(ok.data!.signIn.__typename).toBe('AuthPayload');
    expect(await app.rt.prisma.auditLog.count({ where: { action: 'auth.sign_in' } })).toBe(1);
  });

  it('signs out one session, or every session, and a dead cookie gets 401 rather than anonymous access', async () => {
    const a = cookieFrom(await gql(app.url, SIGN_IN, { input: { email: 'ada@example.com', password: 'correct horse battery' } }));
    const b = cookieFrom(await gql(app.url, SIGN_IN, { input: { email: 'ada@example.com', password: 'correct horse battery' } }));
    await gql(app.url, 'mutation { signOut { __typename } }', {}, { cookie: a });
    expect((await gql(app.url, VIEWER, {}, { cookie: a })).status).toBe(401);
    expect((await gql(app.url, VIEWER, {}, { cookie: b })).data!.viewer.user.email).toBe('ada@example.com');
    await gql(app.url, 'mutation { signOut(input: { everywhere: true }) { __typename } }', {}, { cookie: b });
    expect((await gql(app.url, VIEWER, {}, { cookie: b })).status).toBe(401);
  });
});

describe("an account's own activity", () => {
  const ACTIVITY = `query($first: Int, $after: String) { viewer { activity(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor } edges { node { action ip actor { email } target { type } } } } } }`;
  type Page = { pageInfo: { hasNextPage: boolean; endCursor: string }; edges: { node: { action: string; actor: { email: string } | null; target: { type: string } | null } }[] };

  it('lists sign-ups, sign-ins, failed attempts on the email and API tokens, newest first, to that account only', async () => {
    const email = `activity-${Date.now()}@example.test`;
    const password = 'correct horse battery';
    const cookie = cookieFrom(await gql(app.url, SIGN_UP, { input: { email, password, name: 'Act' } }));
    await gql(app.url, SIGN_IN, { input: { email, password: 'wrong password!' } });
    await gql(app.url, SIGN_IN, { input: { email, password } });
    const created = await gql(app.url, `mutation { createApiToken(input: { name: "act" }) { ... on CreateApiTokenPayload { apiToken { id } } } }`, {}, { cookie });
    await gql(app.url, `mutation($id: ID!) { revokeApiToken(input: { id: $id }) { __typename } }`, { id: created.data!.createApiToken.apiToken.id }, { cookie });
    // An organization's actions belong to its audit log, not here.
    await gql(app.url, `mutation { createOrganization(input: { name: "Act Org", slug: "act-${Date.now()}" }) { __typename } }`, {}, { cookie });

    const page = async (after?: string) => (await gql(app.url, ACTIVITY, { first: 2, after }, { cookie })).data!.viewer.activity as Page;
    const actions: string[] = [];
    let after: string | undefined;
    for (;;) {
      const p = await page(after);
      actions.push(...p.edges.map((e) => e.node.action));
      if (!p.pageInfo.hasNextPage) break;
      after = p.pageInfo.endCursor;
    }
    expect(actions).toEqual(['token.revoked', 'token.created', 'auth.sign_in', 'auth.sign_in_failed', 'auth.sign_up']);
    const first = await page();
    expect(first.edges[0]!.node).toMatchObject({ actor: { email }, target: { type: 'ApiToken' } });

    // Someone else sees only their own (here: nothing).
    const other = await given(app).aUser();
    expect((await other.gql(ACTIVITY)).data!.viewer.activity.edges).toEqual([]);
  });
});

describe('API tokens', () => {
  it('shows the secret once, authenticates with it, lists it by prefix, and stops working when revoked', async () => {
    const user = await given(app).aUser();
    const created = await user.gql(
      `mutation { createApiToken(input: { name: "ci" }) { __typename ... on CreateApiTokenPayload { secret apiToken { id name prefix } } } }`,
    );
    const { secret, apiToken } = created.data!.createApiToken;
    expect(secret).toMatch(/^hub_pat_/);
    expect(secret.startsWith(apiToken.prefix)).toBe(true);
    const stored = await app.rt.prisma.apiToken.findFirstOrThrow({ where: { name: 'ci' } });
    expect(stored.tokenHash).not.toContain(secret);

    const viaToken = await gql(app.url, VIEWER, {}, { token: secret });
    expect(viaToken.data!.viewer.user.email).toBe(user.email);
    expect(viaToken.data!.viewer.apiTokens.find((t: { name: string }) => t.name === 'ci')).toMatchObject({ active: true });
    expect(JSON.stringify(viaToken.data)).not.toContain(secret);

    const revoked = await user.gql(`mutation($id: ID!) { revokeApiToken(input: { id: $id }) { __typename } }`, { id: apiToken.id });
    expect(revoked.data!.revokeApiToken.__typename).toBe('RevokeApiTokenPayload');
    expect((await gql(app.url, VIEWER, {}, { token: secret })).status).toBe(401);
    expect(await app.rt.prisma.auditLog.count({ where: { actorId: user.id, action: { in: ['token.created', 'token.revoked'] } } })).toBe(2);
  });

  it('an expiring token stops working when it expires, also after it was just used', async () => {
    const user = await given(app).aUser();
    const created = await user.gql(`mutation($at: DateTime!) { createApiToken(input: { name: "short", expiresAt: $at }) {
      ... on CreateApiTokenPayload { secret } } }`, { at: new Date(Date.now() + 1_500).toISOString() });
    const { secret } = created.data!.createApiToken;
    expect((await gql(app.url, VIEWER, {}, { token: secret })).data!.viewer.user.email).toBe(user.email);
    await new Promise((r) => setTimeout(r, 1_600));
    expect((await gql(app.url, VIEWER, {}, { token: secret })).status).toBe(401);
  });

  it.runIf(usingPostgres())('a token revoked through one API process stops working in the others at once', async () => {
    // A second API process in all but the OS process: its own event-bus connection and its own token cache.
    const other = await startTestServer({ worker: false });
    try {
      const user = await given(app).aUser();
      const created = await user.gql(`mutation { createApiToken(input: { name: "shared" }) { ... on CreateApiTokenPayload { secret apiToken { id } } } }`);
      const { secret, apiToken } = created.data!.createApiToken;
      expect((await gql(other.url, VIEWER, {}, { token: secret })).data!.viewer.user.email).toBe(user.email);
      await user.gql(`mutation($id: ID!) { revokeApiToken(input: { id: $id }) { __typename } }`, { id: apiToken.id });
      // The announcement crosses PostgreSQL (LISTEN/NOTIFY) to the other process: well under a second.
      const until = Date.now() + 1_000;
      let status = 200;
      while (status !== 401 && Date.now() < until) {
        status = (await gql(other.url, VIEWER, {}, { token: secret })).status;
        if (status !== 401) await new Promise((r) => setTimeout(r, 20));
      }
      expect(status).toBe(401);
    } finally {
      await other.close();
    }
  });

  it("cannot revoke someone else's token (it does not exist for them)", async () => {
    const alice = await given(app).aUser();
    const mallory = await given(app).aUser();
    const created = await alice.gql(`mutation { createApiToken(input: { name: "mine" }) { ... on CreateApiTokenPayload { apiToken { id } } } }`);
    const res = await mallory.gql(`mutation($id: ID!) { revokeApiToken(input: { id: $id }) { __typename } }`, {
      id: created.data!.createApiToken.apiToken.id,
    });
    expect(res.data!.revokeApiToken.__typename).toBe('NotFoundError');
  });

  it('rejects expired tokens', async () => {
    const user = await given(app).aUser();
    await app.rt.prisma.apiToken.updateMany({ where: { userId: user.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await user.gql(VIEWER)).status).toBe(401);
  });
});

describe('open subscriptions follow changes of access', () => {
  const UPDATES = `subscription($projectId: ID!) { projectRunUpdates(projectId: $projectId) { status } }`;

  /** A live subscription on its own connection; resolves `closed` with the close code the server sent. */
  function listen(token: string, projectId: string) {
    let closedWith: (code: number) => void = () => {};
    const closed = new Promise<number>((r) => (closedWith = r));
    const errors: unknown[] = [];
    const client = createClient({
      url: app.wsUrl,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${token}` },
      on: { closed: (e) => closedWith((e as { code: number }).code) },
    });
    let connected: () => void = () => {};
    const ready = new Promise<void>((r) => (connected = r));
    client.on('connected', () => connected());
    client.subscribe({ query: UPDATES, variables: { projectId } }, { next: () => {}, error: (e) => errors.push(e), complete: () => {} });
    return { client, closed, errors, ready };
  }

  const within = <T,>(p: Promise<T>, ms = 2_000) =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`nothing within ${ms} ms`)), ms))]);

  it('revoking a token closes the connections that use it (4401), and only those', async () => {
    const org = await given(app).anOrganization();
    const project = await given(app).aProject(org);
    const created = await org.owner.gql(`mutation { createApiToken(input: { name: "ws" }) { ... on CreateApiTokenPayload { secret apiToken { id } } } }`);
    const { secret, apiToken } = created.data!.createApiToken;
    const revoked = listen(secret, project.gid);
    const other = listen(org.owner.token, project.gid);
    await Promise.all([revoked.ready, other.ready]);
    await org.owner.gql(`mutation($id: ID!) { revokeApiToken(input: { id: $id }) { __typename } }`, { id: apiToken.id });
    expect(await within(revoked.closed)).toBe(4401);
    await new Promise((r) => setTimeout(r, 100));
    expect(other.errors).toEqual([]);
    await Promise.all([revoked.client.dispose(), other.client.dispose()]);
  });

  it('removing a member makes their connections reconnect, and the organization is then closed to them', async () => {
    const org = await given(app).anOrganization();
    const project = await given(app).aProject(org);
    const member = await given(app).aMemberOf(org, 'MEMBER');
    const live = listen(member.token, project.gid);
    await live.ready;
    const membership = await app.rt.prisma.membership.findFirstOrThrow({ where: { organizationId: org.id, userId: member.id } });
    const removed = await org.owner.gql(`mutation($id: ID!) { removeMember(input: { membershipId: $id }) { __typename } }`, {
      id: toGlobalId('Membership', membership.id),
    });
    expect(removed.data!.removeMember.__typename).toBe('RemoveMemberPayload');
    expect(await within(live.closed)).toBe(ACCESS_CHANGED_CLOSE);
    await live.client.dispose();

    // Reconnecting, the same subscription is refused: the project no longer exists for them.
    const again = listen(member.token, project.gid);
    await again.ready;
    await within(
      (async () => {
        while (again.errors.length === 0) await new Promise((r) => setTimeout(r, 20));
      })(),
    );
    expect(JSON.stringify(again.errors)).toMatch(/not found/i);
    await again.client.dispose();
  });

  it('says which connections a change ends, and how', () => {
    const byToken = { userId: 'u1', email: 'a@b.c', name: 'A', via: 'token' as const, tokenId: 't1' };
    const bySession = { userId: 'u1', email: 'a@b.c', name: 'A', via: 'session' as const, sessionId: 's1' };
    expect(accessEnds(byToken, { token: 't1' })).toMatchObject({ code: 4401 });
    expect(accessEnds(byToken, { token: 't2' })).toBeNull();
    expect(accessEnds(bySession, { sessions: ['s0', 's1'] })).toMatchObject({ code: 4401 });
    expect(accessEnds(bySession, { sessions: ['s2'] })).toBeNull();
    expect(accessEnds(bySession, { userSessions: 'u1' })).toMatchObject({ code: 4401 });
    expect(accessEnds(byToken, { userSessions: 'u1' })).toBeNull();
    expect(accessEnds(byToken, { member: 'u1', organization: 'o1' })).toMatchObject({ code: ACCESS_CHANGED_CLOSE });
    expect(accessEnds(bySession, { member: 'u2', organization: 'o1' })).toBeNull();
  });
});
