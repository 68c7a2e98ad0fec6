import { createClient, HealthDocument, NetworkError, TimeoutError, type HubClient } from '@hub/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentServer, WebSocket } from './support.js';

// An API that accepts every connection and never answers: without a timeout or a signal, a call would
// wait until the platform gives up (about 5 minutes for Node's fetch), or forever over a WebSocket.
let silent: Awaited<ReturnType<typeof silentServer>>;
beforeAll(async () => {
  silent = await silentServer();
});
afterAll(() => silent.close());

const RUN_ID = 'UnVuOng='; // any id: no answer comes anyway
const rejection = (p: Promise<unknown>) => p.then(() => expect.fail('expected a rejection'), (e: unknown) => e);

/** How long `call` took to reject, and with what. */
async function timed(call: () => Promise<unknown>) {
  const started = performance.now();
  const error = await rejection(call());
  return { error, ms: performance.now() - started };
}

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
    // No timeout: only the signal ends these calls.
    client = createClient({ url: silent.graphqlUrl, timeoutMs: 0, webSocketImpl: WebSocket });
  });
  afterAll(() => client.close());

  const calls: [string, (signal: AbortSignal) => Promise<unknown>][] = [
    ['client.request', (signal) => client.request(HealthDocument, {}, { signal })],
    ['runs.get', (signal) => client.runs.get(RUN_ID, { signal })],
    ['runs.start', (signal) => client.runs.start({ agentId: 'QWdlbnQ6eA==', input: 'hello' }, { signal })],
    ['runs.cancel', (signal) => client.runs.cancel(RUN_ID, { signal })],
    ['runs.list', (signal) => client.runs.list('UHJvamVjdDp4', undefined, { signal }).toArray()],
    ['runs.events', (signal) => client.runs.events(RUN_ID, { signal }).next()],
    ['runs.stream resuming after a seq', (signal) => client.runs.stream(RUN_ID, { afterSeq: 5, signal }).next()],
    ['runs.wait', (signal) => client.runs.wait(RUN_ID, { signal })],
  ];
  it.each(calls)('stops %s waiting for an API that does not answer, with the signal’s reason', async (_name, call) => {
    const sent = silent.requests;
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const { error, ms } = await timed(() => call(controller.signal));
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
