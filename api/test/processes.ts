import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./child-app.ts', import.meta.url));

export interface HubProcess {
  child: ChildProcess;
  url: string | null;
  workerId: string;
  /** SIGKILL: no shutdown hooks, no lease release: a crash. */
  kill(): Promise<void>;
}

/** Forks a real hub process (see child-app.ts) and waits until it serves and/or consumes runs. */
export function startHubProcess(env: Record<string, string>): Promise<HubProcess> {
  const child = fork(CHILD, [], {
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
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('hub process did not start in 60 s')), 60_000);
    child.once('exit', (code) => reject(new Error(`hub process exited early with ${code}`)));
    child.on('message', (msg: { ready?: boolean; url: string | null; workerId: string }) => {
      if (!msg.ready) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve({ child, url: msg.url, workerId: msg.workerId, kill });
    });
  });
}
