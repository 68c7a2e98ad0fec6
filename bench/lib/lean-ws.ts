/**
 * A lean graphql-transport-ws subscriber for the fan-out benchmark, where one process plays 1,000
 * subscribers that in reality sit on 1,000 machines. It speaks the same protocol over the same `ws`
 * sockets as the graphql-ws client, but takes the receive time first thing in the socket's `message`
 * event and keeps the raw message, parsed only when asked (after the stream, for the checks). The
 * graphql-ws client parses, validates and dispatches every message as it arrives: on the 2-core machines of
 * this project that is about a third of the load generator's CPU per message, time during which the other
 * sockets' messages wait, and it showed up in the measured latency. `BENCH_FANOUT_CLIENT=graphql-ws`
 * measures with the graphql-ws client instead.
 */
import type { FormattedExecutionResult } from 'graphql';
import type { Client } from 'graphql-ws';
import { connectWs } from './client.js';
import { WebSocket } from './deps.js';
import { wallNow } from './stats.js';

export interface FanoutSink {
  /** `payload()` parses the message (cheap to defer: the receive time is already taken). */
  next(recv: number, payload: () => FormattedExecutionResult<Record<string, unknown>, unknown>): void;
  error(err: unknown): void;
  complete(): void;
}

/** One subscriber connection, opened and acknowledged. */
export interface FanoutClient {
  subscribe(query: string, variables: Record<string, unknown>, sink: FanoutSink): void;
  dispose(): Promise<void>;
}

export type FanoutClientKind = 'lean' | 'graphql-ws';

export function fanoutClientKind(): FanoutClientKind {
  const kind = process.env.BENCH_FANOUT_CLIENT ?? 'lean';
  if (kind !== 'lean' && kind !== 'graphql-ws') throw new Error(`BENCH_FANOUT_CLIENT must be lean or graphql-ws, not ${kind}`);
  return kind;
}

export function connectFanoutClient(kind: FanoutClientKind, wsUrl: string, token: string, timeoutMs = 30_000): Promise<FanoutClient> {
  return kind === 'lean' ? connectLean(wsUrl, token, timeoutMs) : connectWs(wsUrl, token, timeoutMs).then(graphqlWsClient);
}

function graphqlWsClient(client: Client): FanoutClient {
  return {
    subscribe(query, variables, sink) {
      client.subscribe<Record<string, unknown>>(
        { query, variables },
        { next: (msg) => sink.next(wallNow(), () => msg), error: (e) => sink.error(e), complete: () => sink.complete() },
      );
    },
    dispose: async () => void (await client.dispose()),
  };
}

const SUBSCRIPTION_ID = '1';

/** Every `next` message for our one subscription starts with these bytes (the API writes id and type first). */
const NEXT_PREFIX = Buffer.from(`{"id":"${SUBSCRIPTION_ID}","type":"next","payload":`);

interface ProtocolMessage {
  type: string;
  id?: string;
  payload?: unknown;
}

function connectLean(wsUrl: string, token: string, timeoutMs: number): Promise<FanoutClient> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(wsUrl, 'graphql-transport-ws', { perMessageDeflate: false });
    let sink: FanoutSink | null = null;
    let acknowledged = false;
    let ended = false;
    const end = (err?: unknown) => {
      if (ended) return;
      ended = true;
      if (err === undefined) sink?.complete();
      else sink?.error(err);
    };
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error('graphql-transport-ws connection timed out'));
    }, timeoutMs);
    const client: FanoutClient = {
      subscribe(query, variables, s) {
        sink = s;
        socket.send(JSON.stringify({ id: SUBSCRIPTION_ID, type: 'subscribe', payload: { query, variables } }));
      },
      dispose: () =>
        new Promise<void>((done) => {
          if (socket.readyState === socket.CLOSED) return done();
          socket.once('close', () => done());
          socket.close(1000, 'Normal Closure');
        }),
    };
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
    socket.on('message', (data: Buffer) => {
      const recv = wallNow();
      if (sink && data.length > NEXT_PREFIX.length && data.compare(NEXT_PREFIX, 0, NEXT_PREFIX.length, 0, NEXT_PREFIX.length) === 0) {
        sink.next(recv, () => (JSON.parse(data.toString()) as { payload: FormattedExecutionResult<Record<string, unknown>, unknown> }).payload);
        return;
      }
      const msg = JSON.parse(data.toString()) as ProtocolMessage;
      switch (msg.type) {
        case 'connection_ack':
          acknowledged = true;
          clearTimeout(timer);
          resolve(client);
          return;
        case 'ping':
          socket.send(JSON.stringify({ type: 'pong' }));
          return;
        case 'next':
          // A result written by graphql-ws itself (one with errors), keys in another order.
          if (sink && msg.id === SUBSCRIPTION_ID) sink.next(recv, () => msg.payload as FormattedExecutionResult<Record<string, unknown>, unknown>);
          return;
        case 'error':
          end(msg.payload);
          return;
        case 'complete':
          end();
          return;
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (!acknowledged) reject(err);
      end(err);
    });
    socket.on('close', (code, reason) => {
      clearTimeout(timer);
      if (!acknowledged) reject(new Error(`closed before acknowledgement: ${code} ${String(reason)}`));
      if (code !== 1000) end(new Error(`socket closed: ${code} ${String(reason)}`));
      else end(new Error('socket closed before the subscription completed'));
    });
  });
}
