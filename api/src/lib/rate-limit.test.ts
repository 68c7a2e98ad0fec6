import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase, usingPostgres } from '../../test/db.js';
import type { Database } from './db.js';
import { given, type TestOrg, type TestUser } from '../../test/factories.js';
import { startTestServer, type TestServer } from '../../test/harness.js';
import { wsClient } from '../../test/subscribe.js';
import { RateLimitedError } from './errors.js';
import { repoRoot } from './paths.js';
import { leaseSize, RATE_LIMIT_DEFAULTS, RateLimits, type RateLimitOptions } from './rate-limit.js';

const PEER = fileURLToPath(new URL('../../test/rate-limit-peer.ts', import.meta.url));

/** POSTs an operation from a given client IP (the server trusts X-Forwarded-For from loopback). */
async function post(app: TestServer, query: string, variables: Record<string, unknown>, opts: { ip: string; token?: string }) {
  const res = await fetch(app.graphqlUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-forwarded-for': opts.ip,
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
    },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as { data?: any; errors?: any[] } };
}

let ipSeq = 0;
/** A fresh documentation-range address, so no test shares a per-IP budget with another. */
const anIp = () => `198.51.100.${++ipSeq}`;

// The first file on a test worker boots the shared database: slow on a busy machine, so allow it time.
const BOOT_TIMEOUT = 180_000;
let db: Database;
// Opening the shared test database can be slow: do it in a hook rather than inside the first test that needs it.
beforeAll(async () => {
  db = await getTestDatabase();
}, BOOT_TIMEOUT);

const openLimits = (opts: RateLimitOptions, kind: 'memory' | 'postgres') =>
  RateLimits.create(kind === 'memory' ? { kind: 'pglite' } : db, { namespace: `t-${randomUUID()}`, ...opts });

const rejection = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
};

describe.each(usingPostgres() ? (['memory', 'postgres'] as const) : (['memory'] as const))('the %s engine', (kind) => {
  it('lets the budget through, then refuses with the seconds until it refills, and a reset forgives', async () => {
    const limits = await openLimits({ rules: { apiUser: { points: 3, duration: 30 } } }, kind);
    expect(limits.engine).toBe(kind);
    for (let i = 0; i < 3; i++) await limits.consume('apiUser', 'ada');
    const err = await rejection(limits.consume('apiUser', 'ada'));
    expect(err).toBeInstanceOf(RateLimitedError);
    expect((err as RateLimitedError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect((err as RateLimitedError).retryAfterSeconds).toBeLessThanOrEqual(30);
    await limits.consume('apiUser', 'grace');
    await limits.reset('apiUser', 'ada');
    await limits.consume('apiUser', 'ada');
    limits.close();
  });

  it('counts failures without refusing them, and refuses the attempt after the last allowed failure', async () => {
    const limits = await openLimits({ rules: { signInAccount: { points: 2, duration: 60 } } }, kind);
    await limits.ensureAvailable('signInAccount', 'ada@example.test');
    await limits.penalize('signInAccount', 'ada@example.test');
    await limits.ensureAvailable('signInAccount', 'ada@example.test');
    await limits.penalize('signInAccount', 'ada@example.test');
    await limits.penalize('signInAccount', 'ada@example.test');
    expect(await rejection(limits.ensureAvailable('signInAccount', 'ada@example.test'))).toBeInstanceOf(RateLimitedError);
    limits.close();
  });
});

describe('configuration', () => {
  it('starts from the defaults and takes overrides per rule', async () => {
    const limits = await RateLimits.create({ kind: 'pglite' }, { rules: { apiUser: { points: 7 } } });
    expect(limits.rule('apiUser')).toEqual({ points: 7, duration: RATE_LIMIT_DEFAULTS.apiUser.duration });
    expect(limits.rule('apiAnonymous')).toEqual(RATE_LIMIT_DEFAULTS.apiAnonymous);
    expect(RATE_LIMIT_DEFAULTS.apiAnonymous.points).toBeLessThan(RATE_LIMIT_DEFAULTS.apiUser.points);
  });
});

describe('across processes', () => {
  it.runIf(!usingPostgres())('uses the in-memory engine on the embedded single-process database', async () => {
    expect(db.kind).toBe('pglite');
    const limits = await RateLimits.create(db);
    expect(limits.engine).toBe('memory');
  });

  it.runIf(usingPostgres())('enforces one budget shared by two processes on PostgreSQL', async () => {
    const namespace = `xproc-${randomUUID()}`;
    const limits = await RateLimits.create(db, { namespace, rules: { apiUser: { points: 6, duration: 60 } } });
    expect(limits.engine).toBe('postgres');

    // The peer process and this one consume 5 points each, concurrently, from a budget of 6.
    const peer = promisify(execFile)(process.execPath, ['--import', 'tsx', PEER], {
      cwd: repoRoot,
      env: { ...process.env, PEER_DATABASE_URL: db.url!, PEER_NAMESPACE: namespace, PEER_POINTS: '6', PEER_CONSUME: '5', PEER_KEY: 'shared-user' },
    });
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) {
      mine.push(await limits.consume('apiUser', 'shared-user').then(() => 'ok', (err) => (err instanceof RateLimitedError ? 'limited' : Promise.reject(err))));
    }
    const theirs = JSON.parse((await peer).stdout) as { engine: string; results: string[] };
    expect(theirs.engine).toBe('postgres');
    const all = [...mine, ...theirs.results];
    expect(all.filter((r) => r === 'ok')).toHaveLength(6);
    expect(all.filter((r) => r === 'limited')).toHaveLength(4);
    // Both processes now see the spent budget.
    expect(await rejection(limits.consume('apiUser', 'shared-user'))).toBeInstanceOf(RateLimitedError);
    limits.close();
  }, 60_000);
});

describe('per-request budgets on PostgreSQL, taken in blocks', () => {
  it.runIf(usingPostgres())('lets exactly the budget through across two processes, with one statement per block', async () => {
    const namespace = `lease-${randomUUID()}`;
    const rules = { apiUser: { points: 1_000, duration: 60 } };
    expect(leaseSize(rules.apiUser)).toBe(10);
    const [a, b] = await Promise.all([RateLimits.create(db, { namespace, rules }), RateLimits.create(db, { namespace, rules })]);
    const row = async () => {
      const [r] = await db.query<{ points: number }>(`SELECT points FROM "rate_limit"."counters" WHERE key LIKE $1`, [`${namespace}:apiUser:%`]);
      return r?.points ?? 0;
    };

    // Three requests take one block of ten: the shared row says 10, not 3.
    for (let i = 0; i < 3; i++) await a.consume('apiUser', 'ada');
    expect(await row()).toBe(10);

    // Both processes, more concurrent requests each than the whole budget: exactly the remaining 997 get
    // through. (With fewer, a process whose own requests all got through may hold points of its last block
    // that the other needed: lost to it until the window ends, as `consume` says.)
    const perProcess = 1_100;
    const attempt = (l: RateLimits) => l.consume('apiUser', 'ada').then(() => 1, (err) => (err instanceof RateLimitedError ? 0 : Promise.reject(err)));
    const results = await Promise.all([...Array.from({ length: perProcess }, () => attempt(a)), ...Array.from({ length: perProcess }, () => attempt(b))]);
    expect(results.reduce((n: number, r) => n + r, 0)).toBe(997);
    const aGot = results.slice(0, perProcess).reduce((n: number, r) => n + r, 0);
    expect(aGot).toBeGreaterThan(0);
    expect(aGot).toBeLessThan(997);
    // Spent: refused from memory, with the time until the window refills.
    const err = await rejection(b.consume('apiUser', 'ada'));
    expect((err as RateLimitedError).retryAfterSeconds).toBeGreaterThan(50);
    // A reset forgives in the process that resets (the other keeps refusing until its window ends).
    await a.reset('apiUser', 'ada');
    await a.consume('apiUser', 'ada');
    a.close();
    b.close();
  });
});

describe('over HTTP', () => {
  let app: TestServer;
  let user: TestUser;
  const HEALTH = '{ health { ok } }';

  beforeAll(async () => {
    app = await startTestServer({
      worker: false,
      runtime: { rateLimits: { namespace: `http-${randomUUID()}`, rules: { apiAnonymous: { points: 3 }, apiUser: { points: 5 } } } },
    });
    user = await given(app).aUser();
  });
  afterAll(() => app.close());

  it('answers an anonymous IP over its budget with 429, Retry-After and a RATE_LIMITED error', async () => {
    const ip = anIp();
    for (let i = 0; i < 3; i++) expect((await post(app, HEALTH, {}, { ip })).status).toBe(200);
    const limited = await post(app, HEALTH, {}, { ip });
    expect(limited.status).toBe(429);
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(limited.body.errors![0].extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfterSeconds: retryAfter });
    expect(limited.body.data).toBeUndefined();
    // Another address has its own budget.
    expect((await post(app, HEALTH, {}, { ip: anIp() })).status).toBe(200);
  });

  it('gives a signed-in caller its own, larger budget, whatever address it calls from', async () => {
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await post(app, HEALTH, {}, { ip: anIp(), token: user.token })).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  });

  it('counts WebSocket operations against the same budget', async () => {
    const someone = await given(app).aUser();
    const client = wsClient(app.wsUrl, someone.token);
    const once = () =>
      new Promise<unknown>((resolve) => {
        let value: unknown;
        client.subscribe({ query: HEALTH }, { next: (v) => (value = v), error: resolve, complete: () => resolve(value) });
      });
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await once());
    await client.dispose();
    expect(results.slice(0, 5)).toEqual(Array(5).fill({ data: { health: { ok: true } } }));
    expect(results[5]).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: 'RATE_LIMITED' }) })]);
  });

  it('charges invalid credentials to the anonymous budget of the address', async () => {
    const ip = anIp();
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await post(app, HEALTH, {}, { ip, token: 'hub_pat_guess' })).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
  });
});

describe('on sign-in, sign-up and agent runs', () => {
  let app: TestServer;
  let org: TestOrg;
  let otherOrg: TestOrg;
  let agentGid: string;
  let otherAgentGid: string;

  const SIGN_UP = `mutation($input: SignUpInput!) { signUp(input: $input) { __typename ... on RateLimitedError { message code retryAfterSeconds } } }`;
  const SIGN_IN = `mutation($input: SignInInput!) { signIn(input: $input) { __typename ... on RateLimitedError { message code retryAfterSeconds } } }`;
  const START = `mutation($input: StartRunInput!) { startRun(input: $input) { __typename ... on StartRunPayload { run { id } } ... on RateLimitedError { retryAfterSeconds } } }`;
  const RETRY = `mutation($input: RunIdInput!) { retryRun(input: $input) { __typename ... on RateLimitedError { retryAfterSeconds } } }`;
  const password = 'correct horse battery';

  async function anAgent(o: TestOrg) {
    const project = await given(app).aProject(o);
    const res = await o.owner.gql(
      `mutation($input: CreateAgentInput!) { createAgent(input: $input) { ... on CreateAgentPayload { agent { id } } } }`,
      { input: { projectId: project.gid, name: 'Agent', provider: 'OFFLINE', model: 'offline-small' } },
    );
    return res.data!.createAgent.agent.id as string;
  }

  beforeAll(async () => {
    app = await startTestServer({
      worker: false,
      runtime: {
        rateLimits: {
          namespace: `mut-${randomUUID()}`,
          rules: { signInIp: { points: 4 }, signInAccount: { points: 3 }, signUpIp: { points: 3 }, signUpAccount: { points: 2 }, runsOrg: { points: 2 } },
        },
      },
    });
    org = await given(app).anOrganization();
    otherOrg = await given(app).anOrganization();
    agentGid = await anAgent(org);
    otherAgentGid = await anAgent(otherOrg);
  });
  afterAll(() => app.close());

  const signUp = (email: string, ip: string) => post(app, SIGN_UP, { input: { email, password, name: 'Someone' } }, { ip });
  const signIn = (email: string, pw: string, ip = anIp()) => post(app, SIGN_IN, { input: { email, password: pw } }, { ip });

  it('limits sign-ups per address and per email with the typed RateLimitedError', async () => {
    const ip = anIp();
    const results = [];
    for (let i = 0; i < 4; i++) results.push((await signUp(`per-ip-${i}@example.test`, ip)).body.data.signUp.__typename);
    expect(results).toEqual(['AuthPayload', 'AuthPayload', 'AuthPayload', 'RateLimitedError']);

    // The same email, tried from different addresses: the second try is a conflict, the third is refused.
    const email = `per-email-${randomUUID().slice(0, 8)}@example.test`;
    expect((await signUp(email, anIp())).body.data.signUp.__typename).toBe('AuthPayload');
    expect((await signUp(email, anIp())).body.data.signUp.__typename).toBe('ConflictError');
    const refused = await signUp(email, anIp());
    expect(refused.status).toBe(200);
    expect(refused.body.data.signUp).toMatchObject({ __typename: 'RateLimitedError', code: 'RATE_LIMITED' });
    expect(refused.body.data.signUp.retryAfterSeconds).toBeGreaterThan(0);
  });

  it('limits sign-in attempts per address, successful or not', async () => {
    const email = `ip-${randomUUID().slice(0, 8)}@example.test`;
    await signUp(email, anIp());
    const ip = anIp();
    const results = [];
    for (const pw of [password, 'wrong password', password, password, password]) results.push((await signIn(email, pw, ip)).body.data.signIn.__typename);
    expect(results).toEqual(['AuthPayload', 'ValidationError', 'AuthPayload', 'AuthPayload', 'RateLimitedError']);
  });

  it('counts failed sign-ins per account, forgets them on success, and then refuses even the right password', async () => {
    const email = `acct-${randomUUID().slice(0, 8)}@example.test`;
    await signUp(email, anIp());
    // Two failures, then a success that clears them: three more failures are needed to lock the account.
    for (let i = 0; i < 2; i++) expect((await signIn(email, 'wrong password')).body.data.signIn.__typename).toBe('ValidationError');
    expect((await signIn(email, password)).body.data.signIn.__typename).toBe('AuthPayload');
    for (let i = 0; i < 3; i++) expect((await signIn(email, 'wrong password')).body.data.signIn.__typename).toBe('ValidationError');
    const locked = await signIn(email, password);
    expect(locked.body.data.signIn.__typename).toBe('RateLimitedError');
    // The lock is per account: another account signs in from the same kind of address.
    const other = `acct-${randomUUID().slice(0, 8)}@example.test`;
    await signUp(other, anIp());
    expect((await signIn(other, password)).body.data.signIn.__typename).toBe('AuthPayload');
  });

  it('limits runs started and retried per organization, and does not charge idempotent replays', async () => {
    const owner = org.owner;
    const first = await owner.gql(START, { input: { agentId: agentGid, input: 'one', idempotencyKey: 'k1' } });
    expect(first.data!.startRun.__typename).toBe('StartRunPayload');
    const replay = await owner.gql(START, { input: { agentId: agentGid, input: 'one', idempotencyKey: 'k1' } });
    expect(replay.data!.startRun.run.id).toBe(first.data!.startRun.run.id);
    expect((await owner.gql(START, { input: { agentId: agentGid, input: 'two' } })).data!.startRun.__typename).toBe('StartRunPayload');

    const runsBefore = await app.rt.prisma.agentRun.count();
    const third = await owner.gql(START, { input: { agentId: agentGid, input: 'three' } });
    expect(third.data!.startRun.__typename).toBe('RateLimitedError');
    expect(third.data!.startRun.retryAfterSeconds).toBeGreaterThan(0);

    const finished = await app.rt.prisma.agentRun.findFirstOrThrow({ where: { organizationId: org.id } });
    await app.rt.prisma.agentRun.update({ where: { id: finished.id }, data: { status: 'FAILED', finishedAt: new Date() } });
    const retry = await owner.gql(RETRY, { input: { id: first.data!.startRun.run.id } });
    expect(retry.data!.retryRun.__typename).toBe('RateLimitedError');
    expect(await app.rt.prisma.agentRun.count()).toBe(runsBefore);

    // A viewer of the spent organization learns that viewers cannot start runs, not that the budget is spent.
    const viewer = await given(app).aMemberOf(org, 'VIEWER');
    const refused = await viewer.gql(START, { input: { agentId: agentGid, input: 'viewer' } });
    expect(refused.data!.startRun.__typename).toBe('ForbiddenError');

    // Another organization has its own budget.
    expect((await otherOrg.owner.gql(START, { input: { agentId: otherAgentGid, input: 'x' } })).data!.startRun.__typename).toBe('StartRunPayload');

    // startRun counts in its own statement on PostgreSQL: the limiter and the statement share one budget.
    await expect(app.rt.limits.ensureAvailable('runsOrg', org.id)).rejects.toBeInstanceOf(RateLimitedError);
    await app.rt.limits.consume('runsOrg', otherOrg.id);
    expect((await otherOrg.owner.gql(START, { input: { agentId: otherAgentGid, input: 'y' } })).data!.startRun.__typename).toBe('RateLimitedError');
  });

  it('takes no point of the budget for a start the caller may not make, not even while it waits', async () => {
    const spare = await given(app).anOrganization();
    const agent = await anAgent(spare);
    const viewer = await given(app).aMemberOf(spare, 'VIEWER');
    // Once before, so that the API knows the agent's and the viewer's whereabouts without a query.
    expect((await viewer.gql(START, { input: { agentId: agent, input: 'viewer' } })).data!.startRun.__typename).toBe('ForbiddenError');
    expect((await spare.owner.gql(`{ __typename }`)).errors).toBeUndefined();
    // Hold the database (on the embedded one, the only connection), so refused starts wait in the middle.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let holding!: () => void;
    const holds = new Promise<void>((resolve) => (holding = resolve));
    const hold = app.rt.prisma.$transaction(async (tx) => {
      await tx.$queryRaw`SELECT 1`;
      holding();
      await held;
    }, { timeout: 20_000 });
    await holds;
    const refused = [1, 2].map(() => viewer.gql(START, { input: { agentId: agent, input: 'viewer' } }));
    await new Promise((r) => setTimeout(r, 300));
    const starts = [1, 2].map((i) => spare.owner.gql(START, { input: { agentId: agent, input: `owner ${i}` } }));
    await new Promise((r) => setTimeout(r, 300));
    release();
    await hold;
    expect((await Promise.all(refused)).map((r) => r.data!.startRun.__typename)).toEqual(['ForbiddenError', 'ForbiddenError']);
    // The organization's two runs a minute are its members' to start.
    expect((await Promise.all(starts)).map((r) => r.data!.startRun.__typename)).toEqual(['StartRunPayload', 'StartRunPayload']);
  });
});
