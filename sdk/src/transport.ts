import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { errorFromGraphQL, HubError, NetworkError, RateLimitedError, TimeoutError, TooManyConnectionsError, UnauthorizedError } from './errors.js';

export interface ClientOptions {
  /** The API's GraphQL endpoint, e.g. https://hub.example.com/graphql */
  url: string;
  /** An API token (`hub_pat_…`) created in the web UI or with `tokens.create`. */
  token?: string | undefined;
  /** Custom fetch (tests, proxies). Defaults to the global fetch. */
  fetch?: typeof fetch | undefined;
  /** WebSocket implementation for subscriptions where there is no global one (e.g. the `ws` package on Node < 22). */
  webSocketImpl?: unknown;
  /** Extra headers on every HTTP request. */
  headers?: Record<string, string> | undefined;
  /**
   * Where queries and mutations go. `http` (the default): one POST each. `websocket`: over the same
   * graphql-ws connection as subscriptions, opened on first use and kept; this saves each call the HTTP
   * layers' cost (about 2 ms per `runs.start` in the orchestration benchmark). Errors are the same
   * classes either way; a connection lost before the answer is a NetworkError.
   */
  operations?: 'http' | 'websocket' | undefined;
  /**
   * How often to ping the API over an open WebSocket. A connection whose answer has not come back within as
   * long again is taken for dropped, so a stream reconnects: a dead peer or a broken network path sends no
   * close, and would otherwise leave a stream waiting forever. So is a connection not opened and acknowledged
   * within twice as long (an API or proxy that holds the upgrade). Default 15000; 0 turns both off.
   */
  keepAliveMs?: number | undefined;
  /**
   * How long a query or mutation may wait for its answer before it fails with a TimeoutError (a NetworkError):
   * an API that hangs would otherwise keep it waiting for minutes (over HTTP) or for good (over the WebSocket).
   * Default 30000; 0 waits as long as it takes. Subscriptions and streams are not timed: keepAliveMs watches them.
   * A mutation that timed out may still have been carried out: see `runs.start`'s `idempotencyKey`.
   */
  timeoutMs?: number | undefined;
}

/**
 * Options of one query or mutation: the last argument of `client.request` and of every namespace method that
 * makes a request (merged into the options object of those that have one, such as `projects.list`). A list's
 * (`List`, `Paginated`) apply to each page's request: `timeoutMs` times each page. Once the signal aborts, a list
 * yields nothing more: its next item throws the signal's reason, fetched already or not (a page request in flight is given up).
 */
export interface RequestOptions {
  /** Stops waiting: the call then rejects with the signal's reason (an AbortError, unless you gave another). */
  signal?: AbortSignal | undefined;
  /** This call's timeout instead of the client's `timeoutMs` (0: none). */
  timeoutMs?: number | undefined;
}

/** Variables may be left out when the operation has none, or none that are required; options come after them. */
type RequestArgs<V> = Record<string, never> extends V ? [variables?: V, options?: RequestOptions] : [variables: V, options?: RequestOptions];

export interface SubscribeOptions {
  /** Stops the subscription; the iterator then throws the signal's reason. */
  signal?: AbortSignal | undefined;
}

/** The raw GraphQL layer every namespace is built on; also public for operations the namespaces do not cover. */
export interface Transport {
  /**
   * Runs any typed operation (over HTTP, or the WebSocket with `operations: 'websocket'`); throws a HubError subclass
   * on failure, a TimeoutError without an answer in time, or the signal's reason once `options.signal` aborts.
   */
  request<R, V extends Record<string, unknown>>(doc: TypedDocumentNode<R, V>, ...args: RequestArgs<V>): Promise<R>;
  /** Subscribes over graphql-ws. A dropped socket ends the iterator with a NetworkError; it never resubscribes by itself. */
  subscribe<R, V extends Record<string, unknown>>(doc: TypedDocumentNode<R, V>, variables: V, options?: SubscribeOptions): AsyncGenerator<R>;
  /**
   * Closes the WebSocket, if one was opened. Subscriptions and streams still open end with a HubError whose
   * code is `CLIENT_CLOSED`, as does any later use of the WebSocket; HTTP requests keep working.
   */
  close(): Promise<void>;
}

const sources = new WeakMap<object, string>();
const source = (doc: object) => {
  let s = sources.get(doc);
  if (!s) sources.set(doc, (s = print(doc as never)));
  return s;
};

type GraphQLErrorLike = { message: string; extensions?: Record<string, unknown> };

/** graphql-ws reports a closed socket with the close event itself (a DOM CloseEvent or the `ws` equivalent). */
const isCloseEvent = (e: unknown): e is { code: number; reason?: string } =>
  typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'number' && 'reason' in e;

/** Maps whatever graphql-ws hands a sink's `error` to the SDK's error classes. */
function subscriptionError(err: unknown): HubError {
  if (err instanceof HubError) return err;
  if (Array.isArray(err) && err.length > 0) return errorFromGraphQL(err[0] as GraphQLErrorLike);
  if (isCloseEvent(err)) {
    // 4401: the server rejected the credentials; 4403: graphql-ws' generic "Forbidden" on a refused connection.
    if (err.code === 4401 || err.code === 4403) return new UnauthorizedError(err.reason || 'Unauthorized');
    // 4429: one connection too many for the user (a stream waits it out as a rate limit, instead of failing at
    // once), or too many bad credentials from this address, whose reason says when to try again.
    if (err.code === 4429) {
      const wait = /; retry in (\d+) s$/.exec(err.reason ?? '');
      return wait ? new RateLimitedError(err.reason!, Number(wait[1])) : new TooManyConnectionsError(err.reason || undefined);
    }
    if (err.code >= 4400 && err.code < 4500 && err.code !== 4408 && err.code !== 4499) {
      return new HubError(`WebSocket closed: ${err.code} ${err.reason ?? ''}`.trim(), 'WEBSOCKET_PROTOCOL_ERROR', { closeCode: err.code });
    }
    return new NetworkError(`WebSocket closed: ${err.code} ${err.reason ?? ''}`.trim(), err.code);
  }
  return new NetworkError(err instanceof Error ? err.message : 'WebSocket error', undefined, { cause: err });
}

type WebSocketClass = new (url: string, protocols?: string | string[]) => { addEventListener(type: 'error', listener: () => void): void };

/**
 * `impl`, with a listener of its own for each socket's errors. graphql-ws lets go of a socket it terminates
 * (close(), or a connection that does not answer) before the socket has reported its end, and the `ws` package
 * reports closing a socket that is still connecting as an error, which with no listener left would be thrown
 * from nowhere, ending the process.
 */
const withErrorsHeard = (impl: WebSocketClass): WebSocketClass =>
  class extends impl {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      // graphql-ws hears the same errors through its own listener while it holds the socket.
      this.addEventListener('error', () => {});
    }
  };

/** The default of `ClientOptions.timeoutMs`. */
const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * The signal one call runs under: aborted with the caller's reason when theirs aborts, or with a TimeoutError
 * once `timeoutMs` has passed. `done()` stops the timer and forgets the caller's signal.
 */
function callSignal(url: string, signal: AbortSignal | undefined, timeoutMs: number) {
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal!.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  const timer = timeoutMs > 0 ? setTimeout(() => controller.abort(new TimeoutError(`No answer from ${url} within ${timeoutMs} ms`, timeoutMs)), timeoutMs) : undefined;
  return {
    signal: controller.signal,
    done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    },
  };
}

export function createTransport(options: ClientOptions): Transport {
  const doFetch = options.fetch ?? globalThis.fetch;
  let ws: WsClient | undefined;
  /** Whether the socket is open and acknowledged (graphql-ws' `connected`), until it closes. */
  let connected = false;
  let closed = false;
  /** Ends each subscription in progress, for close(): otherwise a stream would take the closed socket for a dropped one and reconnect. */
  const ending = new Set<(err: HubError) => void>();
  const closedError = () => new HubError('The client is closed', 'CLIENT_CLOSED');

  function wsClient(): WsClient {
    if (closed) throw closedError();
    if (ws) return ws;
    const impl = options.webSocketImpl ?? (globalThis as { WebSocket?: unknown }).WebSocket;
    if (!impl) {
      throw new HubError(
        'No WebSocket implementation: pass `webSocketImpl` (e.g. `import WebSocket from "ws"`) on Node < 22',
        'NO_WEBSOCKET',
      );
    }
    const keepAlive = options.keepAliveMs ?? 15_000;
    let unanswered: ReturnType<typeof setTimeout> | undefined;
    /** Drops the socket unless the API answers within `ms` (terminate() closes at once, 4499, a NetworkError). */
    const expectAnswer = (ms: number) => {
      clearTimeout(unanswered);
      unanswered = setTimeout(() => client.terminate(), ms);
      // The socket keeps the process alive while it is open; this timer must not outlive it on its own.
      (unanswered as { unref?: () => void }).unref?.();
    };
    const client = createWsClient({
      url: options.url.replace(/^http/, 'ws'),
      webSocketImpl: withErrorsHeard(impl as WebSocketClass),
      connectionParams: options.token ? { authorization: `Bearer ${options.token}` } : {},
      // Subscriptions alone (runs.stream): a socket only while one is open. Queries and mutations over the socket:
      // kept open between calls, or each call would open a socket of its own. (Either way a closed socket is
      // opened again by the next call; its failure reaches the calls waiting on it, not onNonLazyError.)
      lazy: options.operations !== 'websocket',
      onNonLazyError: () => {},
      // graphql-ws would resubscribe with the original variables; callers that can resume (runs.stream) do it themselves.
      retryAttempts: 0,
      keepAlive,
      on: {
        // A connection that is never opened and acknowledged (an API or proxy holding the upgrade) is as dead as one
        // that stops answering pings; graphql-ws' own connectionAckWaitTimeout only starts once the socket is open.
        connecting: () => {
          if (keepAlive > 0) expectAnswer(2 * keepAlive);
        },
        // Unanswered, a ping means the connection is gone: a close handshake could not get through either.
        ping: (received) => {
          if (!received) expectAnswer(keepAlive);
        },
        pong: (received) => {
          if (received) clearTimeout(unanswered);
        },
        connected: () => {
          connected = true;
          clearTimeout(unanswered);
        },
        closed: () => {
          connected = false;
          clearTimeout(unanswered);
        },
      },
    });
    return (ws = client);
  }

  async function request<R, V>(doc: TypedDocumentNode<R, V>, variables?: V, { signal, timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS }: RequestOptions = {}): Promise<R> {
    const call = callSignal(options.url, signal, timeoutMs);
    try {
      return await send(doc, variables, call.signal);
    } finally {
      call.done();
    }
  }

  /** One query or mutation, given up with the signal's reason when it aborts. */
  async function send<R, V>(doc: TypedDocumentNode<R, V>, variables: V | undefined, signal: AbortSignal): Promise<R> {
    if (options.operations === 'websocket') {
      // One result, or the errors thrown as by HTTP; the generator's cleanup ends the operation.
      for await (const data of subscribe(doc, (variables ?? {}) as V, { signal })) return data;
      throw new NetworkError(`${options.url} ended the operation without a result`);
    }
    signal.throwIfAborted();
    let res: Response;
    try {
      res = await doFetch(options.url, {
        signal,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/graphql-response+json, application/json',
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...options.headers,
        },
        body: JSON.stringify({ query: source(doc), variables: variables ?? {} }),
      });
    } catch (err) {
      signal.throwIfAborted();
      throw new NetworkError(`Cannot reach ${options.url}: ${(err as Error).message}`, undefined, { cause: err });
    }
    const body = (await res.json().catch(() => null)) as { data?: R | null; errors?: GraphQLErrorLike[] } | null;
    // A body cut short by the signal is no answer of the API's.
    signal.throwIfAborted();
    const first = body?.errors?.[0];
    if (first) {
      const retryAfter = res.headers.get('retry-after');
      if (retryAfter && first.extensions?.retryAfterSeconds === undefined) {
        first.extensions = { ...first.extensions, retryAfterSeconds: Number(retryAfter) };
      }
      throw errorFromGraphQL(first, res.status);
    }
    if (res.status === 429) {
      throw errorFromGraphQL({ message: 'Too many requests', extensions: { code: 'RATE_LIMITED', retryAfterSeconds: Number(res.headers.get('retry-after') ?? 1) } });
    }
    // A gateway's own error page, not the API's answer: the API is down or restarting behind it, so as unreachable.
    if (!body && [502, 503, 504].includes(res.status)) throw new NetworkError(`HTTP ${res.status} from ${options.url}: the API is unreachable behind it`);
    if (!res.ok || !body?.data) throw errorFromGraphQL({ message: `HTTP ${res.status} from ${options.url}` }, res.status);
    return body.data;
  }

  async function* subscribe<R, V>(doc: TypedDocumentNode<R, V>, variables: V, { signal }: SubscribeOptions = {}): AsyncGenerator<R> {
    signal?.throwIfAborted();
    const queue: R[] = [];
    let failure: unknown;
    let done = false;
    let wake: (() => void) | undefined;
    const notify = () => {
      wake?.();
      wake = undefined;
    };
    const end = (err: unknown) => {
      // The first reason stands: closing the client also makes graphql-ws report the socket's close.
      failure ??= err;
      done = true;
      notify();
    };
    const dispose = wsClient().subscribe<R>(
      { query: source(doc), variables: variables as Record<string, unknown> },
      {
        next: (result) => {
          if (result.errors?.length) return end(result.errors);
          if (result.data) queue.push(result.data);
          notify();
        },
        error: end,
        complete: () => {
          done = true;
          notify();
        },
      },
    );
    signal?.addEventListener('abort', notify);
    ending.add(end);
    try {
      for (;;) {
        signal?.throwIfAborted();
        const next = queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (failure !== undefined) throw subscriptionError(failure);
        if (done) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      signal?.removeEventListener('abort', notify);
      ending.delete(end);
      dispose();
    }
  }

  return {
    request: request as Transport['request'],
    subscribe: subscribe as Transport['subscribe'],
    async close() {
      closed = true;
      for (const end of ending) end(closedError());
      // dispose() waits for a socket still connecting to be acknowledged, for good when the API does not
      // answer: drop such a socket instead.
      if (!connected) ws?.terminate();
      await ws?.dispose();
      ws = undefined;
    },
  };
}
