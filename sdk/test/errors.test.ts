import {
  ConflictError,
  ForbiddenError,
  HubError,
  NetworkError,
  NotFoundError,
  RateLimitedError,
  UnauthorizedError,
  ValidationError,
  createClient,
  registerErrorType,
  type HubClient,
} from '@hub/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOOT_TIMEOUT_MS, clientFor as clientOf, given, socketCutter, startTestServer, type TestServer } from './support.js';

let app: TestServer;
let org: Awaited<ReturnType<ReturnType<typeof given>['anOrganization']>>;

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  org = await given(app).anOrganization();
}, BOOT_TIMEOUT_MS);
afterAll(() => app.close());

const rejection = (p: Promise<unknown>) => p.then(() => expect.fail('expected a rejection'), (e: unknown) => e);

/** A fetch that answers every request with one canned response, for failures the test server cannot produce. */
const cannedFetch = (status: number, body: unknown, headers: Record<string, string> = {}): typeof fetch => async () =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });

describe.each(['http', 'websocket'] as const)('typed errors from the real API, operations over %s', (operations) => {
  let owner: HubClient;
  const clientFor = (app: TestServer, token?: string) => clientOf(app, token, operations);
  beforeAll(() => {
    owner = clientFor(app, org.owner.token);
  });
  afterAll(() => owner.close());

  it('ValidationError names every offending field by its path inside input', async () => {
    const err = await rejection(owner.organizations.create({ name: ' ', slug: 'Not A Slug!', timeZone: 'Mars/Olympus_Mons' }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toBeInstanceOf(HubError);
    const { issues, code } = err as ValidationError;
    expect(code).toBe('VALIDATION_FAILED');
    expect(issues.map((i) => i.path.join('.')).sort()).toEqual(['name', 'slug', 'timeZone']);
    expect(issues.find((i) => i.path[0] === 'timeZone')!.message).toMatch(/time zone/i);
  });

  it('NotFoundError for ids that do not exist, are malformed, or belong to another organization', async () => {
    const stranger = await given(app).anOrganization();
    const theirProject = await given(app).aProject(stranger);
    await expect(owner.agents.create({ projectId: theirProject.gid, name: 'x', provider: 'OFFLINE', model: 'offline-small' })).rejects.toBeInstanceOf(
      NotFoundError,
    );
    await expect(owner.runs.cancel('not-a-global-id')).rejects.toBeInstanceOf(NotFoundError);
    await expect(owner.projects.get(theirProject.gid)).rejects.toBeInstanceOf(NotFoundError);
    await expect(owner.members.list(stranger.slug).toArray()).rejects.toBeInstanceOf(NotFoundError);
  });

  it('ForbiddenError when a VIEWER tries to change anything', async () => {
    const viewerUser = await given(app).aMemberOf(org, 'VIEWER');
    const viewer = clientFor(app, viewerUser.token);
    const project = await owner.projects.create({ organizationId: org.gid, name: 'Read only' });
    const agent = await owner.agents.create({ projectId: project.id, name: 'Bot', provider: 'OFFLINE', model: 'offline-small' });

    // Reading is allowed…
    expect((await viewer.projects.get(project.id)).viewerCanUpdate).toBe(false);
    expect((await viewer.agents.get(agent.id)).viewerCanRun).toBe(false);
    // …changing is not.
    const err = await rejection(viewer.projects.create({ organizationId: org.gid, name: 'Nope' }));
    expect(err).toBeInstanceOf(ForbiddenError);
    expect((err as ForbiddenError).message).toContain('VIEWER');
    await expect(viewer.agents.update({ id: agent.id, name: 'Mine now' })).rejects.toBeInstanceOf(ForbiddenError);
    await expect(viewer.runs.start({ agentId: agent.id, input: 'go' })).rejects.toBeInstanceOf(ForbiddenError);
    await expect(viewer.members.invite({ organizationId: org.gid, email: 'friend@example.test', role: 'VIEWER' })).rejects.toBeInstanceOf(
      ForbiddenError,
    );
    await expect(viewer.invitations.list(org.slug).toArray()).rejects.toBeInstanceOf(ForbiddenError);
  });

  it('ConflictError when inviting someone who is already a member, naming the field it is about', async () => {
    const member = await given(app).aMemberOf(org, 'MEMBER');
    const err = await rejection(owner.members.invite({ organizationId: org.gid, email: member.email, role: 'MEMBER' }));
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).field).toBe('email');
  });

  it('invitations: ForbiddenError above your role or for another account, NotFoundError once used or revoked', async () => {
    const admin = clientFor(app, (await given(app).aMemberOf(org, 'ADMIN')).token);
    const err = await rejection(admin.members.invite({ organizationId: org.gid, email: 'boss@example.test', role: 'OWNER' }));
    expect(err).toBeInstanceOf(ForbiddenError);
    expect((err as ForbiddenError).message).toContain('OWNER');

    const grace = await given(app).aUser('Grace');
    const stranger = clientFor(app, (await given(app).aUser('Mallory')).token);
    const asGrace = clientFor(app, grace.token);
    const { token } = await owner.members.invite({ organizationId: org.gid, email: grace.email, role: 'MEMBER' });
    // The link is a secret, but only the invited email can use it.
    const refused = await rejection(stranger.invitations.accept(token));
    expect(refused).toBeInstanceOf(ForbiddenError);
    expect((refused as ForbiddenError).message).toContain(grace.email);
    expect((await asGrace.invitations.accept(token)).user.email).toBe(grace.email);
    await expect(asGrace.invitations.accept(token)).rejects.toBeInstanceOf(NotFoundError);

    const lin = await given(app).aUser('Lin');
    const asLin = clientFor(app, lin.token);
    const pending = await owner.members.invite({ organizationId: org.gid, email: lin.email, role: 'VIEWER' });
    expect((await owner.invitations.list(org.slug).toArray()).map((i) => i.id)).toContain(pending.invitation.id);
    expect((await owner.invitations.revoke(pending.invitation.id)).status).toBe('REVOKED');
    expect((await owner.invitations.list(org.slug).toArray()).map((i) => i.id)).not.toContain(pending.invitation.id);
    const gone = await rejection(owner.invitations.revoke(pending.invitation.id));
    expect(gone).toBeInstanceOf(ConflictError);
    expect((gone as ConflictError).field).toBeNull(); // about the request as a whole
    await expect(asLin.invitations.accept(pending.token)).rejects.toBeInstanceOf(NotFoundError);
    await Promise.all([admin, stranger, asGrace, asLin].map((c) => c.close()));
  });

  it('UnauthorizedError for a bad token, over HTTP and over the WebSocket (without retrying)', async () => {
    const bad = clientFor(app, 'hub_pat_this-token-does-not-exist');
    const err = await rejection(bad.viewer());
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect((err as UnauthorizedError).code).toBe('UNAUTHENTICATED');

    const sockets = socketCutter(app);
    await expect(bad.runs.stream('UnVuOng=').next()).rejects.toBeInstanceOf(UnauthorizedError);
    expect(sockets.opened).toBe(1);
    sockets.stop();
    await bad.close();
  });
});

describe('queries and mutations over the WebSocket', () => {
  it('go over one socket, opened on first use and kept between calls', async () => {
    const owner = clientOf(app, org.owner.token, 'websocket');
    const sockets = socketCutter(app);
    try {
      for (let i = 0; i < 5; i++) expect((await owner.viewer()).user.email).toBe(org.owner.email);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await owner.organizations.list().toArray()).map((o) => o.slug)).toContain(org.slug);
      expect(sockets.opened).toBe(1);
      expect(sockets.open).toBe(1);
    } finally {
      sockets.stop();
      await owner.close();
    }
  });

  it('a refused operation is a RateLimitedError with retryAfterSeconds; a dropped socket a NetworkError, and the next call reconnects', async () => {
    const limited = await startTestServer({
      worker: false,
      runtime: { rateLimits: { namespace: `ws-ops-${Date.now()}`, rules: { apiUser: { points: 3 } } } },
    });
    const someone = await given(limited).anOrganization();
    const client = clientOf(limited, someone.owner.token, 'websocket');
    try {
      for (let i = 0; i < 3; i++) expect((await client.viewer()).user.email).toBe(someone.owner.email);
      const refused = await rejection(client.viewer());
      expect(refused).toBeInstanceOf(RateLimitedError);
      expect((refused as RateLimitedError).retryAfterSeconds).toBeGreaterThan(0);
    } finally {
      await client.close();
      await limited.close();
    }

    // The server cuts the socket while the answer is on its way: a NetworkError, then a new socket.
    const owner = clientOf(app, org.owner.token, 'websocket');
    const sockets = socketCutter(app);
    try {
      expect((await owner.viewer()).user.email).toBe(org.owner.email);
      const pending = owner.organizations.list().toArray();
      sockets.cutAll();
      expect(await rejection(pending)).toBeInstanceOf(NetworkError);
      expect((await owner.viewer()).user.email).toBe(org.owner.email);
      expect(sockets.opened).toBe(2);
    } finally {
      sockets.stop();
      await owner.close();
    }
  });
});

describe('typed errors the test server cannot produce', () => {
  it('RateLimitedError carries retryAfterSeconds, from a typed result or from HTTP 429 + Retry-After', async () => {
    const typed = createClient({
      url: 'http://hub.invalid/graphql',
      fetch: cannedFetch(200, {
        data: { createProject: { __typename: 'RateLimitedError', code: 'RATE_LIMITED', message: 'Slow down', retryAfterSeconds: 7 } },
      }),
    });
    const err = await rejection(typed.projects.create({ organizationId: 'x', name: 'y' }));
    expect(err).toBeInstanceOf(RateLimitedError);
    expect((err as RateLimitedError).retryAfterSeconds).toBe(7);

    const http = createClient({
      url: 'http://hub.invalid/graphql',
      fetch: cannedFetch(429, { errors: [{ message: 'Too many requests', extensions: { code: 'RATE_LIMITED' } }] }, { 'retry-after': '12' }),
    });
    const err2 = await rejection(http.viewer());
    expect(err2).toBeInstanceOf(RateLimitedError);
    expect((err2 as RateLimitedError).retryAfterSeconds).toBe(12);
  });

  it('NetworkError when the API cannot be reached', async () => {
    const offline = createClient({ url: 'http://127.0.0.1:9/graphql' });
    const err = await rejection(offline.health());
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as NetworkError).cause).toBeDefined();
  });

  it('NetworkError when a proxy in front of the API answers with a gateway error page of its own', async () => {
    for (const status of [502, 503, 504]) {
      const proxied = createClient({
        url: 'http://hub.invalid/graphql',
        fetch: async () => new Response('<html><body>Bad Gateway</body></html>', { status, headers: { 'content-type': 'text/html' } }),
      });
      const err = await rejection(proxied.viewer());
      expect(err).toBeInstanceOf(NetworkError);
      expect((err as NetworkError).message).toContain(String(status));
    }
  });

  it('registerErrorType maps a new typed error (e.g. a future BudgetExceededError) to its own class', async () => {
    class BudgetExceededError extends HubError {
      constructor(
        message: string,
        readonly period: string,
      ) {
        super(message, 'BUDGET_EXCEEDED');
      }
    }
    registerErrorType('BudgetExceededError', (e) => new BudgetExceededError(e.message, String(e.period)));
    const client = createClient({
      url: 'http://hub.invalid/graphql',
      fetch: cannedFetch(200, {
        data: { startRun: { __typename: 'BudgetExceededError', code: 'BUDGET_EXCEEDED', message: 'Monthly budget spent', period: 'MONTHLY' } },
      }),
    });
    const err = await rejection(client.runs.start({ agentId: 'a', input: 'b' }));
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ code: 'BUDGET_EXCEEDED', period: 'MONTHLY', message: 'Monthly budget spent' });
  });
});
