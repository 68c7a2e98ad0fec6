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
    let subscribed = 0;
    const finished = clients.map(
      (client, i) =>
        new Promise<void>((resolve, reject) => {
          client.subscribe<{ projectRunUpdates: Update }>(
            { query: UPDATES, variables: { projectId: project.gid } },
            {
              next: ({ data }) => {
                seen[i]!.push(data!.projectRunUpdates);
                if (data!.projectRunUpdates.status === 'SUCCEEDED') resolve();
              },
              error: reject,
              complete: () => {},
            },
          );
          client.on('connected', () => subscribed++);
        }),
    );
    for (let i = 0; i < 200 && subscribed < DASHBOARDS; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100)); // the subscriptions' own set-up (authorization) is done

    runReads = 0;
    const started = await owner.gql(START, { input: { agentId: agentGid, input: 'Watch me' } });
    const runId = started.data!.startRun.run.id as string;
    await Promise.all(finished);
    for (const client of clients) await client.dispose();

    for (const updates of seen) {
      expect(updates.map((u) => u.status)).toEqual(['QUEUED', 'RUNNING', 'SUCCEEDED']);
      for (const u of updates) expect(u.run).toMatchObject({ id: runId, input: 'Watch me', agent: { name: 'Watched' } });
    }
    // One read per status change, not one per dashboard and status change (5 × 3).
    expect(runReads).toBe(3);
  });
});
