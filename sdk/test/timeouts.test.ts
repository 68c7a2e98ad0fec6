import { createClient } from '@hub/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentServer, WebSocket } from './support.js';

// An API that accepts every connection and never answers: without a timeout or a signal, a call would
// wait until the platform gives up (about 5 minutes for Node's fetch), or forever over a WebSocket.
let silent: Awaited<ReturnType<typeof silentServer>>;
beforeAll(async () => {
  silent = await silentServer();
});
afterAll(() => silent.close());

const rejection = (p: Promise<unknown>) => p.then(() => expect.fail('expected a rejection'), (e: unknown) => e);

describe('an API that does not answer', () => {
  it('close() returns at once while the WebSocket is still connecting, and ends the calls waiting on it', async () => {
    const client = createClient({ url: silent.graphqlUrl, operations: 'websocket', webSocketImpl: WebSocket });
    const pending = rejection(client.viewer());
    while (silent.open === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const started = performance.now();
    await client.close();
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(await pending).toMatchObject({ code: 'CLIENT_CLOSED' });
    // The socket it was opening is closed too.
    while (silent.open > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  });
});
