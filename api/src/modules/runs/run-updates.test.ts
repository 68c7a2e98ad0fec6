import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase } from '../../../test/db.js';
import { given, type TestProject, type TestUser } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { wsClient } from '../../../test/subscribe.js';
import type { Database } from '../../lib/db.js';
import { toGlobalId } from '../../lib/ids.js';

const UPDATES = `subscription($projectId: ID!) { projectRunUpdates(projectId: $projectId) { status run { id status input agent { name } } } }`;
const START = `mutation($input: StartRunInput!) { startRun(input: $input) { ... on StartRunPayload { run { id } } ... on Error { message } } }`;
const DASHBOARDS = 5;

let app: TestServer;
let owner: TestUser;
let project: TestProject;
let agentGid: string;
/** Reads of one run by id, as the server's own Prisma client makes them. */
let runReads = 0;

beforeAll(async () => {
  const db = await getTestDatabase();
  const prisma = db.prisma.$extends({
    query: {
      agentRun: {
        findUnique: ({ args, query }) => {
          runReads++;
          return query(args);
        },
      },
    },
  });
  app = await startTestServer({ env: { OFFLINE_TOKEN_DELAY_MS: '2' }, runtime: { database: { ...db, prisma } as unknown as Database } });
  const org = await given(app).anOrganization();
  owner = org.owner;
  project = await given(app).aProject(org);
  const agent = await app.rt.prisma.agent.create({
    data: { organizationId: org.id, projectId: project.id, name: 'Watched', provider: 'OFFLINE', model: 'offline-small' },
  });
  agentGid = toGlobalId('Agent', agent.id);
});
afterAll(async () => {
  await app.close();
});

type Update = { status: string; run: { id: string; status: string; input: string; agent: { name: string } } | null };

describe('projectRunUpdates', () => {
  it('reads a changed run once for every dashboard watching the project, and gives each the run', async () => {
    const clients = Array.from({ length: DASHBOARDS }, () => wsClient(app.wsUrl, owner.token));
    const seen: Update[][] = clients.map(() => []);
    let changed = () => {};
    clients.forEach((client, i) =>
      client.subscribe<{ projectRunUpdates: Update }>(
        { query: UPDATES, variables: { projectId: project.gid } },
        {
          next: ({ data }) => {
            seen[i]!.push(data!.projectRunUpdates);
            changed();
          },
          error: (err) => {
            throw err;
          },
          complete: () => {},
        },
      ),
    );
    /** Whether every dashboard saw a run (that run, if given) succeed, waiting up to `ms`. */
    const allSawSuccess = (ms: number, runId?: string) =>
      new Promise<boolean>((resolve) => {
        const check = () => seen.every((updates) => updates.some((u) => u.status === 'SUCCEEDED' && (!runId || u.run?.id === runId)));
        const timer = setTimeout(() => resolve(check()), ms);
        changed = () => {
          if (!check()) return;
          clearTimeout(timer);
          resolve(true);
        };
        changed();
      });
    const start = async (input: string) => (await owner.gql(START, { input: { agentId: agentGid, input } })).data!.startRun.run.id as string;
    // Warm-up runs until every dashboard has seen one end: then all the subscriptions are live.
    let live = false;
    for (let i = 0; i < 20 && !live; i++) {
      await start('Warm up');
      live = await allSawSuccess(2_000);
    }
    expect(live).toBe(true);
    for (const updates of seen) updates.splice(0);

    runReads = 0;
    const runId = await start('Watch me');
    expect(await allSawSuccess(10_000, runId)).toBe(true);
    for (const client of clients) await client.dispose();

    for (const updates of seen) {
      const mine = updates.filter((u) => u.run?.id === runId);
      expect(mine.map((u) => u.status)).toEqual(['QUEUED', 'RUNNING', 'SUCCEEDED']);
      for (const u of mine) expect(u.run).toMatchObject({ input: 'Watch me', agent: { name: 'Watched' } });
    }
    // One read per status change, not one per dashboard and status change (5 × 3).
    expect(runReads).toBe(3);
  });
});
