import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
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

describe('a role change reaches an open WebSocket', () => {
  it('an ADMIN demoted while connected is reconnected (4205) and can no longer act as ADMIN', async () => {
    const g = given(app);
    const org = await g.anOrganization();
    const admin = await g.aMemberOf(org, 'ADMIN');
    const RENAME = `mutation($input: UpdateOrganizationInput!) { updateOrganization(input: $input) { __typename } }`;
    // One client for the whole test (not lazy: a lazy client would reconnect for each operation); it
    // reconnects, as the UI's does, after a close that is not fatal.
    let connections = 0;
    const closes: number[] = [];
    const socket = createClient({
      url: app.wsUrl,
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 1,
      retryWait: async () => {},
      connectionParams: { authorization: `Bearer ${admin.token}` },
      on: { connected: () => connections++, closed: (e) => void closes.push((e as { code: number }).code) },
    });
    const overSocket = (name: string) =>
      new Promise<string>((resolve, reject) => {
        socket.subscribe<{ updateOrganization: { __typename: string } }>(
          { query: RENAME, variables: { input: { id: org.gid, name } } },
          { next: (r) => resolve(r.data?.updateOrganization.__typename ?? JSON.stringify(r.errors)), error: reject, complete: () => {} },
        );
      });
    try {
      expect(await overSocket('Renamed by the admin')).toBe('UpdateOrganizationPayload');
      const membership = await app.rt.prisma.membership.findFirstOrThrow({ where: { organizationId: org.id, userId: admin.id } });
      const demoted = await org.owner.gql(UPDATE_ROLE, { input: { membershipId: toGlobalId('Membership', membership.id), role: 'VIEWER' } });
      expect(demoted.data!.updateMemberRole.__typename).toBe('UpdateMemberRolePayload');
      // Running subscriptions were authorized with the old role: the change closes the connection.
      await expect.poll(() => connections).toBe(2);
      expect(closes).toEqual([4205]);
      expect(await overSocket('Renamed again')).toBe('ForbiddenError');
      expect((await app.rt.prisma.organization.findUniqueOrThrow({ where: { id: org.id } })).name).toBe('Renamed by the admin');
    } finally {
      await socket.dispose();
    }
  });
});
