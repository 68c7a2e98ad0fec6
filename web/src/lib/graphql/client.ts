import { cacheExchange, Client, fetchExchange, subscriptionExchange, type Exchange } from '@urql/core';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';

export interface HubClientOptions {
  /** GraphQL endpoint; same-origin `/graphql` by default, since the API serves the UI. */
  url?: string;
  /** Custom fetch (tests). */
  fetch?: typeof fetch;
}

/** `ws(s)://<this host>/graphql`, resolved lazily so it is only read in a browser. */
function sameOriginWsUrl(path: string): string {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

/** The subscription connection of a client, for code that must know when its subscriptions are listening. */
export interface SubscriptionSocket {
  /** A connection is open and acknowledged: a subscription started now is sent on it at once. */
  readonly connected: boolean;
  /**
   * Calls `listener` after each acknowledged connection (the first and every reconnect), once the
   * subscriptions waiting for it have been sent; returns a function that stops listening.
   */
  onConnected(listener: () => void): () => void;
  /** Calls `listener` when the connection closes; returns a function that stops listening. */
  onClosed(listener: () => void): () => void;
}

const sockets = new WeakMap<Client, SubscriptionSocket>();

/** The subscription connection of a client made by `createHubClient`; undefined on the server. */
export const subscriptionSocket = (client: Client): SubscriptionSocket | undefined => sockets.get(client);

function socketOf(ws: WsClient): SubscriptionSocket {
  let current: WebSocket | undefined;
  ws.on('connected', (socket) => (current = socket as WebSocket));
  return {
    // A socket being closed for want of subscriptions is no longer OPEN, though `closed` has not fired yet.
    get connected() {
      return current?.readyState === WebSocket.OPEN;
    },
    onConnected(listener) {
      // graphql-ws sends the waiting subscriptions in the microtasks that follow this event.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stop = ws.on('connected', () => {
        clearTimeout(timer);
        timer = setTimeout(listener, 0);
      });
      return () => {
        stop();
        clearTimeout(timer);
      };
    },
    onClosed(listener) {
      return ws.on('closed', () => listener());
    },
  };
}

function wsExchange(ws: WsClient): Exchange {
  return subscriptionExchange({
    forwardSubscription(request) {
      const operation = { ...request, query: request.query ?? '' };
      return {
        subscribe(sink) {
          return { unsubscribe: ws.subscribe(operation, sink) };
        },
      };
    },
  });
}

/**
 * The web UI's urql client. Queries and mutations are POSTed as JSON (Apollo's CSRF prevention
 * rejects simple GETs); subscriptions use graphql-ws on the same path. On the server the client
 * is created but never used: pages fetch their data in the browser (see web/README.md).
 */
export function createHubClient(options: HubClientOptions = {}): Client {
  const url = options.url ?? '/graphql';
  const exchanges: Exchange[] = [cacheExchange, fetchExchange];
  // Lazy: the socket opens with the first subscription and closes after the last one ends.
  // The hub_session cookie rides along on the same-origin upgrade request.
  // A browser reports a refused connection (the server restarting) as an error event, which graphql-ws's
  // default shouldRetry treats as fatal; retry it like a dropped socket (fatal close codes still end it).
  const ws =
    typeof window === 'undefined'
      ? undefined
      : createWsClient({ url: () => sameOriginWsUrl(url), lazy: true, retryAttempts: 5, shouldRetry: () => true });
  if (ws) exchanges.push(wsExchange(ws));
  const client = new Client({
    url,
    exchanges,
    preferGetMethod: false,
    fetch: options.fetch,
    fetchOptions: { credentials: 'same-origin' },
  });
  if (ws) sockets.set(client, socketOf(ws));
  return client;
}
