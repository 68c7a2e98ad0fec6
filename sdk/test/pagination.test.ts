import { randomUUID } from 'node:crypto';
import { createClient, type HubClient } from '@hub/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOOT_TIMEOUT_MS, given, startTestServer, WebSocket, type TestServer } from './support.js';

let app: TestServer;
let org: Awaited<ReturnType<ReturnType<typeof given>['anOrganization']>>;
let client: HubClient;
let requests = 0;

const minutesAgo = (n: number) => new Date(Date.now() - n * 60_000);

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  org = await given(app).anOrganization();
  const counting: typeof fetch = (input, init) => {
    requests++;
    return fetch(input, init);
  };
  client = createClient({ url: app.graphqlUrl, token: org.owner.token, fetch: counting, webSocketImpl: WebSocket });
}, BOOT_TIMEOUT_MS);
afterAll(async () => {
  await client.close();
  await app.close();
});

describe('list iterators walk every page', () => {
  it('projects: 230 items in three requests, newest first, none twice, fetched lazily', async () => {
    await app.rt.prisma.project.createMany({
      data: Array.from({ length: 230 }, (_, i) => ({ organizationId: org.id, slug: `p-${i}`, name: `Project ${i}`, createdAt: minutesAgo(i) })),
    });
    requests = 0;
    const all = await client.projects.list(org.slug).toArray();
    expect(requests).toBe(3);
    expect(all.map((p) => p.name)).toEqual(Array.from({ length: 230 }, (_, i) => `Project ${i}`));
    expect(new Set(all.map((p) => p.id)).size).toBe(230);

    requests = 0;
    let seen = 0;
    for await (const project of client.projects.list(org.slug)) {
      expect(project.organization.slug).toBe(org.slug);
      if (++seen === 150) break;
    }
    expect(requests).toBe(2);
  });

  it('page() fetches one page at a time with cursors and reports the total', async () => {
    const first = await client.projects.list(org.slug).page({ first: 40 });
    expect(first).toMatchObject({ hasNextPage: true, totalCount: 230 });
    expect(first.items).toHaveLength(40);
    const second = await client.projects.list(org.slug).page({ first: 40, after: first.endCursor });
    expect(second.items[0]!.name).toBe('Project 40');
    expect(second.items.map((p) => p.id)).not.toContain(first.items.at(-1)!.id);
  });

  it('members: 106 members, oldest first', async () => {
    const users = Array.from({ length: 105 }, (_, i) => ({ id: randomUUID(), email: `m${i}-${randomUUID()}@example.test`, name: `Member ${i}`, passwordHash: 'x' }));
    await app.rt.prisma.user.createMany({ data: users });
    await app.rt.prisma.membership.createMany({
      data: users.map((u, i) => ({ organizationId: org.id, userId: u.id, role: 'MEMBER' as const, createdAt: new Date(Date.now() + i * 1000) })),
    });
    const members = await client.members.list(org.slug).toArray();
    expect(members).toHaveLength(106);
    expect(members[0]!.role).toBe('OWNER');
    expect(members.slice(1).map((m) => m.user.name)).toEqual(users.map((u) => u.name));
  });

  it('agents and runs, with the run filter applied across pages', async () => {
    const project = await given(app).aProject(org);
    await app.rt.prisma.agent.createMany({
      data: Array.from({ length: 101 }, (_, i) => ({
        organizationId: org.id,
        projectId: project.id,
        name: `Agent ${i}`,
        provider: 'OFFLINE' as const,
        model: 'offline-small',
        createdAt: minutesAgo(200 - i),
      })),
    });
    const agents = await client.agents.list(project.gid).toArray();
    expect(agents.map((a) => a.name)).toEqual(Array.from({ length: 101 }, (_, i) => `Agent ${i}`));

    const [a, b] = await app.rt.prisma.agent.findMany({ where: { projectId: project.id }, orderBy: { createdAt: 'asc' }, take: 2 });
    const run = (agentId: string, status: 'SUCCEEDED' | 'FAILED', i: number) => ({
      organizationId: org.id,
      projectId: project.id,
      agentId,
      status,
      input: `task ${i}`,
      createdAt: minutesAgo(i),
    });
    await app.rt.prisma.agentRun.createMany({
      data: [
        ...Array.from({ length: 120 }, (_, i) => run(a!.id, 'SUCCEEDED', i)),
        ...Array.from({ length: 15 }, (_, i) => run(a!.id, 'FAILED', 200 + i)),
        ...Array.from({ length: 10 }, (_, i) => run(b!.id, 'FAILED', 300 + i)),
      ],
    });
    const agentA = agents[0]!.id;

    expect(await client.runs.list(project.gid).toArray()).toHaveLength(145);
    const ofA = await client.runs.list(project.gid, { agentId: agentA }).toArray();
    expect(ofA).toHaveLength(135);
    expect(ofA.every((r) => r.agent.id === agentA)).toBe(true);
    const failedOfA = await client.runs.list(project.gid, { agentId: agentA, status: ['FAILED'] }).toArray();
    expect(failedOfA.map((r) => r.input)).toEqual(Array.from({ length: 15 }, (_, i) => `task ${200 + i}`));
    expect((await client.runs.list(project.gid, { status: ['FAILED'] }).page({ first: 5 })).totalCount).toBe(25);
  });

  it('runs filtered by status: the next page misses none when the last run of a page has left the filter since', async () => {
    const project = await given(app).aProject(org);
    const agent = await app.rt.prisma.agent.create({
      data: { organizationId: org.id, projectId: project.id, name: 'Queued work', provider: 'OFFLINE', model: 'offline-small' },
    });
    await app.rt.prisma.agentRun.createMany({
      data: Array.from({ length: 6 }, (_, i) => ({
        organizationId: org.id,
        projectId: project.id,
        agentId: agent.id,
        status: 'QUEUED' as const,
        input: `queued ${i}`,
        createdAt: minutesAgo(i),
      })),
    });
    const queued = client.runs.list(project.gid, { status: ['QUEUED'] });
    const first = await queued.page({ first: 2 });
    expect(first.items.map((r) => r.input)).toEqual(['queued 0', 'queued 1']);
    // The page's last run starts (a worker took it) before the next page is asked for.
    await app.rt.prisma.agentRun.updateMany({ where: { projectId: project.id, input: 'queued 1' }, data: { status: 'RUNNING' } });
    const second = await queued.page({ first: 2, after: first.endCursor });
    expect(second.items.map((r) => r.input)).toEqual(['queued 2', 'queued 3']);
    expect(second.totalCount).toBe(5);

    // Backwards too, with the API's `last` and `before` (the SDK pages forwards only).
    const PAGE = `query($p: ID!, $first: Int, $last: Int, $before: String) {
      project(id: $p) { runs(first: $first, last: $last, before: $before, filter: { status: [QUEUED] }) { edges { cursor node { input } } } } }`;
    type Edges = { data: { project: { runs: { edges: { cursor: string; node: { input: string } }[] } } } };
    const shown = ((await org.owner.gql(PAGE, { p: project.gid, first: 4 })) as Edges).data.project.runs.edges;
    expect(shown.map((e) => e.node.input)).toEqual(['queued 0', 'queued 2', 'queued 3', 'queued 4']);
    await app.rt.prisma.agentRun.updateMany({ where: { projectId: project.id, input: 'queued 4' }, data: { status: 'RUNNING' } });
    const before = ((await org.owner.gql(PAGE, { p: project.gid, last: 2, before: shown[3]!.cursor })) as Edges).data.project.runs.edges;
    expect(before.map((e) => e.node.input)).toEqual(['queued 2', 'queued 3']);
  });
});
