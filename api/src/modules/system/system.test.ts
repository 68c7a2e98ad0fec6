import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { gql, startTestServer, type TestServer } from '../../../test/harness.js';
import { usingPostgres } from '../../../test/db.js';

let app: TestServer;
beforeAll(async () => {
  app = await startTestServer();
});
afterAll(() => app.close());

describe('the running server', () => {
  it('answers liveness and readiness probes', async () => {
    expect(await (await fetch(`${app.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${app.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', database: usingPostgres() ? 'postgresql' : 'pglite' });
  });

  it('serves the health query over HTTP with a request id', async () => {
    const res = await gql(app.url, '{ health { ok database version uptimeSeconds time } }');
    expect(res.status).toBe(200);
    expect(res.errors).toBeUndefined();
    expect(res.data!.health).toMatchObject({ ok: true, database: usingPostgres() ? 'POSTGRESQL' : 'PGLITE' });
    expect(Date.parse(res.data!.health.time)).not.toBeNaN();
    expect(res.headers.get('x-request-id')).toMatch(/.+/);
  });

  it('sets security headers and rejects oversized bodies without running them', async () => {
    const big = await fetch(`${app.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: `{ health { ok } } # ${'x'.repeat(2_000_000)}` }),
    });
    expect(big.status).toBe(413);
    expect(big.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('serves the same schema over graphql-ws on the same port', async () => {
    const client = createClient({ url: app.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
    const result = await new Promise<unknown>((resolve, reject) => {
      let value: unknown;
      client.subscribe({ query: '{ health { ok } }' }, { next: (v) => (value = v), error: reject, complete: () => resolve(value) });
    });
    await client.dispose();
    expect(result).toEqual({ data: { health: { ok: true } } });
  });

  it('rejects a bad bearer token with 401 instead of answering anonymously', async () => {
    const res = await gql(app.url, '{ health { ok } }', {}, { token: 'hub_pat_not-a-real-token' });
    expect(res.status).toBe(401);
    expect(res.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});
