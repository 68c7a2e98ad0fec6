import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createPostgresDatabase, usingPostgres } from '../../test/db.js';
import { startHubProcess, waitFor } from '../../test/processes.js';
import { anOwnerOnProcess } from '../../test/remote.js';
import { TcpProxy } from '../../test/tcp-proxy.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

const START = `mutation($a: ID!) { startRun(input: { agentId: $a, input: "Plan a trip" }) { ... on StartRunPayload { run { id } } } }`;
const RUN = `query($id: ID!) { run(id: $id) { status } }`;

/** What a restart of PostgreSQL (or a failover) does to a database's clients: every connection is closed by the server. */
async function dropEveryConnection(url: string) {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    const [row] = (
      await admin.query<{ n: number }>(
        `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`,
      )
    ).rows;
    return row!.n;
  } finally {
    await admin.end();
  }
}

describe.runIf(usingPostgres())('a hub process when PostgreSQL drops its connections', () => {
  it('keeps running (its budget settlements included) and runs the next run', async () => {
    // A database of its own: every connection to it is dropped, which the other tests' must not be.
    const url = await createPostgresDatabase(`hub_restart_${process.env.VITEST_POOL_ID ?? '0'}`);
    const hub = await startHubProcess({ DATABASE_URL: url, SERVE: 'true', OFFLINE_TOKEN_DELAY_MS: '0' });
    cleanup.push(() => hub.kill());
    const owner = await anOwnerOnProcess(hub.url!, 'restart@example.com');
    await owner.as(`mutation($o: ID!) { setBudget(input: { organizationId: $o, period: DAILY, limit: "5000000" }) { __typename } }`, { o: owner.organizationId });
    const runAndWait = async () => {
      const id = (await owner.as(START, { a: owner.agentId })).data!.startRun.run.id as string;
      return waitFor(async () => {
        const status = (await owner.as(RUN, { id })).data?.run?.status as string | undefined;
        return status && !['QUEUED', 'RUNNING'].includes(status) && status;
      });
    };
    // A run under a budget: its settlement keeps a connection of the budget guard's own.
    expect(await runAndWait()).toBe('SUCCEEDED');

    expect(await dropEveryConnection(url)).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 500));
    expect(hub.child.exitCode).toBeNull();
    expect(hub.child.signalCode).toBeNull();
    expect(await runAndWait()).toBe('SUCCEEDED');
  }, 60_000);

  it('does not cancel the runs in progress when its event bus reconnects', async () => {
    const url = await createPostgresDatabase(`hub_bus_${process.env.VITEST_POOL_ID ?? '0'}`);
    const hub = await startHubProcess({ DATABASE_URL: url, SERVE: 'true', OFFLINE_TOKEN_DELAY_MS: '30' });
    cleanup.push(() => hub.kill());
    const owner = await anOwnerOnProcess(hub.url!, 'bus@example.com');
    const id = (await owner.as(START, { a: owner.agentId })).data!.startRun.run.id as string;
    await waitFor(async () => (await owner.as(RUN, { id })).data?.run?.status === 'RUNNING');

    // Only the bus's listening connection is dropped: it reconnects, and may have missed messages meanwhile.
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const dropped = await admin
      .query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'`)
      .finally(() => admin.end());
    expect(dropped.rowCount).toBe(1);

    const status = await waitFor(async () => {
      const s = (await owner.as(RUN, { id })).data?.run?.status as string | undefined;
      return s && !['QUEUED', 'RUNNING'].includes(s) && s;
    });
    expect(status).toBe('SUCCEEDED');
  }, 60_000);

  it('finishes a run that was streaming while the database was out of reach for a moment, without starting it over', async () => {
    const url = await createPostgresDatabase(`hub_outage_${process.env.VITEST_POOL_ID ?? '0'}`);
    const pgUrl = new URL(url);
    const proxy = await TcpProxy.start({ host: pgUrl.hostname, port: Number(pgUrl.port) });
    cleanup.push(() => proxy.cut());
    const hub = await startHubProcess({ DATABASE_URL: proxy.through(url), SERVE: 'true', OFFLINE_TOKEN_DELAY_MS: '30' });
    cleanup.push(() => hub.kill());
    const owner = await anOwnerOnProcess(hub.url!, 'outage@example.com');
    const id = (await owner.as(START, { a: owner.agentId })).data!.startRun.run.id as string;
    await waitFor(async () => (await owner.as(RUN, { id })).data?.run?.status === 'RUNNING');

    // Its tokens keep coming while no statement can reach the database.
    await proxy.cut();
    await new Promise((r) => setTimeout(r, 1_500));
    await proxy.restore();

    const run = await waitFor(async () => {
      const r = (await owner.as(`query($id: ID!) { run(id: $id) { status attempts } }`, { id })).data?.run;
      return r && !['QUEUED', 'RUNNING'].includes(r.status) && r;
    }, 40_000);
    expect(run).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
  }, 90_000);
});
