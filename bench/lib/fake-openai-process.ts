/**
 * The orchestration benchmark's fake OpenAI server, in a process of its own.
 *
 * A real provider is another machine: its handling of a request must not wait for the load generator's
 * event loop (50 subscriptions' messages, 50 startRun responses), or that wait is counted as the hub's
 * overhead. Run here, the fake keeps its own event loop, and its two timestamps per request (arrival and
 * first content chunk) come from one clock, so the provider's time to first token is exact; they are
 * reported as wall-clock milliseconds (`performance.timeOrigin + performance.now()`, sub-millisecond and
 * comparable across the processes of one machine) for the breakdown columns.
 *
 * Started by `startFakeOpenAIProcess` with its configuration in FAKE_OPENAI_CONFIG; answers IPC commands.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startOpenAIFake, type ReplyBehavior } from '../../api/test/fakes/index.js';
import { perfToWall } from './stats.js';

export interface FakeOpenAIConfig {
  apiKey: string;
  /** A request whose messages contain `marker` gets `marked`; any other gets `reply`. */
  reply: ReplyBehavior;
  marker: string;
  marked: ReplyBehavior;
}

/** What the fake recorded of one request (times in wall-clock ms). */
export interface FakeRequestTiming {
  /** The user message, which identifies the run. */
  input: string | null;
  receivedAt: number;
  firstChunkAt: number | null;
}

export interface FakeOpenAIProcess {
  url: string;
  pid: number;
  requests(): Promise<FakeRequestTiming[]>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

type Command = { id: number; cmd: 'requests' | 'reset' | 'close' };

async function serve() {
  const config = JSON.parse(process.env.FAKE_OPENAI_CONFIG!) as FakeOpenAIConfig;
  const fake = await startOpenAIFake({
    apiKey: config.apiKey,
    respond: (req) => (JSON.stringify(req.body?.messages ?? '').includes(config.marker) ? config.marked : undefined),
    defaultBehavior: config.reply,
  });
  process.on('message', (raw) => {
    const msg = raw as Command;
    void (async () => {
      let result: unknown = true;
      if (msg.cmd === 'requests') {
        result = fake.requests.map((r): FakeRequestTiming => {
          const user = ((r.body?.messages ?? []) as { role: string; content: string }[]).find((m) => m.role === 'user');
          return { input: user?.content ?? null, receivedAt: perfToWall(r.receivedAt), firstChunkAt: r.firstChunkAt === null ? null : perfToWall(r.firstChunkAt) };
        });
      } else if (msg.cmd === 'reset') {
        fake.reset();
      } else if (msg.cmd === 'close') {
        await fake.close();
      }
      process.send!({ id: msg.id, result });
      if (msg.cmd === 'close') setTimeout(() => process.exit(0), 20);
    })();
  });
  process.on('disconnect', () => void fake.close().finally(() => process.exit(0)));
  process.send!({ type: 'ready', url: fake.url });
}

export async function startFakeOpenAIProcess(config: FakeOpenAIConfig): Promise<FakeOpenAIProcess> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--serve'], {
    env: { ...process.env, FAKE_OPENAI_CONFIG: JSON.stringify(config) },
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 1;
  const pending = new Map<number, (result: unknown) => void>();
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`fake OpenAI process exited (${code}) before it was ready`)));
    child.on('message', (raw) => {
      const msg = raw as { type?: string; url?: string; id?: number; result?: unknown };
      if (msg.type === 'ready') return resolve(msg.url!);
      if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
      pending.delete(msg.id!);
    });
  });
  const call = <T>(cmd: Command['cmd']) =>
    new Promise<T>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve as (r: unknown) => void);
      child.send({ id, cmd });
    });
  return {
    url,
    pid: child.pid!,
    requests: () => call<FakeRequestTiming[]>('requests'),
    reset: () => call<void>('reset'),
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      await call('close').catch(() => {});
      await exited;
    },
  };
}

if (process.argv.includes('--serve')) await serve();
