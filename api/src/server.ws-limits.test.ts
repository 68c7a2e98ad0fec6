import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { given } from '../test/factories.js';
import { startTestServer, type TestServer } from '../test/harness.js';
import { wsClient } from '../test/subscribe.js';
import { MAX_OPERATIONS_PER_CONNECTION } from './server.js';

// One connection, or one user's connections, cannot hold an unbounded share of the server: every open
// subscription keeps its resources and executes its selection again for each event.

let app: TestServer;
beforeAll(async () => {
  app = await startTestServer();
});
afterAll(() => app.close());

const HEALTH = '{ health { ok } }';
const UPDATES = `subscription($p: ID!) { projectRunUpdates(projectId: $p) { status } }`;
const START = `mutation($input: StartRunInput!) { startRun(input: $input) { ... on StartRunPayload { run { id } } } }`;

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (done: () => boolean, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms`);
    await wait(20);
  }
};

/** Runs a query, or a subscription that is refused: its result, or the errors that ended it. */
function first(client: Client, query: string, variables: Record<string, unknown> = {}) {
  return new Promise<{ data?: any; errors?: any[] } | any[]>((resolve) => {
    client.subscribe({ query, variables }, { next: (r) => resolve(r as { data?: any }), error: (e) => resolve(e as any[]), complete: () => {} });
  });
}

/** Opens a subscription that stays open; returns its disposer. */
const running = (client: Client, projectId: string, sink: { next?: () => void; error?: (e: unknown) => void } = {}) =>
  client.subscribe({ query: UPDATES, variables: { p: projectId } }, { next: sink.next ?? (() => {}), error: sink.error ?? (() => {}), complete: () => {} });

describe('operations open at once on one connection', () => {
  it(`are at most ${MAX_OPERATIONS_PER_CONNECTION}: one more is refused with a typed error, and nothing else is affected`, async () => {
    const org = await given(app).anOrganization();
    const project = await given(app).aProject(org);
    const agent = await given(app).anOfflineAgent(project, { model: 'offline-small', maxOutputTokens: 5 });
    const client = wsClient(app.wsUrl, org.owner.token);
    const received: number[] = Array(MAX_OPERATIONS_PER_CONNECTION).fill(0);
    const errors: unknown[] = [];
    const disposers = received.map((_, i) => running(client, project.gid, { next: () => void received[i]!++, error: (e) => void errors.push(e) }));
    // With that many in progress, one more operation (a query here) is refused.
    const refused = await first(client, HEALTH);
    expect(refused).toEqual([
      {
        message: `A connection may have at most ${MAX_OPERATIONS_PER_CONNECTION} operations in progress at once; complete one first`,
        extensions: { code: 'TOO_MANY_OPERATIONS', limit: MAX_OPERATIONS_PER_CONNECTION },
      },
    ]);
    const refusedSubscription = await first(client, UPDATES, { p: project.gid });
    expect((refusedSubscription as any[])[0].extensions.code).toBe('TOO_MANY_OPERATIONS');

    // The open subscriptions all go on. The refusals come back as soon as they are counted, while the
    // earlier subscriptions may still be checking access (they listen only after that), so a run started
    // now may publish its first updates before the last of them listens: start another each second until
    // every subscription has heard one.
    const deadline = Date.now() + 30_000;
    while (!received.every((n) => n > 0)) {
      if (Date.now() > deadline) throw new Error(`${received.filter((n) => n === 0).length} subscriptions heard nothing within 30 s`);
      await org.owner.gql(START, { input: { agentId: agent.gid, input: 'go' } });
      await until(() => received.every((n) => n > 0), 1_000).catch(() => {});
    }
    expect(errors).toEqual([]);

    // Completing one frees its place (the client's `complete` reaches the server before the next operation).
    disposers[0]!();
    expect(await first(client, HEALTH)).toEqual({ data: { health: { ok: true } } });
    await client.dispose();
  }, 60_000);

  it('another connection of the same user has its own allowance', async () => {
    const org = await given(app).anOrganization();
    const project = await given(app).aProject(org);
    const busy = wsClient(app.wsUrl, org.owner.token);
    for (let i = 0; i < MAX_OPERATIONS_PER_CONNECTION; i++) running(busy, project.gid);
    expect(((await first(busy, HEALTH)) as any[])[0].extensions.code).toBe('TOO_MANY_OPERATIONS');
    const fresh = wsClient(app.wsUrl, org.owner.token);
    expect(await first(fresh, HEALTH)).toEqual({ data: { health: { ok: true } } });
    await Promise.all([busy.dispose(), fresh.dispose()]);
  }, 60_000);
});

describe('open WebSocket connections of one user', () => {
  // WS_CONNECTIONS_PER_USER (200 by default), lowered here so that the test opens few sockets.
  const MAX_WS_CONNECTIONS_PER_USER = 12;
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startTestServer({ worker: false, env: { WS_CONNECTIONS_PER_USER: String(MAX_WS_CONNECTIONS_PER_USER) } });
  });
  afterAll(() => limited.close());

  /** Opens a connection; resolves once acknowledged ('open') or with the close code and reason. */
  function open(token: string) {
    return new Promise<{ socket: WebSocket; state: 'open' | { code: number; reason: string } }>((resolve) => {
      const socket = new WebSocket(limited.wsUrl, 'graphql-transport-ws');
      socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
      socket.on('message', (data) => {
        if (JSON.parse(String(data)).type === 'connection_ack') resolve({ socket, state: 'open' });
      });
      socket.on('close', (code, reason) => resolve({ socket, state: { code, reason: String(reason) } }));
    });
  }

  it(`are at most ${MAX_WS_CONNECTIONS_PER_USER}, whichever credential they use: one more is closed with 4429 and says why`, async () => {
    const user = await given(limited).aUser();
    const created = await user.gql(`mutation { createApiToken(input: { name: "second" }) { ... on CreateApiTokenPayload { secret } } }`);
    const second = created.data!.createApiToken.secret as string;
    const sockets: WebSocket[] = [];
    try {
      for (let i = 0; i < MAX_WS_CONNECTIONS_PER_USER; i++) {
        const { socket, state } = await open(i % 2 ? second : user.token);
        sockets.push(socket);
        expect(state).toBe('open');
      }
      const extra = await open(second);
      expect(extra.state).toEqual({ code: 4429, reason: `Too many open connections: at most ${MAX_WS_CONNECTIONS_PER_USER} per user` });

      // Another user is not affected.
      const someoneElse = await given(limited).aUser();
      const theirs = await open(someoneElse.token);
      sockets.push(theirs.socket);
      expect(theirs.state).toBe('open');

      // A closed connection frees its place (once the server has seen it close).
      const gone = new Promise((r) => sockets[0]!.once('close', r));
      sockets[0]!.close();
      await gone;
      let again = await open(user.token);
      for (let i = 0; i < 50 && again.state !== 'open'; i++) again = (await wait(20), await open(user.token));
      sockets.push(again.socket);
      expect(again.state).toBe('open');
    } finally {
      for (const s of sockets) s.close();
    }
  }, 60_000);
});
