/**
 * The I/O floor of the orchestration benchmark: a bare server in its own process that does only the I/O
 * the product guarantees between "start this run" and "here is its first token", with no framework,
 * GraphQL, queue, budget or provider SDK:
 *
 *   1. a WebSocket message asks for a run (the client's socket is open, as in the "over the socket" level);
 *   2. ONE statement stores the run (the product's hub_start_run: the run exists before its provider call);
 *   3. a streaming chat-completion request goes to the same fake provider over node:http (keep-alive);
 *   4. ONE statement stores the first token (an event is stored before anyone sees it);
 *   5. one WebSocket message carries it to the client.
 *
 * Every later chunk is stored (one statement each) and sent the same way, so concurrent streams load
 * PostgreSQL and the sockets as the product's do. The same load generator, fake provider process and
 * PostgreSQL measure it; what it takes is what this machine's loopback, PostgreSQL round trips, Node's
 * HTTP and WebSocket layers cost on this path. The product can at best approach it.
 *
 * Started by forking this file (`serve`) with FLOOR_CONFIG; talks to the parent over IPC.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface OrchestrationFloor {
  wsUrl: string;
  pid: number;
  stop(): Promise<void>;
}

interface FloorConfig {
  databaseUrl: string;
  providerUrl: string;
  apiKey: string;
}

export async function startOrchestrationFloor(config: FloorConfig): Promise<OrchestrationFloor> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['serve'], {
    env: { ...process.env, FLOOR_CONFIG: JSON.stringify(config) },
    execArgv: ['--import', 'tsx', '--max-semi-space-size=32'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`orchestration floor exited (${code}) before it was ready`)));
    child.once('message', (m) => resolve((m as { port: number }).port));
  });
  return {
    wsUrl: `ws://127.0.0.1:${port}/`,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill();
      await gone;
    },
  };
}

async function serve() {
  const config = JSON.parse(process.env.FLOOR_CONFIG!) as FloorConfig;
  const requireFromApi = createRequire(new URL('../../api/package.json', import.meta.url));
  const { WebSocketServer } = requireFromApi('ws') as typeof import('ws');
  const pg = requireFromApi('pg') as typeof import('pg');
  const http = await import('node:http');

  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 20 });
  await pool.query(`CREATE TABLE IF NOT EXISTS floor_run (id uuid PRIMARY KEY, input text NOT NULL, "createdAt" timestamp(3) NOT NULL DEFAULT now())`);
  await pool.query(
    `CREATE TABLE IF NOT EXISTS floor_event (run uuid NOT NULL REFERENCES floor_run(id), seq int NOT NULL, text text NOT NULL, PRIMARY KEY (run, seq))`,
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const provider = new URL('chat/completions', config.providerUrl.endsWith('/') ? config.providerUrl : `${config.providerUrl}/`);

  /** Streams the completion, calling `onDelta` with each content delta in order. */
  const complete = (input: string, onDelta: (text: string) => void) =>
    new Promise<void>((resolve, reject) => {
      const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: input }] });
      const req = http.request(
        provider,
        { method: 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${config.apiKey}`, 'content-length': Buffer.byteLength(body) } },
        (res) => {
          res.setEncoding('utf8');
          let buffered = '';
          res.on('data', (chunk: string) => {
            buffered += chunk;
            let end: number;
            while ((end = buffered.indexOf('\n\n')) >= 0) {
              const line = buffered.slice(0, end);
              buffered = buffered.slice(end + 2);
              if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
              const text = (JSON.parse(line.slice(6)) as { choices?: { delta?: { content?: string } }[] }).choices?.[0]?.delta?.content;
              if (text) onDelta(text);
            }
          });
          res.on('end', () => resolve());
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  wss.on('connection', (socket) => {
    socket.on('message', (raw) => {
      const { id, input } = JSON.parse(String(raw)) as { id: string; input: string };
      void (async () => {
        await pool.query({ name: 'floor_start', text: 'INSERT INTO floor_run (id, input) VALUES ($1, $2)', values: [id, input] });
        let seq = 0;
        // Each run's chunks are stored one after the other, and each is sent once stored.
        let chain = Promise.resolve();
        await complete(input, (text) => {
          const n = ++seq;
          chain = chain.then(async () => {
            await pool.query({ name: 'floor_event', text: 'INSERT INTO floor_event (run, seq, text) VALUES ($1, $2, $3)', values: [id, n, text] });
            socket.send(JSON.stringify({ id, seq: n, text }));
          });
        });
        await chain;
        socket.send(JSON.stringify({ id, done: true }));
      })().catch((err: unknown) => socket.send(JSON.stringify({ id, error: String(err) })));
    });
  });
  wss.on('listening', () => process.send!({ port: (wss.address() as { port: number }).port }));
  process.on('disconnect', () => process.exit(0));
}

if (process.argv[2] === 'serve') await serve();
