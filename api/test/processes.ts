import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./child-app.ts', import.meta.url));
const WORKER_MAIN = fileURLToPath(new URL('../src/worker-main.ts', import.meta.url));

export interface HubProcess {
  child: ChildProcess;
  url: string | null;
  workerId: string;
  /** SIGKILL: no shutdown hooks, no lease release: a crash. */
  kill(): Promise<void>;
  /** SIGTERM, as a supervisor stops a process: resolves with its exit code once it has exited. */
  terminate(): Promise<number | null>;
}

/** Forks `pnpm worker` itself (src/worker-main.ts), with its own signal handling. */
export function startWorkerProcess(env: Record<string, string>): Promise<HubProcess> {
  return startHubProcess(env, WORKER_MAIN);
}

/** Forks a real hub process (see child-app.ts) and waits until it serves and/or consumes runs. */
export function startHubProcess(env: Record<string, string>, script = CHILD): Promise<HubProcess> {
  const child = fork(script, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'silent', SEED_DEMO: 'false', ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const kill = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  const terminate = () =>
    new Promise<number | null>((resolve) => {
      if (child.exitCode !== null || child.signalCode) return resolve(child.exitCode);
      child.once('exit', (code) => resolve(code));
      child.kill('SIGTERM');
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('hub process did not start in 60 s')), 60_000);
    child.once('exit', (code) => reject(new Error(`hub process exited early with ${code}`)));
    child.on('message', (msg: { ready?: boolean; url?: string | null; workerId: string }) => {
      if (!msg.ready) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve({ child, url: msg.url ?? null, workerId: msg.workerId, kill, terminate });
    });
  });
}

/** Polls `fn` every 50 ms until it gives something truthy (a process's state changing), or fails after `timeoutMs`. */
export async function waitFor<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
