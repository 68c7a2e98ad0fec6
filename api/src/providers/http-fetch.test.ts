import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FakeProviderServer } from '../../test/fakes/fake-provider-server.js';
import { startOpenAIFake } from '../../test/fakes/openai-server.js';
import { createHttpFetch, ON_BODY_DATA, providerFetch, SEND_AFTER, type GatedRequestInit } from './http-fetch.js';

const httpFetch = createHttpFetch();
const servers: http.Server[] = [];

/** A real server on 127.0.0.1; counts the TCP connections it accepts. */
async function serve(handler: http.RequestListener) {
  const server = http.createServer(handler);
  let connections = 0;
  server.on('connection', () => connections++);
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, connections: () => connections };
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Answers with what it received: method, path, headers and body. */
const echo: http.RequestListener = async (req, res) => {
  const body = await readBody(req);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ method: req.method, path: req.url, headers: req.headers, body }));
};

interface Echoed {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}
const echoed = async (response: Response) => (await response.json()) as Echoed;

const text = (chunk: Uint8Array | undefined) => new TextDecoder().decode(chunk);

describe('createHttpFetch', () => {
  it('round-trips a JSON POST: method, headers and body out; status, headers and body back', async () => {
    let received: { method?: string; headers?: http.IncomingHttpHeaders; body?: string } = {};
    const { url } = await serve(async (req, res) => {
      received = { method: req.method, headers: req.headers, body: await readBody(req) };
      res.writeHead(201, { 'content-type': 'application/json', 'x-request-id': 'req_1' });
      res.end(JSON.stringify({ ok: true }));
    });

    const response = await httpFetch(`${url}/v1/things?x=1`, {
      method: 'post',
      headers: new Headers({ 'content-type': 'application/json', authorization: 'Bearer k' }),
      body: JSON.stringify({ hello: 'world' }),
    });

    expect(received.method).toBe('POST');
    expect(received.body).toBe('{"hello":"world"}');
    expect(received.headers).toMatchObject({
      'content-type': 'application/json',
      'content-length': '17',
      authorization: 'Bearer k',
      accept: '*/*',
      'accept-encoding': 'gzip, deflate',
    });
    expect(received.headers?.['sec-fetch-mode']).toBeUndefined(); // undici's header: this went through node:http
    expect(response.status).toBe(201);
    expect(response.ok).toBe(true);
    expect(response.headers.get('x-request-id')).toBe('req_1');
    expect(response.url).toBe(`${url}/v1/things?x=1`);
    expect(response.redirected).toBe(false);
    expect(await response.json()).toEqual({ ok: true });
  });

  it('takes headers as an object or an array, and defaults the content-type of text bodies as fetch does', async () => {
    const { url } = await serve(echo);
    const sent = async (init: RequestInit) => (await echoed(await httpFetch(url, { method: 'POST', ...init }))).headers;

    expect(await sent({ headers: { 'x-a': '1' }, body: 'plain' })).toMatchObject({
      'x-a': '1',
      'content-type': 'text/plain;charset=UTF-8',
    });
    expect(await sent({ headers: [['x-b', '2']], body: new URLSearchParams({ q: 'v' }) })).toMatchObject({
      'x-b': '2',
      'content-type': 'application/x-www-form-urlencoded;charset=UTF-8',
    });
    expect(await sent({ headers: { 'Content-Type': 'application/json' }, body: '{}' })).toMatchObject({
      'content-type': 'application/json',
    });
    expect((await sent({ body: new Uint8Array([1, 2]) }))['content-type']).toBeUndefined();
  });

  it('delivers a streamed body chunk by chunk, before the response has ended', async () => {
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let serverRes: http.ServerResponse | undefined;
    const { url } = await serve(async (_req, res) => {
      serverRes = res;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: one\n\n');
      await released;
      res.end('data: two\n\n');
    });

    const reader = (await httpFetch(url)).body!.getReader();
    expect(text((await reader.read()).value)).toBe('data: one\n\n');
    expect(serverRes?.writableEnded).toBe(false);
    release();
    let rest = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += text(chunk.value);
    expect(rest).toBe('data: two\n\n');
  });

  it('rejects with an AbortError when aborted before the response, and closes the connection', async () => {
    let closed: Promise<unknown> = new Promise(() => {});
    let arrived = () => {};
    const arrival = new Promise<void>((resolve) => (arrived = resolve));
    const { url } = await serve((req) => {
      closed = once(req.socket, 'close');
      arrived(); // and never answer
    });

    const controller = new AbortController();
    const pending = httpFetch(url, { signal: controller.signal });
    await arrival;
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await closed;

    const reason = new Error('gave up');
    await expect(httpFetch(url, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
  });

  it('errors the body with the abort reason when aborted mid-body, and closes the connection', async () => {
    let closed: Promise<unknown> = new Promise(() => {});
    const { url } = await serve((req, res) => {
      closed = once(req.socket, 'close');
      res.writeHead(200);
      res.write('first');
    });

    const controller = new AbortController();
    const reader = (await httpFetch(url, { signal: controller.signal })).body!.getReader();
    expect(text((await reader.read()).value)).toBe('first');
    const next = reader.read();
    controller.abort();
    await expect(next).rejects.toMatchObject({ name: 'AbortError' });
    await closed;
  });

  it('errors the body with TypeError("terminated") when the server drops the connection mid-body', async () => {
    const { url } = await serve((req, res) => {
      res.writeHead(200);
      res.write('first', () => setTimeout(() => req.socket.destroy(), 10));
    });

    const reader = (await httpFetch(url)).body!.getReader();
    expect(text((await reader.read()).value)).toBe('first');
    const error = await reader.read().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(TypeError);
    expect(error).toMatchObject({ message: 'terminated', cause: { code: 'ECONNRESET' } });
  });

  it('rejects with TypeError("fetch failed") carrying the cause when the connection is refused', async () => {
    const server = http.createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));

    const error = await httpFetch(`http://127.0.0.1:${port}/`).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(TypeError);
    expect(error).toMatchObject({ message: 'fetch failed', cause: { code: 'ECONNREFUSED' } });
  });

  describe('redirects', () => {
    it('keeps the method, body and credentials on a same-origin 307', async () => {
      const { url } = await serve((req, res) => {
        if (req.url === '/start') res.writeHead(307, { location: '/end' }).end();
        else void echo(req, res);
      });

      const response = await httpFetch(`${url}/start`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer k' },
        body: '{"a":1}',
      });
      const seen = await echoed(response);
      expect(seen).toMatchObject({ method: 'POST', path: '/end', body: '{"a":1}' });
      expect(seen.headers).toMatchObject({ 'content-type': 'application/json', authorization: 'Bearer k' });
      expect(response.url).toBe(`${url}/end`);
      expect(response.redirected).toBe(true);
    });

    it('turns a 303 into a GET without a body', async () => {
      const { url } = await serve((req, res) => {
        if (req.url === '/start') res.writeHead(303, { location: '/end' }).end();
        else void echo(req, res);
      });

      const seen = await echoed(
        await httpFetch(`${url}/start`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }),
      );
      expect(seen).toMatchObject({ method: 'GET', path: '/end', body: '' });
      expect(seen.headers['content-type']).toBeUndefined();
    });

    it('drops the authorization header on a cross-origin redirect', async () => {
      const other = await serve(echo);
      const { url } = await serve((_req, res) => res.writeHead(307, { location: `${other.url}/end` }).end());

      const seen = await echoed(await httpFetch(url, { headers: { authorization: 'Bearer k', 'x-keep': 'yes' } }));
      expect(seen.headers.authorization).toBeUndefined();
      expect(seen.headers['x-keep']).toBe('yes');
    });

    it('fails after 20 redirects', async () => {
      const { url } = await serve((_req, res) => res.writeHead(302, { location: '/again' }).end());
      await expect(httpFetch(url)).rejects.toMatchObject({ message: 'fetch failed' });
    });
  });

  it.each([
    ['gzip', zlib.gzipSync],
    ['br', zlib.brotliCompressSync],
    ['deflate', zlib.deflateSync],
  ] as const)('decodes a %s body', async (encoding, compress) => {
    const { url } = await serve((_req, res) => {
      res.writeHead(200, { 'content-encoding': encoding });
      res.end(compress(Buffer.from(`hello ${encoding}`)));
    });
    expect(await (await httpFetch(url)).text()).toBe(`hello ${encoding}`);
  });

  it('gives a 204 a null body', async () => {
    const { url } = await serve((_req, res) => res.writeHead(204).end());
    const response = await httpFetch(url, { method: 'DELETE' });
    expect(response.status).toBe(204);
    expect(response.body).toBeNull();
  });

  it('reuses the connection for sequential requests', async () => {
    const server = await serve(echo);
    await (await httpFetch(server.url)).text();
    await (await httpFetch(server.url, { method: 'POST', body: 'again' })).text();
    expect(server.connections()).toBe(1);
  });

  it('hands a FormData body to the built-in fetch', async () => {
    const { url } = await serve(echo);
    const form = new FormData();
    form.set('field', 'value');
    const seen = await echoed(await httpFetch(url, { method: 'POST', body: form }));
    expect(seen.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(seen.headers['sec-fetch-mode']).toBe('cors'); // sent by undici only
    expect(seen.body).toContain('value');
  });
});

describe('providerFetch under the openai SDK', () => {
  const KEY = 'sk-test-http-fetch';
  let fake: FakeProviderServer;
  let calls = 0;
  // Counts calls so the test proves the SDK went through providerFetch, not the global fetch.
  const countingFetch: typeof fetch = (input, init) => {
    calls++;
    return providerFetch(input, init);
  };
  const client = () =>
    new OpenAI({
      apiKey: KEY,
      baseURL: fake.url,
      organization: null, // keep the SDK away from process.env
      project: null,
      maxRetries: 0,
      fetch: countingFetch,
    });
  const streamed = (signal?: AbortSignal) =>
    client().chat.completions.create(
      {
        model: 'gpt-4o',
        messages: [{ role: 'user', content: 'hi' }],
        stream: true,
        stream_options: { include_usage: true },
      },
      signal ? { signal } : {},
    );

  beforeAll(async () => {
    fake = await startOpenAIFake({ apiKey: KEY });
  });
  afterEach(() => {
    fake.reset();
    calls = 0;
  });
  afterAll(() => fake.close());

  it('reads a streamed completion', async () => {
    fake.enqueue({ kind: 'reply', text: 'Hello there, world.', usage: { inputTokens: 5, outputTokens: 3 } });
    let reply = '';
    let completionTokens: number | undefined;
    for await (const chunk of await streamed()) {
      reply += chunk.choices[0]?.delta.content ?? '';
      completionTokens = chunk.usage?.completion_tokens ?? completionTokens;
    }
    expect(reply).toBe('Hello there, world.');
    expect(completionTokens).toBe(3);
    expect(calls).toBe(1);
    expect((await fake.whenClosed(0)).completed).toBe(true);
  });

  it('aborts a streamed completion mid-way and the server sees the disconnect', async () => {
    fake.enqueue({ kind: 'reply', text: 'word '.repeat(100), chunkDelayMs: 10 });
    const controller = new AbortController();
    let deltas = 0;
    // The SDK ends its iterator quietly when the signal aborts a stream.
    for await (const chunk of await streamed(controller.signal)) {
      if (chunk.choices[0]?.delta.content && ++deltas === 2) controller.abort();
    }
    expect(deltas).toBe(2);
    expect(calls).toBe(1);
    const recorded = await fake.whenClosed(0, 1_000);
    expect(recorded.disconnectedByClient).toBe(true);
    expect(recorded.chunksSent).toBeLessThan(100);
  });
});

describe('the body-data callback', () => {
  it('is called as each piece of the body arrives, before the reader asks for it, keep-alives included', async () => {
    const { url } = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': keep-alive\n\n');
      setTimeout(() => res.write('event: ping\ndata: {"type":"ping"}\n\n'), 30);
      setTimeout(() => res.end('data: done\n\n'), 60);
    });
    const arrivals: number[] = [];
    const response = await httpFetch(url, { [ON_BODY_DATA]: () => arrivals.push(performance.now()) } as GatedRequestInit);
    await new Promise((resolve) => setTimeout(resolve, 100)); // nobody reads meanwhile
    expect(arrivals).toHaveLength(3);
    expect(await response.text()).toBe(': keep-alive\n\nevent: ping\ndata: {"type":"ping"}\n\ndata: done\n\n');
  });
});

describe('the send gate', () => {
  it('writes nothing before the gate opens, then sends the request as usual', async () => {
    let received = 0;
    const { url } = await serve((req, res) => {
      received++;
      echo(req, res);
    });
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const pending = httpFetch(`${url}/v1/gated`, { method: 'POST', body: '{"a":1}', [SEND_AFTER]: gate } as GatedRequestInit);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received).toBe(0);
    open();
    const body = await echoed(await pending);
    expect(body).toMatchObject({ method: 'POST', path: '/v1/gated', body: '{"a":1}' });
    expect(received).toBe(1);
  });

  it("rejects with the gate's reason when it rejects, and the server never sees the request", async () => {
    let received = 0;
    const { url } = await serve((req, res) => {
      received++;
      echo(req, res);
    });
    let close!: (reason: unknown) => void;
    const gate = new Promise<void>((_resolve, reject) => (close = reject));
    const pending = httpFetch(`${url}/v1/gated`, { method: 'POST', body: 'x', [SEND_AFTER]: gate } as GatedRequestInit);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const reason = new Error('not sent');
    close(reason);
    await expect(pending).rejects.toBe(reason);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received).toBe(0);
    // The fetch still works for the next request.
    expect((await echoed(await httpFetch(`${url}/next`, { method: 'POST', body: 'y' }))).body).toBe('y');
  });

  it('takes no connection before the gate opens: a request dropped at the gate leaves the pooled one alive', async () => {
    const server = await serve(echo);
    await (await httpFetch(server.url)).text(); // one pooled keep-alive connection
    let close!: (reason: unknown) => void;
    const gate = new Promise<void>((_resolve, reject) => (close = reject));
    const dropped = httpFetch(`${server.url}/v1/gated`, { method: 'POST', body: 'x', [SEND_AFTER]: gate } as GatedRequestInit);
    await new Promise((resolve) => setTimeout(resolve, 20));
    close(new Error('not sent'));
    await expect(dropped).rejects.toThrow('not sent');
    // A gated request waiting meanwhile does not hold the connection either.
    const waiting = httpFetch(`${server.url}/v1/later`, { method: 'POST', body: 'z', [SEND_AFTER]: new Promise(() => {}) } as GatedRequestInit);
    void waiting.catch(() => {});
    expect((await echoed(await httpFetch(`${server.url}/next`, { method: 'POST', body: 'y' }))).body).toBe('y');
    expect(server.connections()).toBe(1);
  });

  it('rejects, rather than hangs, when node:http refuses the request once the gate opens', async () => {
    const { url } = await serve(echo);
    const gated = httpFetch(url, { method: 'NOT A TOKEN', [SEND_AFTER]: Promise.resolve() } as GatedRequestInit);
    await expect(gated).rejects.toThrow(/method/i);
  });

  it('an abort while waiting at the gate rejects with the abort reason and sends nothing', async () => {
    let received = 0;
    const { url } = await serve((req, res) => {
      received++;
      echo(req, res);
    });
    const gate = new Promise<void>(() => {});
    const controller = new AbortController();
    const pending = httpFetch(url, { method: 'POST', body: 'x', signal: controller.signal, [SEND_AFTER]: gate } as GatedRequestInit);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received).toBe(0);
  });
});
