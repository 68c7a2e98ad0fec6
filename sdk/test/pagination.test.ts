import { randomUUID } from 'node:crypto';
import { createClient, type HubClient } from '@hub/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
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

/** A cursor of an `id` connection naming a row nobody has: what the API answers it is what a foreign cursor gets. */
const unknownCursor = () => Buffer.from(`GPC:S:${randomUUID()}`).toString('base64');

describe('a filtered list misses none when the last item of a page has left the filter since', () => {
  const ownClient = (token: string) => createClient({ url: app.graphqlUrl, token, webSocketImpl: WebSocket });

  it('projects (archived ones left out): the next page after an archived project, forwards and backwards', async () => {
    const own = await given(app).anOrganization();
    const other = await given(app).anOrganization();
    const make = (orgId: string, tag: string) =>
      app.rt.prisma.project.createMany({
        data: Array.from({ length: 6 }, (_, i) => ({ organizationId: orgId, slug: `${tag}-${i}`, name: `${tag} ${i}`, createdAt: minutesAgo(i) })),
      });
    await make(own.id, 'mine');
    await make(other.id, 'theirs');
    const c = ownClient(own.owner.token);
    try {
      const list = c.projects.list(own.slug);
      const first = await list.page({ first: 2 });
      expect(first.items.map((p) => p.name)).toEqual(['mine 0', 'mine 1']);
      await c.projects.archive(first.items[1]!.id);
      const second = await list.page({ first: 2, after: first.endCursor });
      expect(second.items.map((p) => p.name)).toEqual(['mine 2', 'mine 3']);
      expect(second).toMatchObject({ hasNextPage: true, totalCount: 5 });
      expect((await list.toArray()).map((p) => p.name)).toEqual(['mine 0', 'mine 2', 'mine 3', 'mine 4', 'mine 5']);

      const PAGE = `query($s: String!, $last: Int, $before: String, $after: String, $first: Int) {
        organization(slug: $s) { projects(first: $first, after: $after, last: $last, before: $before) {
          edges { cursor node { name } } pageInfo { hasNextPage hasPreviousPage } } } }`;
      type Res = { data: { organization: { projects: { edges: { cursor: string; node: { name: string } }[]; pageInfo: object } } } };
      const page = async (user: typeof own.owner, slug: string, v: Record<string, unknown>) =>
        ((await user.gql(PAGE, { s: slug, ...v })) as Res).data.organization.projects;
      const shown = (await page(own.owner, own.slug, { first: 4 })).edges;
      expect(shown.map((e) => e.node.name)).toEqual(['mine 0', 'mine 2', 'mine 3', 'mine 4']);
      await c.projects.archive((await c.projects.list(own.slug).toArray()).find((p) => p.name === 'mine 4')!.id);
      const before = await page(own.owner, own.slug, { last: 2, before: shown[3]!.cursor });
      expect(before.edges.map((e) => e.node.name)).toEqual(['mine 2', 'mine 3']);

      // A cursor of another organization's project, archived too, tells nothing: the answer of an unknown cursor.
      const theirs = (await page(other.owner, other.slug, { first: 2 })).edges;
      await app.rt.prisma.project.updateMany({ where: { organizationId: other.id, name: 'theirs 1' }, data: { archivedAt: new Date() } });
      for (const args of [{ first: 2, after: theirs[1]!.cursor }, { last: 2, before: theirs[1]!.cursor }, { first: 2, after: theirs[0]!.cursor }]) {
        const unknown = { ...args, ...('after' in args ? { after: unknownCursor() } : { before: unknownCursor() }) };
        expect(await page(own.owner, own.slug, args)).toEqual(await page(own.owner, own.slug, unknown));
      }
      expect((await page(own.owner, own.slug, { first: 2, after: theirs[1]!.cursor })).edges).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it('agents (archived ones left out): the next page after an archived agent', async () => {
    const project = await given(app).aProject(org);
    const other = await given(app).aProject(org);
    const make = (projectId: string, tag: string) =>
      app.rt.prisma.agent.createMany({
        data: Array.from({ length: 6 }, (_, i) => ({
          organizationId: org.id,
          projectId,
          name: `${tag} ${i}`,
          provider: 'OFFLINE' as const,
          model: 'offline-small',
          createdAt: minutesAgo(60 - i),
        })),
      });
    await make(project.id, 'agent');
    await make(other.id, 'elsewhere');
    const list = client.agents.list(project.gid);
    const first = await list.page({ first: 2 });
    expect(first.items.map((a) => a.name)).toEqual(['agent 0', 'agent 1']);
    await client.agents.archive(first.items[1]!.id);
    const second = await list.page({ first: 2, after: first.endCursor });
    expect(second.items.map((a) => a.name)).toEqual(['agent 2', 'agent 3']);
    expect(second.totalCount).toBe(5);

    // Another project's archived agent as the cursor: the answer of an unknown cursor (nothing).
    const theirs = await client.agents.list(other.gid).page({ first: 2 });
    await client.agents.archive(theirs.items[1]!.id);
    expect(await list.page({ first: 2, after: theirs.endCursor })).toEqual(await list.page({ first: 2, after: unknownCursor() }));
    expect((await list.page({ first: 2, after: theirs.endCursor })).items).toEqual([]);
  });

  it('invitations (pending ones only): the next page after an invitation revoked, accepted or expired', async () => {
    const own = await given(app).anOrganization();
    const c = ownClient(own.owner.token);
    try {
      const invite = async (i: number) => c.members.invite({ organizationId: own.gid, email: `invitee-${i}-${randomUUID().slice(0, 6)}@example.test`, role: 'MEMBER' });
      const sent = [];
      for (let i = 0; i < 8; i++) sent.push(await invite(i));
      // Newest first: the last sent is listed first.
      const emails = sent.map((s) => s.invitation.email).reverse();
      const list = c.invitations.list(own.slug);

      const first = await list.page({ first: 2 });
      expect(first.items.map((i) => i.email)).toEqual(emails.slice(0, 2));
      await c.invitations.revoke(first.items[1]!.id);
      const second = await list.page({ first: 2, after: first.endCursor });
      expect(second.items.map((i) => i.email)).toEqual(emails.slice(2, 4));
      expect(second.totalCount).toBe(7);

      // Its invitee joins.
      const invitee = await given(app).aUser('Invitee');
      await app.rt.prisma.user.update({ where: { id: invitee.id }, data: { email: second.items[1]!.email } });
      const token = sent.find((s) => s.invitation.email === second.items[1]!.email)!.token;
      const inviteeClient = ownClient(invitee.token);
      try {
        await inviteeClient.invitations.accept(token);
      } finally {
        await inviteeClient.close();
      }
      const third = await list.page({ first: 2, after: second.endCursor });
      expect(third.items.map((i) => i.email)).toEqual(emails.slice(4, 6));

      // It expires.
      await app.rt.prisma.invitation.update({ where: { id: fromGlobalId(third.items[1]!.id, 'Invitation') }, data: { expiresAt: minutesAgo(1) } });
      const fourth = await list.page({ first: 2, after: third.endCursor });
      expect(fourth.items.map((i) => i.email)).toEqual(emails.slice(6, 8));
    } finally {
      await c.close();
    }
  });

  it('a cursor the API never gave is refused as before, by every list whose cursor may now move', async () => {
    const project = await given(app).aProject(org);
    const lists = [
      ['organization(slug: $s) { projects(first: 2, after: $c) { edges { cursor } } }', { s: org.slug }],
      ['organization(slug: $s) { invitations(first: 2, after: $c) { edges { cursor } } }', { s: org.slug }],
      ['organization(slug: $s) { auditLogs(first: 2, after: $c) { edges { cursor } } }', { s: org.slug }],
      ['project(id: $p) { agents(first: 2, after: $c) { edges { cursor } } }', { p: project.gid }],
      ['project(id: $p) { runs(first: 2, after: $c, filter: { status: [QUEUED] }) { edges { cursor } } }', { p: project.gid }],
      ['viewer { organizations(first: 2, after: $c) { edges { cursor } } }', {}],
      ['viewer { activity(first: 2, after: $c) { edges { cursor } } }', {}],
      ['organization(slug: $s) { members(first: 2, before: $c) { edges { cursor } } }', { s: org.slug }],
      ['organization(slug: $s) { projects(first: 1) { edges { node { runs(first: 2, after: $c) { edges { cursor } } } } } }', { s: org.slug }],
    ] as const;
    for (const [selection, vars] of lists) {
      const params = ['$c: String', ...Object.keys(vars).map((k) => (k === 's' ? '$s: String!' : '$p: ID!'))].join(', ');
      // Not base64 of a cursor; a cursor of nothing; a well-formed cursor of an id no list has (once an internal error).
      for (const c of ['garbage', 'R1BDOg==', Buffer.from('GPC:S:xyz').toString('base64'), Buffer.from('GPC:N:7').toString('base64')]) {
        const res = await org.owner.gql(`query(${params}) { ${selection} }`, { ...vars, c });
        expect(res.errors?.map((e) => [e.message, e.extensions?.code])).toEqual([
          ['This cursor was not given by this list: page with pageInfo.endCursor or startCursor', 'VALIDATION_FAILED'],
        ]);
      }
    }
  });

  it("organizations: the next page after one the viewer left, and another's cursor tells nothing", async () => {
    const owner = await given(app).aUser('Owner of many');
    const viewer = await given(app).aUser('Member of many');
    const orgs: { memberships: { id: string; userId: string }[] }[] = [];
    for (let i = 0; i < 6; i++) {
      orgs.push(
        await app.rt.prisma.organization.create({
          data: {
            slug: `many-${i}-${randomUUID().slice(0, 6)}`,
            name: `Many ${i}`,
            memberships: { create: [{ userId: owner.id, role: 'OWNER' }, { userId: viewer.id, role: 'MEMBER' }] },
          },
          include: { memberships: true },
        }),
      );
    }
    // One the viewer never belonged to, sorted among theirs, that somebody else left.
    const elsewhere = await given(app).anOrganization(owner);
    await app.rt.prisma.organization.update({ where: { id: elsewhere.id }, data: { name: 'Many 1b' } });
    const leaver = await given(app).aMemberOf(elsewhere, 'MEMBER');
    const leaverClient = ownClient(leaver.token);
    const c = ownClient(viewer.token);
    try {
      const [leaverMembership] = await app.rt.prisma.membership.findMany({ where: { organizationId: elsewhere.id, userId: leaver.id } });
      await leaverClient.members.remove(toGlobalId('Membership', leaverMembership!.id));

      const list = c.organizations.list();
      const first = await list.page({ first: 2 });
      expect(first.items.map((o) => o.name)).toEqual(['Many 0', 'Many 1']);
      const mine = (i: number) => orgs[i]!.memberships.find((m) => m.userId === viewer.id)!.id;
      await c.members.remove(toGlobalId('Membership', mine(1)));
      const second = await list.page({ first: 2, after: first.endCursor });
      expect(second.items.map((o) => o.name)).toEqual(['Many 2', 'Many 3']);
      // Removed by its owner this time.
      const ownerClient = ownClient(owner.token);
      try {
        await ownerClient.members.remove(toGlobalId('Membership', mine(3)));
      } finally {
        await ownerClient.close();
      }
      const third = await list.page({ first: 2, after: second.endCursor });
      expect(third.items.map((o) => o.name)).toEqual(['Many 4', 'Many 5']);

      // The owner's cursor of the organization the viewer never joined names no place in the viewer's list.
      const ofOwner = ownClient(owner.token);
      let foreign: string | null;
      try {
        const all = await ofOwner.organizations.list().page({ first: 100 });
        const at = all.items.findIndex((o) => o.name === 'Many 1b');
        foreign = (await ofOwner.organizations.list().page({ first: at + 1 })).endCursor;
      } finally {
        await ofOwner.close();
      }
      expect(await list.page({ first: 2, after: foreign })).toEqual(await list.page({ first: 2, after: unknownCursor() }));
      expect((await list.page({ first: 2, after: foreign })).items).toEqual([]);
    } finally {
      await c.close();
      await leaverClient.close();
    }
  });
});


describe('an AbortSignal given to a list', () => {
  // Each list holds three or more items in one page; the signal aborts once the first has come.
  const lists: [string, (project: { gid: string; runId: string }, signal: AbortSignal) => AsyncIterable<unknown>][] = [
    ['runs.list', (p, signal) => client.runs.list(p.gid, { status: ['SUCCEEDED'] }, { signal })],
    ['runs.events', (p, signal) => client.runs.events(p.runId, { signal })],
    ['agents.list', (p, signal) => client.agents.list(p.gid, { signal })],
    ['projects.list', (_p, signal) => client.projects.list(org.slug, { signal })],
    ['providers.list (one request, no pages)', (_p, signal) => client.providers.list({ signal })],
  ];

  it.each(lists)('stops %s at the next item, already fetched or not, with the signal’s reason', async (_name, iterate) => {
    const project = await given(app).aProject(org);
    const agents = await Promise.all([1, 2, 3].map((i) => given(app).anOfflineAgent(project, { name: `Stoppable ${i}` })));
    const runs = await Promise.all(
      agents.map((agent, i) =>
        app.rt.prisma.agentRun.create({
          data: { organizationId: org.id, projectId: project.id, agentId: agent.id, status: 'SUCCEEDED', input: `stoppable ${i}`, lastSeq: 3 },
        }),
      ),
    );
    await app.rt.prisma.runEvent.createMany({ data: [1, 2, 3].map((seq) => ({ runId: runs[0]!.id, seq, type: 'LOG' as const, payload: { n: seq } })) });

    const controller = new AbortController();
    const seen: unknown[] = [];
    const before = requests;
    const err = await (async () => {
      for await (const item of iterate({ gid: project.gid, runId: toGlobalId('Run', runs[0]!.id) }, controller.signal)) {
        seen.push(item);
        controller.abort();
      }
    })().catch((e: unknown) => e);
    expect(err).toBe(controller.signal.reason);
    expect(seen).toHaveLength(1);
    // The first page's request, and none after the abort.
    expect(requests - before).toBe(1);
  });
});
