import { randomUUID } from 'node:crypto';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { given, type TestUser } from '../test/factories.js';
import { gql, startTestServer, type TestServer } from '../test/harness.js';
import { toGlobalId } from './lib/ids.js';
import { randomToken, sha256 } from './lib/tokens.js';
import { ACCESS_CHANGED_CLOSE, ACCESS_CHANNEL, SESSION_ABSOLUTE_MS, SESSION_COOKIE } from './modules/auth/viewer.js';

// Who a WebSocket connection acts for, and with which role, must follow the credential and the membership
// it was opened with for as long as it stays open, as every HTTP request does.

let app: TestServer;
beforeAll(async () => {
  app = await startTestServer();
});
afterAll(() => app.close());

const VIEWER = `{ viewer { user { email } } }`;
const UPDATES = `subscription($p: ID!) { projectRunUpdates(projectId: $p) { status } }`;
const START = `mutation($input: StartRunInput!) { startRun(input: $input) { ... on StartRunPayload { run { id } } } }`;
const CHANGE_ROLE = `mutation($id: ID!, $role: Role!) { updateMemberRole(input: { membershipId: $id, role: $role }) { __typename } }`;

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const within = <T,>(p: Promise<T>, ms = 3_000) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`nothing within ${ms} ms`)), ms))]);

interface Closed {
  code: number;
  reason: string;
}

/** A graphql-ws connection opened at once; `closed` resolves with the server's close code and reason. */
function connect(connectionParams: Record<string, unknown>, headers: Record<string, string> = {}) {
  let closedWith: (c: Closed) => void = () => {};
  const closed = new Promise<Closed>((r) => (closedWith = r));
  let connected: () => void = () => {};
  const ready = new Promise<void>((r) => (connected = r));
  const client = createClient({
    url: app.wsUrl,
    lazy: false,
    retryAttempts: 0,
    onNonLazyError: () => {},
    connectionParams,
    webSocketImpl: class extends WebSocket {
      constructor(url: string, protocols: string | string[]) {
        super(url, protocols, { headers });
      }
    },
    on: { connected: () => connected(), closed: (e) => closedWith({ code: (e as Closed).code, reason: String((e as Closed).reason) }) },
  });
  return { client, closed, ready };
}

/**
 * Runs a query or mutation on an open client: its result, or what ended it (errors or a close event). It
 * completes by itself: a client that disposes an operation itself may close its connection (graphql-ws).
 */
function first(client: Client, query: string, variables: Record<string, unknown> = {}) {
  return new Promise<{ data?: any; errors?: any[]; error?: any }>((resolve) => {
    client.subscribe({ query, variables }, { next: (r) => resolve(r as { data?: any }), error: (error) => resolve({ error }), complete: () => {} });
  });
}

/** A subscription left running; its results and errors are collected. */
function keep(client: Client, query: string, variables: Record<string, unknown> = {}) {
  const results: any[] = [];
  const errors: unknown[] = [];
  client.subscribe({ query, variables }, { next: (r) => void results.push(r), error: (e) => void errors.push(e), complete: () => {} });
  return { results, errors };
}

/**
 * A client connecting as the UI does: graphql-ws reconnects after a close that is not fatal, and subscribes
 * again. `closes` collects the close codes, `connections()` counts the connections made.
 */
function reconnecting(token: string) {
  const closes: number[] = [];
  let connections = 0;
  const client = createClient({
    url: app.wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 3,
    retryWait: async () => {},
    connectionParams: { authorization: `Bearer ${token}` },
    on: { connected: () => void connections++, closed: (e) => void closes.push((e as Closed).code) },
  });
  return { client, closes, connections: () => connections };
}

/** A session of `user` that ends at `expiresAt` and cannot slide further: its cookie. */
async function aSessionEnding(user: TestUser, expiresAt: Date, createdAt = new Date(expiresAt.getTime() - SESSION_ABSOLUTE_MS)) {
  const token = randomToken(32);
  await app.rt.prisma.session.create({ data: { userId: user.id, tokenHash: sha256(token), expiresAt, createdAt } });
  return `${SESSION_COOKIE}=${token}`;
}

async function membershipOf(orgId: string, userId: string) {
  const m = await app.rt.prisma.membership.findFirstOrThrow({ where: { organizationId: orgId, userId } });
  return toGlobalId('Membership', m.id);
}

describe('a role changed while a connection is open', () => {
  it('makes the connection reconnect, and what its subscription then renders follows the new role', async () => {
    const org = await given(app).anOrganization();
    const project = await given(app).aProject(org);
    const agent = await given(app).anOfflineAgent(project, { model: 'offline-small', maxOutputTokens: 5 });
    const admin = await given(app).aMemberOf(org, 'ADMIN');
    const bystander = await given(app).aMemberOf(org, 'MEMBER');
    const other = connect({ authorization: `Bearer ${bystander.token}` });

    const { client, closes, connections } = reconnecting(admin.token);
    const live = keep(client, `subscription($p: ID!) { projectRunUpdates(projectId: $p) { status run { project { organization { viewerRole } } } } }`, {
      p: project.gid,
    });
    await other.ready;
    while (connections() === 0) await wait(20);

    const demoted = await org.owner.gql(CHANGE_ROLE, { id: await membershipOf(org.id, admin.id), role: 'VIEWER' });
    expect(demoted.data!.updateMemberRole.__typename).toBe('UpdateMemberRolePayload');
    await within((async () => {
      while (connections() < 2) await wait(20);
    })());
    expect(closes).toEqual([ACCESS_CHANGED_CLOSE]);

    await org.owner.gql(START, { input: { agentId: agent.gid, input: 'after the demotion' } });
    await within((async () => {
      while (live.results.length === 0) await wait(20);
    })());
    expect(live.errors).toEqual([]);
    expect(live.results.map((r) => r.data.projectRunUpdates.run.project.organization.viewerRole)).not.toContain('ADMIN');
    expect(live.results[0].data.projectRunUpdates.run.project.organization.viewerRole).toBe('VIEWER');

    // Someone else's connection goes on.
    const bystanderClosed = await Promise.race([other.closed, wait(200).then(() => null)]);
    expect(bystanderClosed).toBeNull();
    await Promise.all([client.dispose(), other.client.dispose()]);
  });

  it('a change to the same role reconnects nobody', async () => {
    const org = await given(app).anOrganization();
    const member = await given(app).aMemberOf(org, 'MEMBER');
    const live = connect({ authorization: `Bearer ${member.token}` });
    await live.ready;
    const same = await org.owner.gql(CHANGE_ROLE, { id: await membershipOf(org.id, member.id), role: 'MEMBER' });
    expect(same.data!.updateMemberRole.__typename).toBe('UpdateMemberRolePayload');
    expect(await Promise.race([live.closed, wait(300).then(() => null)])).toBeNull();
    await live.client.dispose();
  });
});

describe('an organization deleted while its members are connected', () => {
  it("makes their connections reconnect, and their subscriptions to it then fail; other organizations' members go on", async () => {
    const org = await given(app).anOrganization();
    const project = await given(app).aProject(org);
    const member = await given(app).aMemberOf(org, 'MEMBER');
    const elsewhere = await given(app).anOrganization();
    const bystander = connect({ authorization: `Bearer ${elsewhere.owner.token}` });
    const { client, closes, connections } = reconnecting(member.token);
    const live = keep(client, UPDATES, { p: project.gid });
    await bystander.ready;
    while (connections() === 0) await wait(20);

    const DELETE = `mutation($id: ID!, $slug: String!) { deleteOrganization(input: { id: $id, confirmSlug: $slug }) { __typename } }`;
    const deleted = await org.owner.gql(DELETE, { id: org.gid, slug: org.slug });
    expect(deleted.data!.deleteOrganization.__typename).toBe('DeleteOrganizationPayload');
    await within((async () => {
      while (connections() < 2 || live.errors.length + live.results.length === 0) await wait(20);
    })());
    // (The client then closes its connection, with nothing left on it.)
    expect(closes[0]).toBe(ACCESS_CHANGED_CLOSE);
    expect(live.results).toEqual([]);
    expect(live.errors).toEqual([[{ message: 'Project not found', extensions: { code: 'NOT_FOUND' } }]]);

    expect(await Promise.race([bystander.closed, wait(200).then(() => null)])).toBeNull();
    await Promise.all([client.dispose(), bystander.client.dispose()]);
  });
});

describe('a subscription whose events are executed once for all its subscribers', () => {
  it('is never one whose fields read the viewer, however its document names its root field', async () => {
    const org = await given(app).anOrganization();
    const project = await given(app).aProject(org);
    const agent = await given(app).anOfflineAgent(project, { model: 'offline-small', maxOutputTokens: 5 });
    const admin = await given(app).aMemberOf(org, 'ADMIN');
    const viewer = await given(app).aMemberOf(org, 'VIEWER');
    // A skipped runEvents first, then the field that runs: a dashboard whose run renders per viewer.
    const doc = `subscription($p: ID!) {
      runEvents(runId: "skipped") @skip(if: true) { seq }
      projectRunUpdates(projectId: $p) { status run { viewerCanCancel project { organization { viewerRole } } } }
    }`;
    const byAdmin = connect({ authorization: `Bearer ${admin.token}` });
    const byViewer = connect({ authorization: `Bearer ${viewer.token}` });
    await Promise.all([byAdmin.ready, byViewer.ready]);
    const adminSees = keep(byAdmin.client, doc, { p: project.gid });
    const viewerSees = keep(byViewer.client, doc, { p: project.gid });
    await within(
      (async () => {
        // Runs until both dashboards saw one (then both subscriptions are live and have seen the same events).
        while (adminSees.results.length === 0 || viewerSees.results.length === 0) {
          await org.owner.gql(START, { input: { agentId: agent.gid, input: 'watched' } });
          await wait(300);
        }
      })(),
      10_000,
    );
    expect([...adminSees.errors, ...viewerSees.errors]).toEqual([]);
    const roles = (seen: { results: any[] }) => [...new Set(seen.results.filter((r) => r.data.projectRunUpdates.run).map((r) => r.data.projectRunUpdates.run.project.organization.viewerRole))];
    expect(roles(adminSees)).toEqual(['ADMIN']);
    expect(roles(viewerSees)).toEqual(['VIEWER']);
    await Promise.all([byAdmin.client.dispose(), byViewer.client.dispose()]);
  });
});

describe('a credential that expires while a connection is open', () => {
  it('an API token: the connection works until the expiry, then closes with 4401 and its subscriptions end', async () => {
    const org = await given(app).anOrganization();
    const project = await given(app).aProject(org);
    const expiresAt = Date.now() + 1_500;
    const created = await org.owner.gql(
      `mutation($at: DateTime!) { createApiToken(input: { name: "short", expiresAt: $at }) { ... on CreateApiTokenPayload { secret } } }`,
      { at: new Date(expiresAt).toISOString() },
    );
    const live = connect({ authorization: `Bearer ${created.data!.createApiToken.secret}` });
    await live.ready;
    expect((await first(live.client, VIEWER)).data.viewer.user.email).toBe(org.owner.email);
    const running = keep(live.client, UPDATES, { p: project.gid });

    const closed = await within(live.closed, 4_000);
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    expect(closed).toEqual({ code: 4401, reason: 'Invalid, expired or revoked API token' });
    await within((async () => {
      while (running.errors.length === 0) await wait(20);
    })());
    expect(running.errors).toEqual([expect.objectContaining({ code: 4401 })]);
    await live.client.dispose();
  });

  it('a session: the connection closes with 4401 when the session ends', async () => {
    const user = await given(app).aUser();
    const expiresAt = Date.now() + 1_500;
    const cookie = await aSessionEnding(user, new Date(expiresAt));
    const live = connect({}, { cookie });
    await live.ready;
    expect((await first(live.client, VIEWER)).data.viewer.user.email).toBe(user.email);

    const closed = await within(live.closed, 4_000);
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    expect(closed).toEqual({ code: 4401, reason: 'Session expired; sign in again' });
    await live.client.dispose();
  });

  it('a session extended meanwhile keeps its connection open', async () => {
    const user = await given(app).aUser();
    const cookie = await aSessionEnding(user, new Date(Date.now() + 1_000), new Date());
    const live = connect({}, { cookie });
    await live.ready;
    // Extended as its use over HTTP would (sliding expiry).
    await app.rt.prisma.session.updateMany({ where: { userId: user.id }, data: { expiresAt: new Date(Date.now() + 3600_000) } });
    expect(await Promise.race([live.closed, wait(1_500).then(() => null)])).toBeNull();
    expect((await first(live.client, VIEWER)).data.viewer.user.email).toBe(user.email);
    await live.client.dispose();
  });

  it('a session that ended is refused at the next operation on the connection, as over HTTP', async () => {
    const org = await given(app).anOrganization();
    const cookie = await aSessionEnding(org.owner, new Date(Date.now() + 3600_000), new Date());
    const live = connect({}, { cookie });
    await live.ready;
    expect((await first(live.client, VIEWER)).data.viewer.user.email).toBe(org.owner.email);
    await app.rt.prisma.session.updateMany({ where: { userId: org.owner.id }, data: { expiresAt: new Date(Date.now() - 1_000) } });
    expect((await gql(app.url, VIEWER, {}, { cookie })).status).toBe(401);

    const before = await app.rt.prisma.organization.count();
    const made = await first(live.client, `mutation { createOrganization(input: { name: "after the session ended" }) { __typename } }`);
    expect(made.data).toBeUndefined();
    expect(await live.closed).toEqual({ code: 4401, reason: 'Session expired; sign in again' });
    expect(await app.rt.prisma.organization.count()).toBe(before);
  });
});

describe('a page of another site', () => {
  it('cannot have the session cookie authenticate it, whatever connection parameters it sends', async () => {
    const user = await given(app).aUser();
    const cookie = await aSessionEnding(user, new Date(Date.now() + 3600_000), new Date());
    /** The handshake from a foreign page: the viewer's email once acknowledged, or the close code. */
    const handshake = (payload: unknown) =>
      new Promise<string | number>((resolve) => {
        const socket = new WebSocket(app.wsUrl, 'graphql-transport-ws', { headers: { cookie, origin: 'http://evil.test' } });
        socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload })));
        socket.on('message', (data) => {
          const msg = JSON.parse(String(data));
          if (msg.type === 'connection_ack') socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: VIEWER } }));
          if (msg.type === 'next') {
            resolve(msg.payload?.data?.viewer?.user.email ?? 'anonymous');
            socket.close();
          }
        });
        socket.on('close', (code) => resolve(code));
      });
    const other = await given(app).aUser();
    const shapes = [
      {},
      { authorization: '' },
      { authorization: '', token: '' },
      { authorization: '', token: other.token },
      { token: '' },
      { authorization: ' ' },
      { authorization: 'Bearer ' },
      { authorization: null },
      { authorization: ['Bearer x'] },
      { token: 0 },
      { token: false },
      [],
      ['Bearer x'],
      'Bearer x',
    ];
    const answers = await Promise.all(shapes.map(handshake));
    // Refused (4403), a malformed credential or payload refused (4401, 4400), or the token's own user; never the cookie's.
    const leaked = shapes.filter((_, i) => ![4400, 4401, 4403, other.email].includes(answers[i]!));
    expect(leaked).toEqual([]);
    // A token of its own still works from anywhere.
    expect(await handshake({ authorization: `Bearer ${user.token}` })).toBe(user.email);
  });
});

describe('the event bus reconnecting', () => {
  it('makes every signed-in connection reconnect, since changes of access may have been missed meanwhile', async () => {
    const user = await given(app).aUser();
    const signedIn = connect({ authorization: `Bearer ${user.token}` });
    const anonymous = connect({});
    await Promise.all([signedIn.ready, anonymous.ready]);
    // What the PostgreSQL bus tells its subscribers after it reconnected.
    await app.rt.bus.publish(ACCESS_CHANNEL, null);
    expect(await within(signedIn.closed)).toEqual({ code: ACCESS_CHANGED_CLOSE, reason: 'Access changed; reconnect' });
    // An anonymous connection has no access to lose.
    expect(await Promise.race([anonymous.closed, wait(200).then(() => null)])).toBeNull();
    await Promise.all([signedIn.client.dispose(), anonymous.client.dispose()]);
  });
});

describe('a token revoked while its connection is being authenticated', () => {
  it('does not authenticate any operation on it', async () => {
    const org = await given(app).anOrganization();
    const created = await org.owner.gql(`mutation { createApiToken(input: { name: "racing" }) { ... on CreateApiTokenPayload { secret apiToken { id } } } }`);
    const { secret, apiToken } = created.data!.createApiToken;

    // The connection's token lookup has read the token (still valid) when the revocation is announced.
    const real = app.rt.prisma;
    let looked: () => void = () => {};
    const lookedUp = new Promise<void>((r) => (looked = r));
    let release: () => void = () => {};
    const released = new Promise<void>((r) => (release = r));
    app.rt.prisma = new Proxy(real, {
      get(target, prop) {
        const value = Reflect.get(target, prop);
        if (prop !== '$queryRaw') return typeof value === 'function' ? value.bind(target) : value;
        return async (strings: TemplateStringsArray, ...values: unknown[]) => {
          const rows = await value.call(target, strings, ...values);
          if (values[0] === sha256(secret)) {
            looked();
            await released;
          }
          return rows;
        };
      },
    });
    try {
      const live = connect({ authorization: `Bearer ${secret}` });
      await within(lookedUp);
      const revoked = await org.owner.gql(`mutation($id: ID!) { revokeApiToken(input: { id: $id }) { __typename } }`, { id: apiToken.id });
      expect(revoked.data!.revokeApiToken.__typename).toBe('RevokeApiTokenPayload');
      release();
      await within(live.ready);
      const answer = await first(live.client, VIEWER);
      expect(answer.data).toBeUndefined();
      expect((await within(live.closed)).code).toBe(4401);
    } finally {
      app.rt.prisma = real;
    }
  });
});

describe('bad credentials over WebSocket', () => {
  it('are charged to the anonymous budget of the address, as over HTTP', async () => {
    const limited = await startTestServer({
      worker: false,
      runtime: { rateLimits: { namespace: `ws-${randomUUID()}`, rules: { apiAnonymous: { points: 3 } } } },
    });
    try {
      const attempt = () =>
        new Promise<Closed>((resolve) => {
          const socket = new WebSocket(limited.wsUrl, 'graphql-transport-ws');
          socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer hub_pat_guess' } })));
          socket.on('close', (code, reason) => resolve({ code, reason: String(reason) }));
        });
      const closes = [];
      for (let i = 0; i < 4; i++) closes.push(await attempt());
      expect(closes.map((c) => c.code)).toEqual([4401, 4401, 4401, 4429]);
      expect(closes[3]!.reason).toMatch(/^Too many requests; retry in \d+ s$/);
      // The same budget as anonymous HTTP requests from that address.
      expect((await gql(limited.url, '{ health { ok } }')).status).toBe(429);
    } finally {
      await limited.close();
    }
  });

  it('fall on the client behind a trusted proxy (X-Forwarded-For), as over HTTP, not on the proxy', async () => {
    const limited = await startTestServer({
      worker: false,
      runtime: { rateLimits: { namespace: `ws-${randomUUID()}`, rules: { apiAnonymous: { points: 3 } } } },
    });
    try {
      // The test connects from loopback, which the server trusts as its proxy.
      const attempt = (client: string) =>
        new Promise<number>((resolve) => {
          const socket = new WebSocket(limited.wsUrl, 'graphql-transport-ws', { headers: { 'x-forwarded-for': `${client}, 127.0.0.1` } });
          socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer hub_pat_guess' } })));
          socket.on('close', (code) => resolve(code));
        });
      const codes = [];
      for (let i = 0; i < 4; i++) codes.push(await attempt('203.0.113.7'));
      expect(codes).toEqual([4401, 4401, 4401, 4429]);
      // Another client behind the same proxy still has its budget.
      expect(await attempt('203.0.113.8')).toBe(4401);
      const anonymous = (client: string) =>
        fetch(`${limited.url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-forwarded-for': client },
          body: JSON.stringify({ query: '{ health { ok } }' }),
        }).then((r) => r.status);
      expect(await anonymous('203.0.113.7')).toBe(429);
      expect(await anonymous('203.0.113.9')).toBe(200);
    } finally {
      await limited.close();
    }
  });
});
