import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { HealthDocument } from './_generated/graphql.js';
import { errorFromGraphQL, errorFromResult, HubError, type TypedErrorResult } from './errors.js';

export interface ClientOptions {
  /** The API's GraphQL endpoint, e.g. https://hub.example.com/graphql */
  url: string;
  /** An API token (`hub_pat_…`) created in the web UI or with `createApiToken`. */
  token?: string;
  /** Custom fetch (tests, proxies). Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** WebSocket implementation for subscriptions outside browsers (e.g. the `ws` package on Node < 22). */
  webSocketImpl?: unknown;
  /** Extra headers on every HTTP request. */
  headers?: Record<string, string>;
}

type Vars<V> = V extends Record<string, never> ? [variables?: V] : [variables: V];

export interface HubClient {
  /** Runs any typed operation over HTTP; throws a HubError subclass on failure. */
  request<R, V extends Record<string, unknown>>(doc: TypedDocumentNode<R, V>, ...variables: Vars<V>): Promise<R>;
  /** Subscribes over graphql-ws; iterate the results, `return()` to stop. */
  subscribe<R, V extends Record<string, unknown>>(doc: TypedDocumentNode<R, V>, variables: V): AsyncGenerator<R>;
  health(): Promise<import('./_generated/graphql.js').HealthQuery['health']>;
  /** Closes the WebSocket, if one was opened. */
  close(): Promise<void>;
}

const cache = new WeakMap<object, string>();
const source = (doc: object) => {
  let s = cache.get(doc);
  if (!s) cache.set(doc, (s = print(doc as never)));
  return s;
};

/** Throws the typed error when a mutation payload's union resolved to an error type. */
export function unwrap<T extends { __typename?: string }>(result: T): Exclude<T, { code: string; message: string }> {
  if (result && typeof result === 'object' && 'code' in result && 'message' in result && result.__typename?.endsWith('Error')) {
    throw errorFromResult(result as unknown as TypedErrorResult);
  }
  return result as Exclude<T, { code: string; message: string }>;
}

export function createClient(options: ClientOptions): HubClient {
  const doFetch = options.fetch ?? globalThis.fetch;
  let ws: WsClient | undefined;
  const wsClient = () =>
    (ws ??= createWsClient({
      url: options.url.replace(/^http/, 'ws'),
      webSocketImpl: options.webSocketImpl,
      connectionParams: options.token ? { authorization: `Bearer ${options.token}` } : {},
      lazy: true,
      retryAttempts: 5,
    }));

  async function request<R, V>(doc: TypedDocumentNode<R, V>, variables?: V): Promise<R> {
    const res = await doFetch(options.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        ...options.headers,
      },
      body: JSON.stringify({ query: source(doc), variables: variables ?? {} }),
    });
    const retryAfter = res.headers.get('retry-after');
    const body = (await res.json().catch(() => null)) as {
      data?: R;
      errors?: { message: string; extensions?: Record<string, unknown> }[];
    } | null;
    if (body?.errors?.length) {
      const first = body.errors[0]!;
      if (retryAfter && !first.extensions?.retryAfterSeconds) {
        first.extensions = { ...first.extensions, retryAfterSeconds: Number(retryAfter) };
      }
      throw errorFromGraphQL(first, res.status);
    }
    if (!res.ok || !body?.data) throw errorFromGraphQL({ message: `HTTP ${res.status} from ${options.url}` }, res.status);
    return body.data;
  }

  async function* subscribe<R, V>(doc: TypedDocumentNode<R, V>, variables: V): AsyncGenerator<R> {
    const iterator = wsClient().iterate<R>({ query: source(doc), variables: variables as Record<string, unknown> });
    try {
      for await (const result of iterator) {
        if (result.errors?.length) throw errorFromGraphQL(result.errors[0] as never);
        if (result.data) yield result.data;
      }
    } catch (err) {
      if (err instanceof HubError) throw err;
      const code = (err as { code?: number })?.code;
      if (code === 4401 || code === 4403) throw errorFromGraphQL({ message: 'Unauthorized', extensions: { code: 'UNAUTHENTICATED' } });
      throw err;
    } finally {
      await iterator.return?.(undefined);
    }
  }

  return {
    request: request as HubClient['request'],
    subscribe: subscribe as HubClient['subscribe'],
    async health() {
      return (await request(HealthDocument)).health;
    },
    async close() {
      await ws?.dispose();
    },
  };
}
