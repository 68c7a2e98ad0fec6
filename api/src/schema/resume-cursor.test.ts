import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestOrg } from '../../test/factories.js';
import { startTestServer, type TestServer } from '../../test/harness.js';
import { resumeRelatedCursor, type ResumeModel } from './resume-cursor.js';

// The helper against the real database, through a delegate that counts the queries it is asked for.

let app: TestServer;
let org: TestOrg;
let ids: string[];
beforeAll(async () => {
  app = await startTestServer({ worker: false });
  org = await given(app).anOrganization();
  await app.rt.prisma.project.createMany({
    data: Array.from({ length: 5 }, (_, i) => ({ organizationId: org.id, slug: `r-${i}`, name: `r ${i}`, createdAt: new Date(Date.now() - i * 60_000) })),
  });
  ids = (await app.rt.prisma.project.findMany({ where: { organizationId: org.id }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] })).map((p) => p.id);
}, 180_000);
afterAll(() => app?.close());

const cursor = (id: string) => Buffer.from(`GPC:S:${id}`).toString('base64');
const orderBy = [{ createdAt: 'desc' as const }, { id: 'desc' as const }];

function counting() {
  const model = {
    queries: 0,
    findFirst(args: Parameters<ResumeModel['findFirst']>[0]) {
      model.queries++;
      return app.rt.prisma.project.findFirst(args as never);
    },
  };
  return model;
}

describe('resumeRelatedCursor', () => {
  it('asks nothing of the database without a cursor, or without a filter a listed row can leave', async () => {
    const model = counting();
    expect(await resumeRelatedCursor(model, { page: {}, where: { archivedAt: null }, orderBy, scope: ['organizationId'] })).toBeUndefined();
    expect(await resumeRelatedCursor(model, { page: { after: cursor(ids[1]!) }, where: undefined, orderBy, scope: ['organizationId'] })).toBeUndefined();
    expect(model.queries).toBe(0);
  });

  it('one query while the cursor row still matches; past it, either way, once it has left', async () => {
    const model = counting();
    const where = { archivedAt: null };
    expect(await resumeRelatedCursor(model, { page: { after: cursor(ids[1]!) }, where, orderBy, scope: ['organizationId'] })).toBeUndefined();
    expect(model.queries).toBe(1);

    await app.rt.prisma.project.updateMany({ where: { id: { in: [ids[1]!, ids[2]!] } }, data: { archivedAt: new Date() } });
    model.queries = 0;
    expect(await resumeRelatedCursor(model, { page: { after: cursor(ids[1]!) }, where, orderBy, scope: ['organizationId'] })).toEqual({ cursor: { id: ids[3] }, skip: 0 });
    expect(model.queries).toBe(3);
    expect(await resumeRelatedCursor(model, { page: { before: cursor(ids[2]!) }, where, orderBy, scope: ['organizationId'] })).toEqual({ cursor: { id: ids[0] }, skip: 0 });
    // Nothing matching past it: left to Prisma, which finds nothing after it.
    expect(await resumeRelatedCursor(model, { page: { before: cursor(ids[1]!) }, where: { archivedAt: null, name: 'nobody' }, orderBy, scope: ['organizationId'] })).toBeUndefined();
  });

  it('never moves into another parent: the row it moves to has the cursor row’s own', async () => {
    const other = await given(app).anOrganization();
    const theirs = await app.rt.prisma.project.create({ data: { organizationId: other.id, slug: 'x', name: 'x', archivedAt: new Date(), createdAt: new Date(Date.now() - 90_000) } });
    const model = counting();
    // Only this organization's projects lie past it: nothing of its own, so nothing to move to.
    expect(await resumeRelatedCursor(model, { page: { after: cursor(theirs.id) }, where: { archivedAt: null }, orderBy, scope: ['organizationId'] })).toBeUndefined();
  });
});
