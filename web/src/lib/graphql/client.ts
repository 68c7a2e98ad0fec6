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

function wsExchange(path: string): Exchange {
  // Lazy: the socket opens with the first subscription and closes after the last one ends.
  // The hub_session cookie rides along on the same-origin upgrade request.
  const ws: WsClient = createWsClient({ url: () => sameOriginWsUrl(path), lazy: true, retryAttempts: 5 });
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
  if (typeof window !== 'undefined') exchanges.push(wsExchange(url));
  return new Client({
    url,
    exchanges,
    preferGetMethod: false,
    fetch: options.fetch,
    fetchOptions: { credentials: 'same-origin' },
  });
}
