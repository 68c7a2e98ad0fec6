import { createRequire } from 'node:module';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { createClient, type HubClient } from '@hub/sdk';
import { given } from '../../api/test/factories.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';

// Node 20 has no global WebSocket; the API package already depends on `ws`.
export const WebSocket: unknown = createRequire(new URL('../../api/package.json', import.meta.url))('ws');

export { given, startTestServer, type TestServer };

/** For the `beforeAll` that starts the server: the first one on a worker also boots PGlite, slow on a busy machine. */
export const BOOT_TIMEOUT_MS = 180_000;

/**
 * A client of the test server. With `operations: 'websocket'` its fetch fails the test if called: every
 * query and mutation must go over the socket.
 */
export function clientFor(app: TestServer, token?: string, operations: 'http' | 'websocket' = 'http'): HubClient {
  const noHttp: typeof fetch = async (input) => {
    throw new Error(`HTTP request to ${String(input)} from a client whose operations go over the WebSocket`);
  };
  return createClient({ url: app.graphqlUrl, token, webSocketImpl: WebSocket, operations, ...(operations === 'websocket' ? { fetch: noHttp } : {}) });
}

/** Watches the server's WebSocket upgrades so a test can cut open sockets, as a network failure would. */
export function socketCutter(app: TestServer) {
  const sockets = new Set<Socket>();
  let opened = 0;
  let cutEveryNewSocket = false;
  const onUpgrade = (_req: unknown, socket: Socket) => {
    opened++;
    if (cutEveryNewSocket) return void setImmediate(() => socket.destroy());
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  app.server.httpServer.on('upgrade', onUpgrade);
  return {
    /** WebSocket connections open right now. */
    get open() {
      return [...sockets].filter((s) => !s.destroyed).length;
    },
    /** WebSocket connections opened since the cutter was installed. */
    get opened() {
      return opened;
    },
    cutAll() {
      for (const socket of sockets) socket.destroy();
    },
    /** From now on, drop every new connection right after it opens: the network is down. */
    cutEverything() {
      cutEveryNewSocket = true;
      this.cutAll();
    },
    stop() {
      app.server.httpServer.off('upgrade', onUpgrade);
    },
  };
}

/**
 * A TCP relay in front of the test server whose `blackHole()` silently stops carrying the connections open
 * at that moment, both ways, without closing them: a dead peer or a dropped network path, which no close
 * frame or FIN announces. Connections made afterwards are carried as usual.
 */
export async function blackHoleRelay(app: TestServer) {
  const target = new URL(app.url);
  const carried = new Map<Socket, Socket>();
  const held: Socket[] = [];
  const relay = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    carried.set(client, upstream);
    client.pipe(upstream).pipe(client);
    // Either side's end ends the other, as a network would carry it; not once black-holed.
    const forget = () => {
      if (!carried.delete(client)) return;
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) socket.on('error', forget).on('close', forget);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return {
    graphqlUrl: `http://127.0.0.1:${(relay.address() as AddressInfo).port}/graphql`,
    blackHole() {
      for (const [client, upstream] of carried) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        // The server gives up on its side in time; the client must not hear of it.
        upstream.destroy();
        client.pause();
        held.push(client);
      }
      carried.clear();
    },
    close() {
      relay.close();
      for (const socket of [...held, ...carried.keys(), ...carried.values()]) socket.destroy();
    },
  };
}

/**
 * A server that accepts connections and reads what is sent, but never answers: an API that hangs (a stuck
 * process, a load balancer holding requests). Used for HTTP requests and WebSocket upgrades alike.
 */
export async function silentServer() {
  const sockets = new Set<Socket>();
  let requests = 0;
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket)).on('error', () => {});
    // Counts requests, not connections: fetch may open spare connections, or reuse one.
    socket.on('data', (chunk: Buffer) => (requests += chunk.toString('latin1').match(/^(GET|POST) \S+ HTTP\/1\.1\r$/gm)?.length ?? 0));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    graphqlUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`,
    /** HTTP requests and WebSocket upgrades received so far. */
    get requests() {
      return requests;
    },
    /** Connections still open. */
    get open() {
      return sockets.size;
    },
    close() {
      server.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}
