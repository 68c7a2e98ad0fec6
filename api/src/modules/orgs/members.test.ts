import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { toGlobalId } from '../../lib/ids.js';

const UPDATE_ROLE = `mutation($input: UpdateMemberRoleInput!) { updateMemberRole(input: $input) {
  __typename ... on Error { message } } }`;

let app: TestServer;

beforeAll(async () => {
  app = await startTestServer();
});

afterAll(async () => {
  await app.close();
});

describe('role changes under concurrency', () => {
  it('two admins demoting each other at the same moment: never both, and the loser gets a ConflictError', async () => {
    const g = given(app);
    for (let round = 0; round < 8; round++) {
      const org = await g.anOrganization();
      const a = await g.aMemberOf(org, 'ADMIN', 'Admin A');
      const b = await g.aMemberOf(org, 'ADMIN', 'Admin B');
      const memberships = await app.rt.prisma.membership.findMany({ where: { organizationId: org.id } });
      const idOf = (userId: string) => toGlobalId('Membership', memberships.find((m) => m.userId === userId)!.id);
      const [ra, rb] = await Promise.all([
        a.gql(UPDATE_ROLE, { input: { membershipId: idOf(b.id), role: 'MEMBER' } }),
        b.gql(UPDATE_ROLE, { input: { membershipId: idOf(a.id), role: 'MEMBER' } }),
      ]);
      const outcomes = [ra.data!.updateMemberRole.__typename, rb.data!.updateMemberRole.__typename].sort();
      const roles = (await app.rt.prisma.membership.findMany({ where: { organizationId: org.id, userId: { in: [a.id, b.id] } } })).map((m) => m.role);
      // Whoever went second acted on a role they no longer had: refused, and exactly one admin remains.
      expect(roles.filter((r) => r === 'ADMIN'), JSON.stringify({ outcomes, roles })).toHaveLength(1);
      expect(outcomes[1]).toBe('UpdateMemberRolePayload');
      expect(['ConflictError', 'ForbiddenError']).toContain(outcomes[0]);
    }
  });
});
