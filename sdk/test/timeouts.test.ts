import { createClient, HealthDocument, NetworkError, TimeoutError, type HubClient, type RequestOptions } from '@hub/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentServer, WebSocket } from './support.js';

// An API that accepts every connection and never answers: without a timeout or a signal, a call would
// wait until the platform gives up (about 5 minutes for Node's fetch), or forever over a WebSocket.
let silent: Awaited<ReturnType<typeof silentServer>>;
beforeAll(async () => {
  silent = await silentServer();
});
afterAll(() => silent.close());

// Any ids: no answer comes anyway.
const RUN_ID = 'UnVuOng=';
const ID = 'UHJvamVjdDp4';
const SLUG = 'acme';
const TOKEN = 'an-invitation-token';
const rejection = (p: Promise<unknown>) => p.then(() => expect.fail('expected a rejection'), (e: unknown) => e);

/** How long `call` took to reject, and with what. */
async function timed(call: () => Promise<unknown>) {
  const started = performance.now();
  const error = await rejection(call());
  return { error, ms: performance.now() - started };
}

/** The first item of a list, read with `for await` as callers do. */
async function first<T>(items: AsyncIterable<T>): Promise<T | undefined> {
  for await (const item of items) return item;
  return undefined;
}

/**
 * Every call that makes a request and takes RequestOptions: as its last argument, or merged into the options
 * object it already has. A list's apply to each page's request; these read (at least) the first page.
 */
const requests: [string, (client: HubClient, options: RequestOptions) => Promise<unknown>][] = [
  ['client.request', (c, o) => c.request(HealthDocument, {}, o)],
  ['health', (c, o) => c.health(o)],
  ['viewer', (c, o) => c.viewer(o)],
  ['activity (Paginated, for await)', (c, o) => first(c.activity(o))],
  ['tokens.create', (c, o) => c.tokens.create({ name: 'ci' }, o)],
  ['tokens.revoke', (c, o) => c.tokens.revoke(ID, o)],
  ['tokens.list (List, for await)', (c, o) => first(c.tokens.list(o))],
  ['organizations.create', (c, o) => c.organizations.create({ name: 'Acme' }, o)],
  ['organizations.get', (c, o) => c.organizations.get(SLUG, o)],
  ['organizations.update', (c, o) => c.organizations.update({ id: ID, name: 'Acme' }, o)],
  ['organizations.delete', (c, o) => c.organizations.delete({ id: ID, confirmSlug: SLUG }, o)],
  ['organizations.list (Paginated, toArray)', (c, o) => c.organizations.list(o).toArray()],
  ['members.invite', (c, o) => c.members.invite({ organizationId: ID, email: 'a@example.test', role: 'MEMBER' }, o)],
  ['members.updateRole', (c, o) => c.members.updateRole({ membershipId: ID, role: 'ADMIN' }, o)],
  ['members.remove', (c, o) => c.members.remove(ID, o)],
  ['members.list (Paginated, page)', (c, o) => c.members.list(SLUG, o).page({ first: 10 })],
  ['invitations.list (Paginated, for await)', (c, o) => first(c.invitations.list(SLUG, o))],
  ['invitations.revoke', (c, o) => c.invitations.revoke(ID, o)],
  ['invitations.preview', (c, o) => c.invitations.preview(TOKEN, o)],
  ['invitations.accept', (c, o) => c.invitations.accept(TOKEN, o)],
  ['projects.create', (c, o) => c.projects.create({ organizationId: ID, name: 'Support' }, o)],
  ['projects.get', (c, o) => c.projects.get(ID, o)],
  ['projects.update', (c, o) => c.projects.update({ id: ID, name: 'Support' }, o)],
  ['projects.archive', (c, o) => c.projects.archive(ID, o)],
  ['projects.restore', (c, o) => c.projects.restore(ID, o)],
  ['projects.list with includeArchived (Paginated, for await)', (c, o) => first(c.projects.list(SLUG, { includeArchived: true, ...o }))],
  ['providers.list (List, toArray)', (c, o) => c.providers.list(o).toArray()],
  ['agents.create', (c, o) => c.agents.create({ projectId: ID, name: 'Planner', provider: 'OFFLINE', model: 'offline-small' }, o)],
  ['agents.get', (c, o) => c.agents.get(ID, o)],
  ['agents.update', (c, o) => c.agents.update({ id: ID, name: 'Planner' }, o)],
  ['agents.archive', (c, o) => c.agents.archive(ID, o)],
  ['agents.restore', (c, o) => c.agents.restore(ID, o)],
  ['agents.list with includeArchived (Paginated, toArray)', (c, o) => c.agents.list(ID, { includeArchived: true, ...o }).toArray()],
  ['budgets.set', (c, o) => c.budgets.set({ organizationId: ID, period: 'DAILY', limit: '1000000' }, o)],
  ['budgets.remove', (c, o) => c.budgets.remove(ID, o)],
  ['budgets.list with organizationWide', (c, o) => c.budgets.list(SLUG, { organizationWide: true, ...o })],
  ['usage.report', (c, o) => c.usage.report(SLUG, { from: '2026-01-01T00:00:00Z', to: '2026-02-01T00:00:00Z', groupBy: 'MODEL' }, o)],
  ['runs.get', (c, o) => c.runs.get(RUN_ID, o)],
  ['runs.start', (c, o) => c.runs.start({ agentId: 'QWdlbnQ6eA==', input: 'hello' }, o)],
  ['runs.cancel', (c, o) => c.runs.cancel(RUN_ID, o)],
  ['runs.retry', (c, o) => c.runs.retry(RUN_ID, o)],
  ['runs.list (Paginated, toArray)', (c, o) => c.runs.list(ID, undefined, o).toArray()],
  ['runs.events', (c, o) => c.runs.events(RUN_ID, o).next()],
];

describe('a request timeout', () => {
  it('rejects a call the API does not answer with a TimeoutError (a NetworkError) after timeoutMs', async () => {
    const client = createClient({ url: silent.graphqlUrl, timeoutMs: 300 });
    const { error, ms } = await timed(() => client.health());
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toBeInstanceOf(NetworkError);
    expect(error).toMatchObject({ name: 'TimeoutError', code: 'NETWORK_ERROR', timeoutMs: 300 });
    expect((error as Error).message).toContain('300 ms');
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(3_000);
  });

  it('can be set per call, or turned off with 0 (then only a signal ends the call)', async () => {
    const client = createClient({ url: silent.graphqlUrl, timeoutMs: 60_000 });
    const { error } = await timed(() => client.runs.get(RUN_ID, { timeoutMs: 200 }));
    expect(error).toMatchObject({ name: 'TimeoutError', timeoutMs: 200 });

    const untimed = createClient({ url: silent.graphqlUrl, timeoutMs: 0 });
    const pending = untimed.request(HealthDocument, {}, { signal: AbortSignal.timeout(1_000) });
    // AbortSignal.timeout aborts with a DOMException named TimeoutError, not the SDK's own.
    const { error: stopped, ms } = await timed(() => pending);
    expect(stopped).not.toBeInstanceOf(NetworkError);
    expect(stopped).toMatchObject({ name: 'TimeoutError' });
    expect(ms).toBeGreaterThanOrEqual(900);
  });

  describe('per call, on every call that makes a request', () => {
    let client: HubClient;
    beforeAll(() => {
      // A call that ignored its own timeoutMs would time out at the client's, with that in the error.
      client = createClient({ url: silent.graphqlUrl, timeoutMs: 5_000 });
    });

    // 250 ms: long enough that a busy machine has written the request before the timer fires (a process
    // held off the CPU for longer runs its due timers before its socket callbacks, and would give up unsent).
    it.each(requests)('%s', async (_name, call) => {
      const sent = silent.requests;
      const { error, ms } = await timed(() => call(client, { timeoutMs: 250 }));
      expect(error).toBeInstanceOf(TimeoutError);
      expect(error).toMatchObject({ name: 'TimeoutError', code: 'NETWORK_ERROR', timeoutMs: 250 });
      expect(ms).toBeGreaterThanOrEqual(240);
      expect(ms).toBeLessThan(3_000);
      // The request went out (the server, in this process, may read it only after the rejection).
      await expect.poll(() => silent.requests, { timeout: 2_000 }).toBeGreaterThan(sent);
    });
  });

  it('covers operations over the WebSocket too, whose upgrade the API never answers', async () => {
    const client = createClient({ url: silent.graphqlUrl, operations: 'websocket', webSocketImpl: WebSocket, timeoutMs: 300 });
    try {
      const { error, ms } = await timed(() => client.viewer());
      expect(error).toBeInstanceOf(TimeoutError);
      expect(ms).toBeLessThan(3_000);
    } finally {
      await client.close();
    }
  });
});

describe('an AbortSignal', () => {
  let client: HubClient;
  beforeAll(() => {
    // Only the signal ends these calls in time: one it did not reach fails with a TimeoutError after 10 s.
    client = createClient({ url: silent.graphqlUrl, timeoutMs: 10_000, webSocketImpl: WebSocket });
  });
  afterAll(() => client.close());

  const calls: [string, (signal: AbortSignal) => Promise<unknown>][] = [
    ...requests.map(([name, call]): [string, (signal: AbortSignal) => Promise<unknown>] => [name, (signal) => call(client, { signal })]),
    ['runs.stream resuming after a seq', (signal) => client.runs.stream(RUN_ID, { afterSeq: 5, signal }).next()],
    ['runs.wait', (signal) => client.runs.wait(RUN_ID, { signal })],
  ];
  it.each(calls)('stops %s waiting for an API that does not answer, with the signal’s reason', async (_name, call) => {
    const sent = silent.requests;
    const controller = new AbortController();
    let settled = false;
    const pending = timed(() => call(controller.signal)).finally(() => (settled = true));
    // Aborted in flight: once the request has reached the server.
    while (silent.requests === sent && !settled) await new Promise((resolve) => setTimeout(resolve, 5));
    controller.abort();
    const { error, ms } = await pending;
    expect(error).toMatchObject({ name: 'AbortError' });
    expect(error).toBe(controller.signal.reason);
    expect(ms).toBeLessThan(3_000);
    // The request reached the server, and was given up.
    expect(silent.requests).toBeGreaterThan(sent);

    // A reason of the caller's own comes out as it is; an already aborted signal sends nothing.
    const reason = new Error('shutting down');
    const before = silent.requests;
    expect(await rejection(call(AbortSignal.abort(reason)))).toBe(reason);
    expect(silent.requests).toBe(before);
  });
});

describe('an API that does not answer', () => {
  it('a stream whose WebSocket the API never lets open gives up on it as on a dropped one, and reconnects', async () => {
    const client = createClient({ url: silent.graphqlUrl, webSocketImpl: WebSocket, keepAliveMs: 200 });
    try {
      const sent = silent.requests;
      const { error, ms } = await timed(() => client.runs.stream(RUN_ID, { reconnect: { attempts: 1, minDelayMs: 10, maxDelayMs: 10 } }).next());
      expect(error).toBeInstanceOf(NetworkError);
      expect((error as NetworkError).message).toContain('1 reconnect attempts');
      // Each socket had twice keepAliveMs to be acknowledged.
      expect(ms).toBeGreaterThanOrEqual(2 * 400);
      expect(ms).toBeLessThan(3_000);
      expect(silent.requests - sent).toBe(2);
    } finally {
      await client.close();
    }
  });

  it('close() returns at once while the WebSocket is still connecting, and ends the calls waiting on it', async () => {
    // A server of its own, to watch this client's socket alone.
    const hung = await silentServer();
    const client = createClient({ url: hung.graphqlUrl, operations: 'websocket', webSocketImpl: WebSocket, timeoutMs: 0 });
    try {
      const pending = rejection(client.viewer());
      while (hung.requests === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      const started = performance.now();
      await client.close();
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(await pending).toMatchObject({ code: 'CLIENT_CLOSED' });
      // The socket it was opening is closed too.
      while (hung.open > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    } finally {
      hung.close();
    }
  });
});
