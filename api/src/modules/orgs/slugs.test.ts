import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';

const CREATE_ORG = `mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) {
  __typename ... on CreateOrganizationPayload { organization { id slug } } ... on ValidationError { issues { path message } } ... on Error { message } } }`;
const CREATE_PROJECT = `mutation($input: CreateProjectInput!) { createProject(input: $input) {
  __typename ... on CreateProjectPayload { project { id slug } } ... on ValidationError { issues { path message } } ... on Error { message } } }`;

let app: TestServer;
beforeAll(async () => {
  app = await startTestServer({ worker: false });
});
afterAll(() => app.close());

describe('slugs under concurrency', () => {
  it('organizations created at the same moment with the same name all get one, distinct, slug', async () => {
    const user = await given(app).aUser();
    const name = `Acme ${Date.now()}`;
    const results = await Promise.all(Array.from({ length: 6 }, () => user.gql(CREATE_ORG, { input: { name } })));
    const slugs = results.map((r) => {
      expect(r.data?.createOrganization?.__typename, JSON.stringify(r)).toBe('CreateOrganizationPayload');
      return r.data!.createOrganization.organization.slug as string;
    });
    expect(new Set(slugs).size).toBe(6);
    expect(slugs.filter((s) => s === `acme-${name.split(' ')[1]}`)).toHaveLength(1);
  });

  it('an explicit slug that is taken, even by a concurrent request, is a field error and creates nothing', async () => {
    const user = await given(app).aUser();
    const slug = `mine-${Date.now()}`;
    const results = await Promise.all([1, 2, 3].map(() => user.gql(CREATE_ORG, { input: { name: 'Mine', slug } })));
    const kinds = results.map((r) => r.data!.createOrganization.__typename).sort();
    expect(kinds).toEqual(['CreateOrganizationPayload', 'ValidationError', 'ValidationError']);
    expect(results.find((r) => r.data!.createOrganization.__typename === 'ValidationError')!.data!.createOrganization.issues).toEqual([
      { path: ['slug'], message: 'This slug is taken' },
    ]);
    expect(await app.rt.prisma.organization.count({ where: { slug: { startsWith: slug } } })).toBe(1);
  });

  it('projects of one organization get distinct slugs too', async () => {
    const org = await given(app).anOrganization();
    const results = await Promise.all(Array.from({ length: 5 }, () => org.owner.gql(CREATE_PROJECT, { input: { organizationId: org.gid, name: 'Website' } })));
    const slugs = results.map((r) => r.data!.createProject.project.slug as string);
    expect(new Set(slugs).size).toBe(5);
    expect(slugs).toContain('website');
  });
});
