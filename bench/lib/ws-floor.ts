/**
 * The transport floor of the fan-out benchmark: a bare graphql-transport-ws server in its own process (no
 * GraphQL execution, no database, no provider: one prebuilt message per chunk, written to every socket)
 * streaming to the same clients at the same pace as the fake provider. On a given machine the API can at
 * best approach it: what is left is the cost of 1,000 sockets and of the clients themselves.
 *
 * Started by forking this file (`serve`); talks to the parent over IPC like bench/api-process.ts.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface FloorServer {
  wsUrl: string;
  pid: number;
  /** Resolves once `n` subscriptions have arrived. */
  subscribed(n: number): Promise<void>;
  /** Sends `chunks` messages `intervalMs` apart (on a fixed schedule) to every subscriber, then completes them. */
  stream(chunks: number, intervalMs: number): Promise<void>;
  stop(): Promise<void>;
}

type Reply = { type: 'listening'; port: number } | { type: 'subscribed'; count: number } | { type: 'streamed' };

export async function startFloorServer(): Promise<FloorServer> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['serve'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const replies: Reply[] = [];
  let waiting: (() => void) | null = null;
  child.on('message', (m) => {
    replies.push(m as Reply);
    waiting?.();
  });
  const until = async <T extends Reply['type']>(type: T, ok: (r: Extract<Reply, { type: T }>) => boolean = () => true) => {
    for (;;) {
      const i = replies.findIndex((r) => r.type === type && ok(r as Extract<Reply, { type: T }>));
      if (i >= 0) return replies.splice(i, 1)[0] as Extract<Reply, { type: T }>;
      await new Promise<void>((r) => (waiting = r));
    }
  };
  const { port } = await until('listening');
  return {
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    pid: child.pid!,
    subscribed: async (n) => void (await until('subscribed', (r) => r.count >= n)),
    async stream(chunks, intervalMs) {
      child.send({ cmd: 'stream', chunks, intervalMs });
      await until('streamed');
    },
    async stop() {
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill();
      await gone;
    },
  };
}

async function serve() {
  const { createRequire } = await import('node:module');
  const requireFromApi = createRequire(new URL('../../api/package.json', import.meta.url));
  const { WebSocketServer } = requireFromApi('ws') as typeof import('ws');
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/graphql', perMessageDeflate: false, handleProtocols: () => 'graphql-transport-ws' });
  const subscribers: { send(data: string): void; id: string }[] = [];
  wss.on('connection', (socket) => {
    socket.on('message', (raw) => {
      const m = JSON.parse(String(raw)) as { type: string; id?: string };
      if (m.type === 'connection_init') socket.send('{"type":"connection_ack"}');
      else if (m.type === 'ping') socket.send('{"type":"pong"}');
      else if (m.type === 'subscribe') {
        subscribers.push({ send: (data) => socket.send(data), id: JSON.stringify(m.id) });
        process.send!({ type: 'subscribed', count: subscribers.length });
      }
    });
  });
  wss.on('listening', () => process.send!({ type: 'listening', port: (wss.address() as { port: number }).port }));
  process.on('message', async (raw) => {
    const { chunks, intervalMs } = raw as { chunks: number; intervalMs: number };
    const start = performance.now();
    for (let seq = 1; seq <= chunks; seq++) {
      const due = start + (seq - 1) * intervalMs - performance.now();
      if (due > 0) await new Promise((r) => setTimeout(r, due));
      // The same message the API sends for a one-chunk TOKEN event, stamped like the fake provider's chunks.
      const text = `chunk ${seq} [t=${(performance.timeOrigin + performance.now()).toFixed(3)}] `;
      const payload = JSON.stringify({ data: { runEvents: { seq, type: 'TOKEN', text, status: null, createdAt: new Date().toISOString() } } });
      for (const s of subscribers) s.send(`{"id":${s.id},"type":"next","payload":${payload}}`);
    }
    for (const s of subscribers) s.send(`{"id":${s.id},"type":"complete"}`);
    process.send!({ type: 'streamed' });
  });
}

if (process.argv[2] === 'serve') await serve();
