import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { serverAudits } from 'graphql-http';
import type { GraphQLScalarType } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { given, type TestOrg, type TestUser } from '../test/factories.js';
import { gql, startTestServer, type TestServer } from '../test/harness.js';
import { wsClient } from '../test/subscribe.js';
import { toGlobalId } from './lib/ids.js';
import { repoRoot } from './lib/paths.js';
import { schema } from './schema/index.js';
import { MAX_ALIASES, MAX_TOKENS } from './schema/limits.js';
import { QUERY_LIMITS } from './schema/builder.js';

const APP_ORIGIN = 'http://app.test';
// The first file on a test worker boots the shared database: slow on a busy machine, so allow it time.
const BOOT_TIMEOUT = 180_000;
const GRAPHQL_RESPONSE = 'application/graphql-response+json';

let app: TestServer;
let prod: TestServer;
let owner: TestUser;
let org: TestOrg;

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  prod = await startTestServer({ worker: false, env: { NODE_ENV: 'production', SESSION_SECRET: 'x'.repeat(32), APP_ORIGIN } });
  org = await given(app).anOrganization();
  owner = org.owner;
}, BOOT_TIMEOUT);
afterAll(async () => {
  await app?.close();
  await prod?.close();
});

/** POSTs a raw body, so tests control the media types and can send what no client library would. */
async function send(url: string, body: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  let json: { data?: any; errors?: any[]; extensions?: any } | undefined;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

const post = (url: string, query: string, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  send(url, JSON.stringify({ query, variables }), headers);

describe('GraphQL over HTTP', () => {
  it('passes every MUST and SHOULD audit of graphql-http against the real server', async () => {
    const failures: string[] = [];
    for (const audit of serverAudits({ url: app.graphqlUrl })) {
      if (audit.name.startsWith('MAY')) continue;
      const result = await audit.fn();
      if (result.status !== 'ok') failures.push(`${audit.name}: ${result.reason}`);
    }
    expect(failures).toEqual([]);
  }, 60_000);

  it('answers request errors with 400 for application/graphql-response+json, and 200 for legacy application/json', async () => {
    const modern = await post(app.graphqlUrl, '{ nope }', {}, { accept: GRAPHQL_RESPONSE });
    expect(modern.status).toBe(400);
    expect(modern.headers.get('content-type')).toMatch(/^application\/graphql-response\+json/);
    const legacy = await post(app.graphqlUrl, '{ nope }', {}, { accept: 'application/json' });
    expect(legacy.status).toBe(200);
    expect(legacy.headers.get('content-type')).toMatch(/^application\/json/);
    expect(legacy.json!.errors![0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
  });

  it('keeps CSRF prevention on: simple requests that a browser sends cross-site without a preflight are refused', async () => {
    const textPlain = await send(app.graphqlUrl, JSON.stringify({ query: '{ health { ok } }' }), { 'content-type': 'text/plain' });
    expect(textPlain.status).toBe(400);
    expect(textPlain.text).toMatch(/Cross-Site Request Forgery/);
    const simpleGet = await fetch(`${app.graphqlUrl}?query=${encodeURIComponent('{ health { ok } }')}`);
    expect(simpleGet.status).toBe(400);
    const preflighted = await fetch(`${app.graphqlUrl}?query=${encodeURIComponent('{ health { ok } }')}`, {
      headers: { 'apollo-require-preflight': 'true' },
    });
    expect(preflighted.status).toBe(200);
  });

  it('allows cross-origin calls only from APP_ORIGIN, with credentials', async () => {
    const preflight = (origin: string) =>
      fetch(prod.graphqlUrl, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
    const foreign = await preflight('http://evil.test');
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
    const allowed = await preflight(APP_ORIGIN);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    expect(allowed.headers.get('access-control-allow-credentials')).toBe('true');

    const foreignPost = await post(prod.graphqlUrl, '{ health { ok } }', {}, { origin: 'http://evil.test' });
    expect(foreignPost.headers.get('access-control-allow-origin')).toBeNull();
    const appPost = await post(prod.graphqlUrl, '{ health { ok } }', {}, { origin: APP_ORIGIN });
    expect(appPost.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    // Without APP_ORIGIN no origin is allowed at all.
    expect((await post(app.graphqlUrl, '{ health { ok } }', {}, { origin: APP_ORIGIN })).headers.get('access-control-allow-origin')).toBeNull();
  });

  it('refuses a WebSocket that a page of another site opens with the session cookie (cross-site WebSocket hijacking)', async () => {
    const signIn = await fetch(prod.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: 'mutation($input: SignUpInput!) { signUp(input: $input) { __typename } }',
        variables: { input: { email: `ws-${Date.now()}@example.test`, password: 'correct horse battery', name: 'Ws' } },
      }),
    });
    const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
    const host = new URL(prod.url).host;
    /** The graphql-ws handshake with these headers: the viewer's email once acknowledged, or the close code. */
    const handshake = (headers: Record<string, string>, payload: Record<string, unknown> = {}) =>
      new Promise<string | number>((resolve) => {
        const socket = new WebSocket(prod.wsUrl, 'graphql-transport-ws', { headers });
        socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload })));
        socket.on('message', (data) => {
          const msg = JSON.parse(String(data)) as { type: string; payload?: { data?: { viewer: { user: { email: string } } | null } } };
          if (msg.type === 'connection_ack') socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: '{ viewer { user { email } } }' } }));
          if (msg.type === 'next') {
            resolve(msg.payload?.data?.viewer?.user.email ?? 'anonymous');
            socket.close();
          }
        });
        socket.on('close', (code) => resolve(code));
      });
    expect(await handshake({ cookie, origin: 'http://evil.test' })).toBe(4403);
    expect(await handshake({ cookie, origin: 'null' })).toBe(4403);
    // The UI's own pages, and APP_ORIGIN's, use the cookie.
    expect(await handshake({ cookie, origin: `http://${host}` })).toMatch(/^ws-/);
    expect(await handshake({ cookie, origin: APP_ORIGIN })).toMatch(/^ws-/);
    // A client with a token of its own may connect from anywhere; one without credentials is anonymous.
    expect(await handshake({ origin: 'http://evil.test' }, { authorization: `Bearer ${owner.token}` })).toBe(owner.email);
    expect(await handshake({ origin: 'http://evil.test' })).toBe('anonymous');
    expect(await handshake({ origin: 'http://evil.test', cookie: 'theme=dark' })).toBe('anonymous');
  });

  it('sends helmet security headers and hides the framework', async () => {
    const res = await post(app.graphqlUrl, '{ health { ok } }');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(res.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(res.headers.get('x-powered-by')).toBeNull();
    // Answers are the caller's own and POSTed: no ETag (Express would hash every response body for one).
    expect(res.headers.get('etag')).toBeNull();
  });

  it('answers a plain JSON POST (straight to Apollo) as Express answers every other request to /graphql', async () => {
    // A gzipped body is one the direct path leaves to Express and its body parser: the two must agree.
    const body = JSON.stringify({ query: 'query Who { viewer { user { email } } }' });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${owner.token}`, 'x-request-id': 'same' };
    const direct = await fetch(app.graphqlUrl, { method: 'POST', headers, body });
    const viaExpress = await fetch(app.graphqlUrl, { method: 'POST', headers: { ...headers, 'content-encoding': 'gzip' }, body: gzipSync(body) });
    const shown = (res: Response) => [...res.headers].filter(([name]) => !['date', 'content-length', 'keep-alive', 'connection'].includes(name));
    expect(direct.status).toBe(200);
    expect(viaExpress.status).toBe(200);
    expect(shown(direct)).toEqual(shown(viaExpress));
    expect(await direct.json()).toMatchObject({ data: { viewer: { user: { email: owner.email } } } });
    expect(await viaExpress.json()).toMatchObject({ data: { viewer: { user: { email: owner.email } } } });

    // Media type parameters: UTF-8 is read directly, anything else is Express's to refuse.
    const utf8 = await send(app.graphqlUrl, '{"query":"{ health { ok } }"}', { 'content-type': 'application/json; charset=UTF-8' });
    expect(utf8.json).toMatchObject({ data: { health: { ok: true } } });
    const latin1 = await send(app.graphqlUrl, '{"query":"{ health { ok } }"}', { 'content-type': 'application/json; charset=latin1' });
    expect(latin1.status).toBe(415);
    // Only an object or an array is a body, as for express.json's strict mode; an empty body is an empty one.
    const scalar = await send(app.graphqlUrl, '"{ health { ok } }"');
    expect(scalar.status).toBe(400);
    expect(scalar.json!.errors![0]).toMatchObject({ extensions: { code: 'BAD_REQUEST' } });
    expect(scalar.json!.errors![0].message).toMatch(/^The request body is not valid JSON/);
    const empty = await send(app.graphqlUrl, '');
    const emptyViaExpress = await fetch(app.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync('') });
    expect(empty.status).toBe(400);
    expect(emptyViaExpress.status).toBe(400);
    const withoutStack = ({ errors }: { errors: { message: string; extensions: { code: string } }[] }) => errors.map(({ message, extensions: { code } }) => ({ message, code }));
    expect(withoutStack(empty.json as never)).toEqual(withoutStack((await emptyViaExpress.json()) as never));
  });
});

describe('in production', () => {
  it('refuses introspection, over HTTP and over WebSocket', async () => {
    const http = await post(prod.graphqlUrl, '{ __schema { queryType { name } } }');
    expect(http.json!.data).toBeUndefined();
    expect(http.json!.errors![0].message).toMatch(/introspection/i);
    expect((await post(prod.graphqlUrl, '{ __type(name: "User") { name } }')).json!.errors![0].message).toMatch(/introspection/i);

    const client = wsClient(prod.wsUrl);
    const error = await new Promise<unknown>((resolve) => {
      client.subscribe({ query: '{ __schema { types { name } } }' }, { next: () => resolve(null), error: resolve, complete: () => resolve(null) });
    });
    await client.dispose();
    expect(JSON.stringify(error)).toMatch(/introspection/i);
    // Development keeps it, for GraphiQL and codegen.
    expect((await post(app.graphqlUrl, '{ __schema { queryType { name } } }')).json!.data.__schema.queryType.name).toBe('Query');
  });

  it('never suggests field, argument or enum names', async () => {
    const probes = [
      post(prod.graphqlUrl, '{ viewr { user { email } } }'),
      post(prod.graphqlUrl, '{ organization(slg: "x") { id } }'),
      post(prod.graphqlUrl, 'mutation($input: InviteMemberInput!) { inviteMember(input: $input) { __typename } }', {
        input: { organizationId: org.gid, email: 'a@example.test', role: 'ADMN' },
      }),
    ];
    for (const res of await Promise.all(probes)) {
      expect(res.json!.errors!.length).toBeGreaterThan(0);
      expect(res.text).not.toMatch(/did you mean/i);
    }
    // The probes are meaningful: development does suggest.
    expect((await post(app.graphqlUrl, '{ viewr { user { email } } }')).json!.errors![0].message).toMatch(/Did you mean "viewer"/);
  });

  it('masks internal errors: a generic message, no stack trace, no detail', async () => {
    const user = await given(prod).aUser();
    const real = prod.rt.prisma;
    const failing = new Proxy(real, {
      get(target, prop) {
        if (prop === 'organization') {
          return { findFirst: () => Promise.reject(new Error('connect ECONNREFUSED 10.9.8.7:5432 password=hunter2')) };
        }
        const value = Reflect.get(target, prop);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    prod.rt.prisma = failing;
    try {
      const res = await gql(prod.url, '{ organization(slug: "anything") { id } }', {}, { token: user.token });
      expect(res.errors).toEqual([{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }]);
      expect(JSON.stringify(res)).not.toMatch(/hunter2|ECONNREFUSED|stacktrace|at \w+ \(/);
    } finally {
      prod.rt.prisma = real;
    }
  });

  it('keeps the code and message of expected errors', async () => {
    const res = await gql(prod.url, '{ viewer { user { email } } }', {}, { token: 'hub_pat_revoked' });
    expect(res.status).toBe(401);
    expect(res.errors![0]).toEqual({ message: 'Invalid, expired or revoked API token', extensions: { code: 'UNAUTHENTICATED' } });
  });
});

describe('operation cost and shape', () => {
  const nested = (depth: number): string => (depth === 0 ? 'role' : `organization { members { edges { node { ${nested(depth - 1)} } } } }`);

  it('reports the estimated cost of every operation in extensions.cost', async () => {
    const res = await post(app.graphqlUrl, '{ health { ok } }');
    expect(res.json!.extensions.cost).toEqual({ requested: 2, limit: QUERY_LIMITS.complexity, depth: 2, breadth: 2 });
  });

  it('rejects too deep, too costly and too broad operations before running them', async () => {
    const deep = await post(app.graphqlUrl, `{ viewer { organizations { edges { node { members { edges { node { ${nested(2)} } } } } } } } }`, {}, { accept: GRAPHQL_RESPONSE });
    expect(deep.status).toBe(400);
    expect(deep.json!.errors![0].extensions.code).toBe('QUERY_DEPTH');
    expect(deep.json!.data).toBeUndefined();

    const costly = await post(app.graphqlUrl, `{ viewer { organizations { edges { node { members { edges { node { ${nested(1)} } } } } } } } }`);
    expect(costly.json!.errors![0].extensions.code).toBe('QUERY_COMPLEXITY');
    expect(costly.json!.extensions.cost.requested).toBeGreaterThan(costly.json!.extensions.cost.limit);

    const broad = await post(app.graphqlUrl, `{ health { ${'ok '.repeat(150)} } }`);
    expect(broad.json!.errors![0].extensions.code).toBe('QUERY_BREADTH');

    // The same limits hold over WebSocket.
    const client = wsClient(app.wsUrl, owner.token);
    const overWs = await new Promise<unknown>((resolve) => {
      client.subscribe({ query: `{ viewer { organizations { edges { node { members { edges { node { ${nested(2)} } } } } } } } }` }, { next: resolve, error: resolve, complete: () => resolve(null) });
    });
    await client.dispose();
    expect((overWs as { extensions: { code: string } }[]).map((e) => e.extensions.code)).toEqual(['QUERY_DEPTH', 'QUERY_COMPLEXITY']);
  });

  it(`limits aliases to ${MAX_ALIASES} and documents to ${MAX_TOKENS} tokens`, async () => {
    const aliases = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: health { ok }`).join(' ')} }`;
    expect((await post(app.graphqlUrl, aliases(MAX_ALIASES))).json!.errors).toBeUndefined();
    const tooMany = await post(app.graphqlUrl, aliases(MAX_ALIASES + 1));
    expect(tooMany.json!.errors![0].message).toBe(`The document uses more than ${MAX_ALIASES} aliases`);

    const long = await post(app.graphqlUrl, `{ health { ok } } ${'query Q { health { ok } } '.repeat(400)}`);
    expect(long.json!.errors![0].message).toMatch(new RegExp(`^Syntax Error: Document contains more th\\w+ ${MAX_TOKENS} tokens`));
  });

  it('costs a paged list at the page it serves: Run.events returns up to 500, and is costed so', async () => {
    const events = (first: string) => `{ run(id: "${toGlobalId('AgentRun', randomUUID())}") { events${first} { seq type } } }`;
    const cost = async (first: string) => (await post(app.graphqlUrl, events(first), {}, { authorization: `Bearer ${owner.token}` })).json!.extensions.cost.requested;
    expect(await cost('')).toBe(1 + 1 + 500 * 2);
    expect(await cost('(first: 1000)')).toBe(1 + 1 + 500 * 2);
    expect(await cost('(first: 20)')).toBe(1 + 1 + 20 * 2);
  });

  it('reads Money up to a BIGINT of micro-dollars: past it, a coercion error and nothing stored', async () => {
    const SET = `mutation($limit: Money!) { setBudget(input: { organizationId: "${org.gid}", period: DAILY, limit: $limit }) { __typename } }`;
    const refused = await owner.gql(SET, { limit: '9223372036854775808' });
    expect(refused.errors![0]!.message).toContain('Money must be at most 9223372036854775807 micro-dollars');
    expect(await app.rt.prisma.budget.count({ where: { organizationId: org.id } })).toBe(0);
  });

  it('clamps `first` to 100 items per page rather than failing the request', async () => {
    const big = await given(app).anOrganization();
    const users = Array.from({ length: 105 }, (_, i) => ({ email: `m${i}-${big.slug}@example.test`, name: `M${i}`, passwordHash: 'x' }));
    await app.rt.prisma.user.createMany({ data: users });
    const ids = await app.rt.prisma.user.findMany({ where: { email: { in: users.map((u) => u.email) } }, select: { id: true } });
    await app.rt.prisma.membership.createMany({ data: ids.map((u) => ({ organizationId: big.id, userId: u.id, role: 'VIEWER' as const })) });
    const res = await big.owner.gql(`query($slug: String!) { organization(slug: $slug) { members(first: 1000) { totalCount pageInfo { hasNextPage } edges { node { id } } } } }`, {
      slug: big.slug,
    });
    expect(res.errors).toBeUndefined();
    expect(res.data!.organization.members.edges).toHaveLength(100);
    expect(res.data!.organization.members.pageInfo.hasNextPage).toBe(true);
    expect(res.data!.organization.members.totalCount).toBe(106);
  });

  it('refuses batched requests: one HTTP request is one operation', async () => {
    const res = await send(app.graphqlUrl, JSON.stringify([{ query: '{ health { ok } }' }, { query: '{ health { ok } }' }]));
    expect(res.status).toBe(400);
    expect(res.text).toMatch(/batching/i);
  });
});

describe('bad input', () => {
  const counts = async () => {
    const p = app.rt.prisma;
    return Promise.all([
      p.user.count(),
      p.session.count(),
      p.apiToken.count(),
      p.organization.count(),
      p.membership.count(),
      p.project.count(),
      p.agent.count(),
      p.agentRun.count(),
    ]);
  };

  it('gets a clear, typed answer everywhere and changes nothing', async () => {
    const before = await counts();
    const project = await given(app).aProject(org);
    const afterSetup = await counts();

    // Malformed JSON and oversized bodies never reach GraphQL.
    const malformed = await send(app.graphqlUrl, '{"query": "{ health { ok } }"');
    expect(malformed.status).toBe(400);
    expect(malformed.json!.errors![0]).toMatchObject({ extensions: { code: 'BAD_REQUEST' } });
    expect(malformed.json!.errors![0].message).toMatch(/^The request body is not valid JSON/);
    const huge = await send(app.graphqlUrl, JSON.stringify({ query: 'mutation { signOut { __typename } }', variables: { pad: 'x'.repeat(2_000_000) } }));
    expect(huge.status).toBe(413);
    expect(huge.json!.errors![0]).toEqual({ message: 'The request body is larger than the 1mb limit', extensions: { code: 'PAYLOAD_TOO_LARGE' } });

    // Invalid, foreign-typed and unknown global ids are all NotFoundError in the mutation's union.
    const UPDATE_ORG = `mutation($input: UpdateOrganizationInput!) { updateOrganization(input: $input) { __typename ... on Error { message code } } }`;
    for (const id of ['not-a-global-id', project.gid, toGlobalId('Organization', '00000000-0000-4000-8000-000000000000'), '']) {
      const res = await owner.gql(UPDATE_ORG, { input: { id, name: 'Renamed' } });
      expect(res.data!.updateOrganization, id).toEqual({ __typename: 'NotFoundError', message: 'Organization not found', code: 'NOT_FOUND' });
    }
    const START = `mutation($input: StartRunInput!) { startRun(input: $input) { __typename } }`;
    expect((await owner.gql(START, { input: { agentId: org.gid, input: 'go' } })).data!.startRun.__typename).toBe('NotFoundError');

    // Wrong scalar formats are refused with the format spelled out.
    const TOKEN = `mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { __typename } }`;
    for (const expiresAt of ['tomorrow', '2026-13-45T00:00:00Z', 1767225600000]) {
      const res = await owner.gql(TOKEN, { input: { name: 'ci', expiresAt } });
      expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(res.errors?.[0]?.message).toMatch(/DateTime must be an ISO 8601 string/);
    }
    const literal = await owner.gql(`mutation { createApiToken(input: { name: "ci", expiresAt: "next week" }) { __typename } }`);
    expect(literal.errors?.[0]?.message).toMatch(/DateTime must be an ISO 8601 string/);
    const money = schema.getType('Money') as GraphQLScalarType;
    for (const value of ['1.50', '1e6', 'ten', 12.5, '99999999999999999999']) {
      expect(() => money.parseValue(value), String(value)).toThrow(/Money must be an integer number of micro-dollars/);
    }
    expect(money.parseValue('2500000')).toBe(2_500_000n);

    // Overlong strings are a ValidationError naming the field.
    const CREATE_ORG = `mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) {
      __typename ... on ValidationError { issues { path message } } } }`;
    const longName = await owner.gql(CREATE_ORG, { input: { name: 'n'.repeat(5_000) } });
    expect(longName.data!.createOrganization).toEqual({ __typename: 'ValidationError', issues: [{ path: ['name'], message: 'Use at most 100 characters' }] });
    const SIGN_UP = `mutation($input: SignUpInput!) { signUp(input: $input) { __typename ... on ValidationError { issues { path } } } }`;
    const longSignUp = await gql(app.url, SIGN_UP, { input: { email: `${'e'.repeat(300)}@example.test`, password: 'p'.repeat(500), name: 'n'.repeat(101) } });
    expect(longSignUp.data!.signUp.issues.map((i: { path: string[] }) => i.path.join('.')).sort()).toEqual(['email', 'name', 'password']);

    // Unknown enum values and missing required fields are request errors.
    const ADD = `mutation($input: InviteMemberInput!) { inviteMember(input: $input) { __typename } }`;
    expect((await owner.gql(ADD, { input: { organizationId: org.gid, email: 'x@example.test', role: 'GOD' } })).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect((await owner.gql(ADD, { input: { organizationId: org.gid } })).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    expect(await counts()).toEqual(afterSetup);
    expect(afterSetup[5]).toBe(before[5] + 1);
  });
});

describe("the web UI's static files", () => {
  /** A process serving the built web UI alone (api/test/web-child.ts), and its URL. */
  function webProcess(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
    const child = fork(fileURLToPath(new URL('../test/web-child.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, NODE_ENV: 'production', ...env },
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'], // the unguarded one's crash would print a stack
    });
    return new Promise((done, fail) => {
      child.once('exit', (code) => fail(new Error(`web process exited early with ${code}`)));
      child.once('message', (msg: { url: string }) => {
        child.removeAllListeners('exit');
        done({ child, url: msg.url });
      });
    });
  }

  it('a file removed while the product runs fails its own request; the process, which sirv alone would end, goes on', async () => {
    const name = `hub-test-vanishing-${process.pid}.txt`;
    const file = resolve(repoRoot, 'web/build/client', name);
    writeFileSync(file, 'here for now');
    const started: ChildProcess[] = [];
    try {
      // Both list the file as they start.
      const [guarded, unguarded] = await Promise.all([webProcess({}), webProcess({ UNGUARDED: 'true' })]);
      started.push(guarded.child, unguarded.child);
      for (const web of [guarded, unguarded]) expect(await (await fetch(`${web.url}/${name}`)).text()).toBe('here for now');

      rmSync(file);
      const unguardedExit = new Promise<number | null>((done) => unguarded.child.once('exit', done));
      for (const web of [guarded, unguarded]) await expect(fetch(`${web.url}/${name}`).then((res) => res.text())).rejects.toThrow();
      // sirv's unhandled stream error ends a process (if that stops being true, the guard can go)…
      expect(await unguardedExit).not.toBe(0);
      // …and behind withFileStreamErrors it ends only that response.
      expect(await (await fetch(`${guarded.url}/alive`)).text()).toBe('yes');
      expect(guarded.child.exitCode).toBeNull();
    } finally {
      rmSync(file, { force: true });
      for (const child of started) child.kill();
    }
  });
});
