import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestOrg, type TestUser } from '../../../test/factories.js';
import { gql, startTestServer, type GqlResult, type TestServer } from '../../../test/harness.js';
import { toGlobalId } from '../../lib/ids.js';
import { auditLogPages, csvField, exportChunks } from './audit.export.js';

// The first file on a test worker boots the shared database: slow on a busy machine, so allow it time.
const BOOT_TIMEOUT = 180_000;
let app: TestServer;
let org: TestOrg;
let admin: TestUser;
let member: TestUser;
let viewer: TestUser;
let outsider: TestUser;

const ACTIONS = ['member.added', 'project.created', 'agent.created'] as const;
// Noon UTC, 30 days ago: safely in the past, and every seeded entry falls on one calendar day.
const BASE = Math.floor(Date.now() / 86_400_000 - 30) * 86_400_000 + 12 * 3_600_000;
const day = (offset: number) => new Date(BASE + offset * 86_400_000).toISOString().slice(0, 10);
const minute = (n: number) => new Date(BASE + n * 60_000);

const LOGS = `query($slug: String!, $filter: AuditLogFilter, $first: Int, $after: String) {
  organization(slug: $slug) {
    slug viewerCanReadAuditLog
    auditLogs(filter: $filter, first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node { id action createdAt ip metadata actor { id email } target { type id } } }
    }
  }
}`;

type LogNode = { id: string; action: string; createdAt: string; metadata: Record<string, unknown>; actor: { id: string; email: string } | null; target: { type: string; id: string } | null };
const nodes = (res: { data?: Record<string, any> }): LogNode[] => res.data!.organization.auditLogs.edges.map((e: { node: LogNode }) => e.node);

/** The organization's log newest first, read straight from the database: the order every reader must follow. */
const expectedOrder = async (where: Record<string, unknown> = {}) =>
  (
    await app.rt.prisma.auditLog.findMany({ where: { organizationId: org.id, ...where }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] })
  ).map((l) => toGlobalId('AuditLog', l.id));

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  org = await given(app).anOrganization();
  admin = await given(app).aMemberOf(org, 'ADMIN');
  member = await given(app).aMemberOf(org, 'MEMBER');
  viewer = await given(app).aMemberOf(org, 'VIEWER');
  outsider = await given(app).aUser();
  // 30 entries a minute apart in threes (ties on createdAt exercise the id tie-break), alternating actors.
  await app.rt.prisma.auditLog.createMany({
    data: Array.from({ length: 30 }, (_, i) => ({
      organizationId: org.id,
      actorId: i % 2 ? admin.id : org.owner.id,
      action: ACTIONS[i % 3]!,
      targetType: 'Membership',
      targetId: '00000000-0000-4000-8000-' + String(i).padStart(12, '0'),
      metadata: { seq: i, userId: member.id },
      ip: '203.0.113.7',
      createdAt: minute(Math.floor(i / 3)),
    })),
  });
}, BOOT_TIMEOUT);
afterAll(() => app.close());

describe('organization.auditLogs', () => {
  it('shows ADMINs what happened, newest first, with actor, target and metadata as public ids', async () => {
    // Two real events, after the seeded ones: a project created, and a member's denied attempt.
    const project = await org.owner.gql(
      `mutation($input: CreateProjectInput!) { createProject(input: $input) { ... on CreateProjectPayload { project { id } } } }`,
      { input: { organizationId: org.gid, name: 'Audited' } },
    );
    const projectGid = project.data!.createProject.project.id;
    const denied = await member.gql(`mutation($input: UpdateOrganizationInput!) { updateOrganization(input: $input) { __typename } }`, {
      input: { id: org.gid, name: 'Mine now' },
    });
    expect(denied.data!.updateOrganization.__typename).toBe('ForbiddenError');

    const res = await admin.gql(LOGS, { slug: org.slug, first: 5 });
    expect(res.errors).toBeUndefined();
    expect(res.data!.organization.viewerCanReadAuditLog).toBe(true);
    const [newest, second, ...seeded] = nodes(res);
    const third = seeded.find((n) => n.metadata.seq === 29);
    expect(newest).toMatchObject({
      action: 'access.denied',
      actor: { id: member.gid, email: member.email },
      metadata: { attempted: 'organization.update', role: 'MEMBER' },
      target: null,
    });
    expect(second).toMatchObject({ action: 'project.created', actor: { id: org.owner.gid }, target: { type: 'Project', id: projectGid } });
    expect(third).toMatchObject({ action: 'agent.created', ip: '203.0.113.7', createdAt: minute(9).toISOString() });
    expect(third!.metadata).toEqual({ seq: 29, userId: member.gid });
    expect(third!.target!.id).toBe(toGlobalId('Membership', '00000000-0000-4000-8000-000000000029'));
    expect(JSON.stringify(res.data)).not.toContain(member.id);
  });

  it('filters by actions, actor and time range, which combine', async () => {
    const ids = async (filter: Record<string, unknown>) => nodes(await admin.gql(LOGS, { slug: org.slug, filter, first: 100 })).map((n) => n.id);
    expect(await ids({ actions: ['member.added'] })).toEqual(await expectedOrder({ action: 'member.added' }));
    expect(await ids({ actions: ['member.added'] })).toHaveLength(10);
    expect(await ids({ actions: ['member.added', 'agent.created'] })).toHaveLength(20);
    expect(await ids({ actorId: admin.gid })).toEqual(await expectedOrder({ actorId: admin.id }));
    expect(await ids({ actorId: admin.gid })).toHaveLength(15);
    // `from` is inclusive, `to` exclusive: minutes 2, 3 and 4, three entries each.
    const window = { from: minute(2).toISOString(), to: minute(5).toISOString() };
    expect(await ids(window)).toEqual(await expectedOrder({ createdAt: { gte: minute(2), lt: minute(5) } }));
    expect(await ids(window)).toHaveLength(9);
    expect(await ids({ ...window, actions: ['project.created'], actorId: admin.gid })).toEqual(
      await expectedOrder({ createdAt: { gte: minute(2), lt: minute(5) }, action: 'project.created', actorId: admin.id }),
    );
  });

  it('rejects a bad filter with a clear error', async () => {
    const backwards = await admin.gql(LOGS, { slug: org.slug, filter: { from: minute(5).toISOString(), to: minute(2).toISOString() } });
    expect(backwards.errors?.[0]?.extensions).toMatchObject({ code: 'VALIDATION_FAILED', issues: [{ path: ['filter', 'to'], message: 'Must be later than `from`' }] });
    // A malformed actor id is a mistake in the filter, not an organization or log that is not there.
    for (const actorId of ['nobody', org.gid]) {
      const badActor = await admin.gql(LOGS, { slug: org.slug, filter: { actorId } });
      expect(badActor.errors?.[0]?.extensions).toMatchObject({ code: 'VALIDATION_FAILED', issues: [{ path: ['filter', 'actorId'], message: 'Use a person’s id (User.id)' }] });
    }
    // A person of another organization, or nobody, acted nowhere here: an empty log, alike.
    const stranger = await given(app).aUser();
    for (const actorId of [stranger.gid, toGlobalId('User', randomUUID())]) {
      const none = await admin.gql(LOGS, { slug: org.slug, filter: { actorId } });
      expect(none.errors).toBeUndefined();
      expect(nodes(none)).toEqual([]);
    }
    const badDate = await admin.gql(LOGS, { slug: org.slug, filter: { from: 'last tuesday' } });
    expect(badDate.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('pages through the whole log with cursors, without gaps or repeats', async () => {
    const seen: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 20; pages++) {
      const res: GqlResult = await admin.gql(LOGS, { slug: org.slug, first: 7, after });
      seen.push(...nodes(res).map((n) => n.id));
      const { hasNextPage, endCursor }: { hasNextPage: boolean; endCursor: string } = res.data!.organization.auditLogs.pageInfo;
      if (!hasNextPage) break;
      after = endCursor;
    }
    expect(seen).toEqual(await expectedOrder());
    expect(new Set(seen).size).toBe(seen.length);
  });

  it("another organization's entry as the cursor tells nothing: the answer of an unknown cursor", async () => {
    const other = await given(app).anOrganization();
    // Amid this log's entries: as a place in it, it would start the page at its own time.
    const theirs = await app.rt.prisma.auditLog.create({ data: { organizationId: other.id, action: 'project.created', createdAt: new Date(minute(5).getTime() + 1) } });
    const mine = await app.rt.prisma.auditLog.create({ data: { actorId: admin.id, action: 'auth.sign_in', createdAt: new Date(minute(5).getTime() + 2) } });
    const cursor = (id: string) => Buffer.from(`GPC:S:${id}`).toString('base64');
    const page = async (after: string, filter?: object) => {
      const res = await admin.gql(LOGS, { slug: org.slug, first: 3, after, filter });
      expect(res.errors).toBeUndefined();
      return res.data!.organization.auditLogs;
    };
    const unknown = await page(cursor('00000000-0000-4000-8000-000000000000'));
    expect(unknown.edges).toEqual([]);
    expect(await page(cursor(theirs.id))).toEqual(unknown);
    expect(await page(cursor(mine.id))).toEqual(unknown);
    expect(await page(cursor(theirs.id), { actions: ['project.created'] })).toEqual(unknown);

    // Nor in an account's own record: the admin's entry is no place in the owner's.
    const ACTIVITY = `query($after: String) { viewer { activity(first: 3, after: $after) { edges { node { id } } pageInfo { hasNextPage hasPreviousPage } } } }`;
    const activity = async (after: string) => (await org.owner.gql(ACTIVITY, { after })).data!.viewer.activity;
    await app.rt.prisma.auditLog.createMany({
      data: [1, 3].map((n) => ({ actorId: org.owner.id, action: 'auth.sign_in', createdAt: new Date(minute(5).getTime() + n) })),
    });
    expect(await activity(cursor(mine.id))).toEqual(await activity(cursor('00000000-0000-4000-8000-000000000000')));
    expect((await activity(cursor(mine.id))).edges).toEqual([]);
    await app.rt.prisma.auditLog.deleteMany({ where: { id: { in: [theirs.id, mine.id] } } });
    await app.rt.prisma.auditLog.deleteMany({ where: { actorId: org.owner.id, organizationId: null, action: 'auth.sign_in', createdAt: { gt: minute(5), lt: minute(6) } } });
  });

  it('is for ADMINs and above: MEMBERs and VIEWERs get FORBIDDEN on that field only, outsiders see no organization', async () => {
    for (const who of [member, viewer]) {
      const res = await who.gql(LOGS, { slug: org.slug });
      expect(res.data!.organization).toEqual({ slug: org.slug, viewerCanReadAuditLog: false, auditLogs: null });
      expect(res.errors).toHaveLength(1);
      expect(res.errors![0]).toMatchObject({ path: ['organization', 'auditLogs'], extensions: { code: 'FORBIDDEN' } });
    }
    expect((await outsider.gql(LOGS, { slug: org.slug })).data!.organization).toBeNull();
    expect((await gql(app.url, LOGS, { slug: org.slug })).data!.organization).toBeNull();
    expect((await org.owner.gql(LOGS, { slug: org.slug })).data!.organization.auditLogs.edges.length).toBeGreaterThan(0);
  });
});

/** A small RFC 4180 reader, to check that what the export writes reads back exactly. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(field), (field = '');
    else if (c === '\r' && text[i + 1] === '\n') row.push(field), rows.push(row), (row = []), (field = ''), i++;
    else field += c;
  }
  return rows;
}

describe('audit log export', () => {
  const exportUrl = (format: string, query = '', slug = org.slug) => `${app.url}/api/organizations/${slug}/audit-logs.${format}${query}`;
  const download = (url: string, headers: Record<string, string> = {}) => fetch(url, { headers });
  const bearer = (u: TestUser) => ({ authorization: `Bearer ${u.token}` });

  it('downloads CSV with the right headers, newest first, escaped so it reads back exactly', async () => {
    const tricky = await app.rt.prisma.auditLog.create({
      data: {
        organizationId: org.id,
        actorId: admin.id,
        action: '=HYPERLINK("http://evil.test","click")',
        metadata: { note: 'Quotes " and, commas\nand a newline', userId: outsider.id },
        ip: null,
        createdAt: minute(-10),
      },
    });
    const res = await download(exportUrl('csv'), bearer(admin));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toMatch(new RegExp(`^attachment; filename="audit-log-${org.slug}-\\d{4}-\\d{2}-\\d{2}\\.csv"$`));
    const rows = parseCsv(await res.text());
    expect(rows[0]).toEqual(['id', 'createdAt', 'action', 'actorId', 'actorEmail', 'targetType', 'targetId', 'targetLabel', 'ip', 'metadata']);
    expect(rows.slice(1).map((r) => r[0])).toEqual(await expectedOrder());
    const last = rows.at(-1)!;
    expect(last).toEqual([
      toGlobalId('AuditLog', tricky.id),
      minute(-10).toISOString(),
      `'=HYPERLINK("http://evil.test","click")`,
      admin.gid,
      admin.email,
      '',
      '',
      '',
      '',
      JSON.stringify({ note: 'Quotes " and, commas\nand a newline', userId: outsider.gid }),
    ]);
    await app.rt.prisma.auditLog.delete({ where: { id: tricky.id } });
  });

  it('downloads NDJSON, one JSON object per line, and applies ?action=&from=&to=', async () => {
    const query = `?action=member.added&action=agent.created&from=${minute(2).toISOString()}&to=${minute(5).toISOString()}`;
    const res = await download(exportUrl('ndjson', query), bearer(org.owner));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="audit-log-.+\.ndjson"$/);
    const text = await res.text();
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.id)).toEqual(
      await expectedOrder({ action: { in: ['member.added', 'agent.created'] }, createdAt: { gte: minute(2), lt: minute(5) } }),
    );
    expect(lines).toHaveLength(6);
    expect(lines[0]).toMatchObject({ actor: { email: expect.any(String) }, target: { type: 'Membership' }, ip: '203.0.113.7', metadata: { userId: member.gid } });
    // Each target carries the label the audit page shows for it.
    const page = await org.owner.gql(`query($slug: String!) { organization(slug: $slug) { auditLogs(first: 100) { edges { node { id target { label } } } } } }`, { slug: org.slug });
    const shown = new Map<string, string | null>(page.data!.organization.auditLogs.edges.map((e: { node: { id: string; target: { label: string | null } | null } }) => [e.node.id, e.node.target?.label ?? null]));
    const labelled = lines.filter((l) => shown.has(l.id));
    expect(labelled.length).toBeGreaterThan(0);
    for (const l of labelled) expect(l.target?.label ?? null).toBe(shown.get(l.id));
    expect(labelled.some((l) => typeof l.target?.label === 'string')).toBe(true);
    // Date-only bounds and comma-separated actions work too.
    const sameDay = await download(exportUrl('ndjson', `?action=member.added,agent.created&from=${day(0)}&to=${day(1)}`), bearer(admin));
    expect((await sameDay.text()).trimEnd().split('\n')).toHaveLength(20);
  });

  it('authenticates with the session cookie as well as a bearer token', async () => {
    const signUp = await gql(app.url, `mutation($input: SignUpInput!) { signUp(input: $input) { __typename } }`, {
      input: { email: 'auditor@example.test', password: 'correct horse battery', name: 'Auditor' },
    });
    const cookie = signUp.headers.get('set-cookie')!.split(';')[0]!;
    const auditor = await app.rt.prisma.user.findUniqueOrThrow({ where: { email: 'auditor@example.test' } });
    await app.rt.prisma.membership.create({ data: { organizationId: org.id, userId: auditor.id, role: 'ADMIN' } });
    const res = await download(exportUrl('csv'), { cookie });
    expect(res.status).toBe(200);
    expect(parseCsv(await res.text()).length).toBeGreaterThan(30);
  });

  it('answers 401, 403, 404 and 400 with JSON errors, and audits the denied attempt', async () => {
    const status = async (url: string, headers: Record<string, string> = {}) => {
      const res = await download(url, headers);
      return { status: res.status, body: (await res.json()) as { errors: { message: string; extensions: Record<string, unknown> }[] } };
    };
    expect(await status(exportUrl('csv'))).toMatchObject({ status: 401, body: { errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] } });
    expect((await status(exportUrl('csv'), { authorization: 'Bearer hub_pat_nope' })).status).toBe(401);

    const deniedBefore = await app.rt.prisma.auditLog.count({ where: { organizationId: org.id, action: 'access.denied', actorId: member.id } });
    expect(await status(exportUrl('csv'), bearer(member))).toMatchObject({ status: 403, body: { errors: [{ extensions: { code: 'FORBIDDEN' } }] } });
    expect((await status(exportUrl('ndjson'), bearer(viewer))).status).toBe(403);
    const denied = await app.rt.prisma.auditLog.findMany({ where: { organizationId: org.id, action: 'access.denied', actorId: member.id } });
    expect(denied).toHaveLength(deniedBefore + 1);
    expect(denied.some((d) => (d.metadata as { attempted?: string }).attempted === 'audit.read')).toBe(true);

    // Not a member, and no such organization, look the same.
    const outside = await status(exportUrl('csv'), bearer(outsider));
    const missing = await status(exportUrl('csv', '', 'no-such-org'), bearer(outsider));
    expect(outside).toEqual(missing);
    expect(outside.status).toBe(404);
    expect((await status(exportUrl('xml'), bearer(admin))).status).toBe(404);

    const badDate = await status(exportUrl('csv', '?from=yesterday'), bearer(admin));
    expect(badDate).toMatchObject({ status: 400, body: { errors: [{ extensions: { code: 'VALIDATION_FAILED', issues: [{ path: ['from'] }] } }] } });
  });

  it('streams in pages, never reading the whole log at once', async () => {
    const takes: number[] = [];
    const real = app.rt.prisma.auditLog;
    const counting = {
      auditLog: {
        findMany: ((args: { take: number }) => {
          takes.push(args.take);
          return real.findMany(args);
        }) as unknown as typeof real.findMany,
      },
    };
    const chunks: string[] = [];
    for await (const chunk of exportChunks(auditLogPages(counting, { organizationId: org.id, action: { in: [...ACTIONS] } }, 7), 'ndjson')) chunks.push(chunk);
    const ids = chunks.join('').trimEnd().split('\n').map((l) => JSON.parse(l).id);
    expect(ids).toEqual(await expectedOrder({ action: { in: [...ACTIONS] } }));
    expect(ids.length).toBeGreaterThan(28);
    expect(takes.every((t) => t === 7)).toBe(true);
    expect(takes).toHaveLength(Math.floor(ids.length / 7) + 1);
  });
});

describe('CSV fields', () => {
  it('quotes separators, quotes and line breaks, and defuses spreadsheet formulas', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField(null)).toBe('');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('cr\rlf')).toBe('"cr\rlf"');
    expect(csvField('=1+2')).toBe("'=1+2");
    expect(csvField('+1')).toBe("'+1");
    expect(csvField('-1')).toBe("'-1");
    expect(csvField('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvField('=A1,"x"')).toBe(`"'=A1,""x"""`);
  });
});
