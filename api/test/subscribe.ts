import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export const RUN_EVENTS = `subscription($runId: ID!, $afterSeq: Int) {
  runEvents(runId: $runId, afterSeq: $afterSeq) { seq type text status payload }
}`;

export interface StreamedEvent {
  seq: number;
  type: string;
  text: string | null;
  status: string | null;
  payload: Record<string, unknown>;
}

export function wsClient(wsUrl: string, token?: string): Client {
  return createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
  });
}

/**
 * Collects a subscription's events until it completes, or until `stopAfter` returns true (then the
 * socket is closed abruptly, like a dropped connection).
 */
export async function collectRunEvents(
  wsUrl: string,
  token: string,
  runId: string,
  opts: { afterSeq?: number; stopAfter?: (e: StreamedEvent) => boolean } = {},
): Promise<{ events: StreamedEvent[]; completed: boolean; error?: unknown }> {
  const client = wsClient(wsUrl, token);
  const events: StreamedEvent[] = [];
  const result = await new Promise<{ completed: boolean; error?: unknown }>((resolve) => {
    const dispose = client.subscribe<{ runEvents: StreamedEvent }>(
      { query: RUN_EVENTS, variables: { runId, afterSeq: opts.afterSeq ?? 0 } },
      {
        next: (msg) => {
          if (msg.errors) return resolve({ completed: false, error: msg.errors });
          const e = msg.data!.runEvents;
          events.push(e);
          if (opts.stopAfter?.(e)) {
            dispose();
            resolve({ completed: false });
          }
        },
        error: (error) => resolve({ completed: false, error }),
        complete: () => resolve({ completed: true }),
      },
    );
  });
  await client.dispose();
  return { events, ...result };
}
