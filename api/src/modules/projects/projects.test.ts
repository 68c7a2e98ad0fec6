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
