import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestProject, type TestUser } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { fromGlobalId } from '../../lib/ids.js';

// The first file on a test worker boots the shared database: slow on a busy machine, so allow it time.
const BOOT_TIMEOUT = 180_000;
let app: TestServer;
let project: TestProject;
let owner: TestUser;

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  const org = await given(app).anOrganization();
  owner = org.owner;
  project = await given(app).aProject(org);
}, BOOT_TIMEOUT);
afterAll(() => app?.close());

const UPDATE = `mutation($input: UpdateProjectInput!) { updateProject(input: $input) {
  __typename ... on UpdateProjectPayload { project { id name description } } ... on Error { message } } }`;

const updates = () => app.rt.prisma.auditLog.findMany({ where: { action: 'project.updated', targetId: project.id }, orderBy: { createdAt: 'asc' } });

describe('editing a project', () => {
  it('audits project.updated with the name before and after and the description only as changed, and nothing when nothing changed', async () => {
    const { name: before } = await app.rt.prisma.project.findUniqueOrThrow({ where: { id: project.id } });
    const res = await owner.gql(UPDATE, { input: { id: project.gid, name: 'Renamed project', description: 'Private notes on the launch' } });
    expect(res.data!.updateProject).toEqual({
      __typename: 'UpdateProjectPayload',
      project: { id: project.gid, name: 'Renamed project', description: 'Private notes on the launch' },
    });
    const [row, ...more] = await updates();
    expect(more).toEqual([]);
    expect(row!.actorId).toBe(owner.id);
    expect(row!.targetType).toBe('Project');
    expect(row!.targetId).toBe(fromGlobalId(project.gid, 'Project'));
    expect(row!.metadata).toEqual({
      name: 'Renamed project',
      changes: { name: { from: before, to: 'Renamed project' }, description: { changed: true } },
    });
    expect(JSON.stringify(row!.metadata)).not.toContain('Private notes');

    // The same values again change nothing and audit nothing.
    await owner.gql(UPDATE, { input: { id: project.gid, name: 'Renamed project', description: 'Private notes on the launch' } });
    expect(await updates()).toHaveLength(1);
  });
});

describe('two changes of a project at once (a double click, two admins)', () => {
  const ARCHIVE = `mutation($id: ID!) { archiveProject(input: { id: $id }) { __typename ... on ArchiveProjectPayload { project { id archivedAt } } } }`;
  const RESTORE = `mutation($id: ID!) { restoreProject(input: { id: $id }) { __typename ... on RestoreProjectPayload { project { id archivedAt } } } }`;
  const rows = (action: string, id: string) => app.rt.prisma.auditLog.findMany({ where: { action, targetId: id }, orderBy: { createdAt: 'asc' } });

  it('archive it once and restore it once, each audited once, and archiving an archived project changes nothing', async () => {
    const other = await given(app).aProject(project.org);
    const archived = await Promise.all([owner.gql(ARCHIVE, { id: other.gid }), owner.gql(ARCHIVE, { id: other.gid })]);
    const at = archived.map((r) => r.data!.archiveProject.project.archivedAt);
    expect(at[0]).toBeTruthy();
    expect(at[1]).toBe(at[0]);
    expect((await owner.gql(ARCHIVE, { id: other.gid })).data!.archiveProject.project.archivedAt).toBe(at[0]);
    const [entry, ...again] = await rows('project.archived', other.id);
    expect(again).toEqual([]);
    expect(entry!.metadata).toEqual({ name: expect.stringContaining('Project') });

    const restored = await Promise.all([owner.gql(RESTORE, { id: other.gid }), owner.gql(RESTORE, { id: other.gid })]);
    expect(restored.map((r) => r.data!.restoreProject.project.archivedAt)).toEqual([null, null]);
    expect(await rows('project.restored', other.id)).toHaveLength(1);
  });

  it('audit two renames as a chain: each names what it replaced', async () => {
    const other = await given(app).aProject(project.org);
    const { name: original } = await app.rt.prisma.project.findUniqueOrThrow({ where: { id: other.id } });
    await Promise.all([owner.gql(UPDATE, { input: { id: other.gid, name: 'First name' } }), owner.gql(UPDATE, { input: { id: other.gid, name: 'Second name' } })]);
    const { name: last } = await app.rt.prisma.project.findUniqueOrThrow({ where: { id: other.id } });
    const changes = (await rows('project.updated', other.id)).map((r) => (r.metadata as { changes: { name: { from: string; to: string } } }).changes.name);
    expect(changes).toHaveLength(2);
    expect(changes[0]!.from).toBe(original);
    expect(changes[1]!.from).toBe(changes[0]!.to);
    expect(changes[1]!.to).toBe(last);
  });
});
