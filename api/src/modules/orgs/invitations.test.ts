import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { toGlobalId } from '../../lib/ids.js';
import { sha256 } from '../../lib/tokens.js';
import * as invitations from './invitations.service.js';
import { INVITATION_TTL_MS, MAX_PENDING_INVITATIONS } from './invitations.service.js';

const INVITE = `mutation($input: InviteMemberInput!) { inviteMember(input: $input) {
  __typename
  ... on InviteMemberPayload { token invitation { id email role status expiresAt invitedBy { name } } }
  ... on Error { message }
  ... on ConflictError { field }
  ... on ValidationError { issues { path message } } } }`;
const ACCEPT = `mutation($token: String!) { acceptInvitation(input: { token: $token }) {
  __typename ... on AcceptInvitationPayload { membership { role organization { slug } } } ... on Error { message } } }`;
const REVOKE = `mutation($id: ID!) { revokeInvitation(input: { invitationId: $id }) {
  __typename ... on RevokeInvitationPayload { invitation { status } } ... on Error { message } } }`;
const PREVIEW = `query($token: String!) { invitation(token: $token) { organizationName organizationSlug email role invitedByName } }`;
const PENDING = `query($slug: String!) { organization(slug: $slug) { invitations { totalCount edges { node { email role status } } } } }`;

let app: TestServer;

beforeAll(async () => {
  app = await startTestServer();
});

afterAll(async () => {
  await app.close();
});

describe('member invitations', () => {
  it('invites an email, previews and accepts the link as that account, once', async () => {
    const g = given(app);
    const org = await g.anOrganization();
    const grace = await g.aUser('Grace');
    const invited = await org.owner.gql(INVITE, { input: { organizationId: org.gid, email: grace.email.toUpperCase(), role: 'MEMBER' } });
    const payload = invited.data!.inviteMember;
    expect(payload.__typename).toBe('InviteMemberPayload');
    expect(payload.invitation).toMatchObject({ email: grace.email, role: 'MEMBER', status: 'PENDING', invitedBy: { name: 'Owner' } });
    expect(payload.token).toMatch(/^hub_inv_/);
    // Only the token's hash is stored.
    const stored = await app.rt.prisma.invitation.findFirstOrThrow({ where: { organizationId: org.id } });
    expect(stored.tokenHash).toBe(sha256(payload.token));
    expect(JSON.stringify(stored)).not.toContain(payload.token);

    const preview = await grace.gql(PREVIEW, { token: `http://localhost:3000/invitations/${payload.token}` });
    expect(preview.data!.invitation).toEqual({ organizationName: `Org ${org.slug}`, organizationSlug: org.slug, email: grace.email, role: 'MEMBER', invitedByName: 'Owner' });
    expect((await org.owner.gql(PENDING, { slug: org.slug })).data!.organization.invitations.totalCount).toBe(1);

    const accepted = await grace.gql(ACCEPT, { token: payload.token });
    expect(accepted.data!.acceptInvitation).toEqual({ __typename: 'AcceptInvitationPayload', membership: { role: 'MEMBER', organization: { slug: org.slug } } });
    expect(await app.rt.prisma.membership.count({ where: { organizationId: org.id, userId: grace.id, role: 'MEMBER' } })).toBe(1);
    // Spent: the link shows nothing and cannot be used again; the invitation left the pending list.
    expect((await grace.gql(PREVIEW, { token: payload.token })).data!.invitation).toBeNull();
    expect((await grace.gql(ACCEPT, { token: payload.token })).data!.acceptInvitation.__typename).toBe('NotFoundError');
    expect((await org.owner.gql(PENDING, { slug: org.slug })).data!.organization.invitations.totalCount).toBe(0);
    const actions = (await app.rt.prisma.auditLog.findMany({ where: { organizationId: org.id }, orderBy: { createdAt: 'asc' } })).map((l) => l.action);
    expect(actions).toEqual(['member.invited', 'member.joined']);
  });

  it('answers alike whether or not an account uses the email, and works for someone who signs up later', async () => {
    const g = given(app);
    const org = await g.anOrganization();
    const existing = await g.aUser('Existing');
    const newcomerEmail = `later-${Date.now()}@example.test`;
    const a = (await org.owner.gql(INVITE, { input: { organizationId: org.gid, email: existing.email, role: 'VIEWER' } })).data!.inviteMember;
    const b = (await org.owner.gql(INVITE, { input: { organizationId: org.gid, email: newcomerEmail, role: 'VIEWER' } })).data!.inviteMember;
    expect(a.__typename).toBe(b.__typename);
    expect(Object.keys(a.invitation).sort()).toEqual(Object.keys(b.invitation).sort());
    expect(a.invitation.status).toBe(b.invitation.status);

    // The invited person signs up afterwards, with the invited email.
    const newcomer = await g.aUser('Newcomer');
    await app.rt.prisma.user.update({ where: { id: newcomer.id }, data: { email: newcomerEmail } });
    const accepted = await newcomer.gql(ACCEPT, { token: b.token });
    expect(accepted.data!.acceptInvitation.__typename).toBe('AcceptInvitationPayload');
  });

  it('refuses an account with another email, and leaves the invitation pending', async () => {
    const g = given(app);
    const org = await g.anOrganization();
    const invitee = await g.aUser('Invitee');
    const other = await g.aUser('Someone else');
    const { token } = (await org.owner.gql(INVITE, { input: { organizationId: org.gid, email: invitee.email, role: 'MEMBER' } })).data!.inviteMember;
    const refused = await other.gql(ACCEPT, { token });
    expect(refused.data!.acceptInvitation.__typename).toBe('ForbiddenError');
    expect(refused.data!.acceptInvitation.message).toContain(invitee.email);
    expect(await app.rt.prisma.membership.count({ where: { organizationId: org.id, userId: other.id } })).toBe(0);
    expect((await invitee.gql(ACCEPT, { token })).data!.acceptInvitation.__typename).toBe('AcceptInvitationPayload');
  });

  it('unknown, revoked, replaced and expired links are all "not found"', async () => {
    const g = given(app);
    const org = await g.anOrganization();
    const u = await g.aUser('U');
    const invite = async () => (await org.owner.gql(INVITE, { input: { organizationId: org.gid, email: u.email, role: 'MEMBER' } })).data!.inviteMember;

    expect((await u.gql(ACCEPT, { token: 'hub_inv_nope' })).data!.acceptInvitation.__typename).toBe('NotFoundError');

    const first = await invite();
    const second = await invite(); // replaces the first
    expect((await u.gql(ACCEPT, { token: first.token })).data!.acceptInvitation.__typename).toBe('NotFoundError');
    expect((await org.owner.gql(PENDING, { slug: org.slug })).data!.organization.invitations.totalCount).toBe(1);

    const revoked = await org.owner.gql(REVOKE, { id: second.invitation.id });
    expect(revoked.data!.revokeInvitation).toEqual({ __typename: 'RevokeInvitationPayload', invitation: { status: 'REVOKED' } });
    expect((await u.gql(ACCEPT, { token: second.token })).data!.acceptInvitation.__typename).toBe('NotFoundError');
    expect((await org.owner.gql(REVOKE, { id: second.invitation.id })).data!.revokeInvitation.__typename).toBe('ConflictError');

    const third = await invite();
    await app.rt.prisma.invitation.updateMany({ where: { tokenHash: sha256(third.token) }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await u.gql(PREVIEW, { token: third.token })).data!.invitation).toBeNull();
    expect((await u.gql(ACCEPT, { token: third.token })).data!.acceptInvitation.__typename).toBe('NotFoundError');
    expect(await app.rt.prisma.membership.count({ where: { organizationId: org.id, userId: u.id } })).toBe(0);
  });

  it('members are not invited again; nobody grants above their own role; a MEMBER may not invite or see invitations', async () => {
    const g = given(app);
    const org = await g.anOrganization();
    const admin = await g.aMemberOf(org, 'ADMIN');
    const member = await g.aMemberOf(org, 'MEMBER');
    const again = await admin.gql(INVITE, { input: { organizationId: org.gid, email: member.email, role: 'VIEWER' } });
    expect(again.data!.inviteMember).toMatchObject({ __typename: 'ConflictError', field: 'email' });
    const above = await admin.gql(INVITE, { input: { organizationId: org.gid, email: 'boss@example.test', role: 'OWNER' } });
    expect(above.data!.inviteMember.__typename).toBe('ForbiddenError');
    const byMember = await member.gql(INVITE, { input: { organizationId: org.gid, email: 'x@example.test', role: 'VIEWER' } });
    expect(byMember.data!.inviteMember.__typename).toBe('ForbiddenError');
    const bad = await admin.gql(INVITE, { input: { organizationId: org.gid, email: 'not-an-email', role: 'VIEWER' } });
    expect(bad.data!.inviteMember.__typename).toBe('ValidationError');
    expect(await app.rt.prisma.invitation.count({ where: { organizationId: org.id } })).toBe(0);

    const ok = (await org.owner.gql(INVITE, { input: { organizationId: org.gid, email: 'boss@example.test', role: 'OWNER' } })).data!.inviteMember;
    expect(ok.__typename).toBe('InviteMemberPayload');
    // The admin may not revoke an invitation above their role (and is told so in advance); the member sees
    // no invitations at all.
    const canRevoke = async (who: typeof admin) =>
      (await who.gql(`query($slug: String!) { organization(slug: $slug) { invitations { edges { node { viewerCanRevoke } } } } }`, { slug: org.slug })).data!
        .organization.invitations.edges[0].node.viewerCanRevoke;
    expect([await canRevoke(admin), await canRevoke(org.owner)]).toEqual([false, true]);
    expect((await admin.gql(REVOKE, { id: ok.invitation.id })).data!.revokeInvitation.__typename).toBe('ForbiddenError');
    expect((await member.gql(PENDING, { slug: org.slug })).data!.organization.invitations).toBeNull();
  });

  it("another organization's admin can neither revoke nor see an invitation", async () => {
    const g = given(app);
    const org = await g.anOrganization();
    const stranger = await g.anOrganization();
    const { invitation } = (await org.owner.gql(INVITE, { input: { organizationId: org.gid, email: 'someone@example.test', role: 'VIEWER' } })).data!.inviteMember;
    expect((await stranger.owner.gql(REVOKE, { id: invitation.id })).data!.revokeInvitation.__typename).toBe('NotFoundError');
    const node = await stranger.owner.gql(`query($id: ID!) { node(id: $id) { id } }`, { id: invitation.id });
    expect(node.data?.node ?? null).toBeNull();
    expect(invitation.id).toBe(toGlobalId('Invitation', (await app.rt.prisma.invitation.findFirstOrThrow({ where: { organizationId: org.id } })).id));
  });

  it(`at most ${MAX_PENDING_INVITATIONS} pending invitations per organization: the next is refused and nothing changes`, async () => {
    const g = given(app);
    const org = await g.anOrganization();
    const other = await g.anOrganization();
    const now = Date.now();
    const invitation = (i: number, organizationId = org.id) => ({
      organizationId,
      email: `guest${i}@example.test`,
      role: 'VIEWER' as const,
      tokenHash: sha256(`t-${organizationId}-${i}`),
      invitedById: org.owner.id,
      expiresAt: new Date(now + INVITATION_TTL_MS),
    });
    // Expired and revoked invitations do not count; neither do another organization's.
    await app.rt.prisma.invitation.createMany({
      data: [
        ...Array.from({ length: MAX_PENDING_INVITATIONS - 1 }, (_, i) => invitation(i)),
        { ...invitation(1000), expiresAt: new Date(now - 1000) },
        { ...invitation(1001), revokedAt: new Date(now) },
        invitation(1002, other.id),
      ],
    });
    const invite = (email: string) => org.owner.gql(INVITE, { input: { organizationId: org.gid, email, role: 'VIEWER' } });
    expect((await invite('last@example.test')).data!.inviteMember.__typename).toBe('InviteMemberPayload');
    const before = await app.rt.prisma.invitation.findMany({ where: { organizationId: org.id }, orderBy: { id: 'asc' } });

    const refused = (await invite('one-too-many@example.test')).data!.inviteMember;
    // About the organization, not the email typed: no field.
    expect(refused).toEqual({ __typename: 'ConflictError', field: null, message: expect.stringContaining(`${MAX_PENDING_INVITATIONS} pending invitations`) });
    expect(await app.rt.prisma.invitation.findMany({ where: { organizationId: org.id }, orderBy: { id: 'asc' } })).toEqual(before);

    // Inviting a pending email again replaces its invitation, so it still works at the cap.
    expect((await invite('guest5@example.test')).data!.inviteMember.__typename).toBe('InviteMemberPayload');
    // Revoking one frees a place.
    const { id } = await app.rt.prisma.invitation.findFirstOrThrow({ where: { organizationId: org.id, email: 'guest7@example.test' } });
    expect((await org.owner.gql(REVOKE, { id: toGlobalId('Invitation', id) })).data!.revokeInvitation.__typename).toBe('RevokeInvitationPayload');
    expect((await invite('one-too-many@example.test')).data!.inviteMember.__typename).toBe('InviteMemberPayload');
  });

  it('two tabs accepting at once: one membership', async () => {
    const g = given(app);
    const org = await g.anOrganization();
    const u = await g.aUser('Twice');
    const { token } = (await org.owner.gql(INVITE, { input: { organizationId: org.gid, email: u.email, role: 'MEMBER' } })).data!.inviteMember;
    const outcomes = (await Promise.all([u.gql(ACCEPT, { token }), u.gql(ACCEPT, { token })])).map((r) => r.data!.acceptInvitation.__typename).sort();
    expect(outcomes).toEqual(['AcceptInvitationPayload', 'NotFoundError']);
    expect(await app.rt.prisma.membership.count({ where: { organizationId: org.id, userId: u.id } })).toBe(1);
  });
});

describe('an invitation offers only what its sender may still grant', () => {
  const ROLE = `mutation($id: ID!, $role: Role!) { updateMemberRole(input: { membershipId: $id, role: $role }) { __typename ... on Error { message } } }`;
  const REMOVE = `mutation($id: ID!) { removeMember(input: { membershipId: $id }) { __typename ... on Error { message } } }`;
  const statuses = async (organizationId: string) =>
    Object.fromEntries(
      (await app.rt.prisma.invitation.findMany({ where: { organizationId } })).map((inv) => [inv.email, invitations.invitationStatus(inv)]),
    );
  /** Someone with an account at that email. */
  const aUserAt = async (email: string) => {
    const u = await given(app).aUser(email);
    await app.rt.prisma.user.update({ where: { id: u.id }, data: { email } });
    return u;
  };

  it("revokes a removed or demoted sender's pending invitations they could no longer send, and audits each", async () => {
    const g = given(app);
    const org = await g.anOrganization();
    const owner2 = await g.aMemberOf(org, 'OWNER');
    const admin = await g.aMemberOf(org, 'ADMIN');
    const invite = async (who: { gql: (q: string, v?: Record<string, unknown>) => Promise<any> }, email: string, role: string) => {
      const r = await who.gql(INVITE, { input: { organizationId: org.gid, email, role } });
      expect(r.data!.inviteMember.__typename).toBe('InviteMemberPayload');
      return r.data!.inviteMember.token as string;
    };
    const membershipOf = async (userId: string) =>
      toGlobalId('Membership', (await app.rt.prisma.membership.findFirstOrThrow({ where: { organizationId: org.id, userId } })).id);

    // An owner demoted to ADMIN keeps the invitations an admin may send; the OWNER one goes.
    await invite(owner2, 'o-owner@example.test', 'OWNER');
    await invite(owner2, 'o-admin@example.test', 'ADMIN');
    expect((await org.owner.gql(ROLE, { id: await membershipOf(owner2.id), role: 'ADMIN' })).data!.updateMemberRole.__typename).toBe('UpdateMemberRolePayload');
    // An admin removed: all of theirs go, and a link sent before cannot bring anyone in.
    const adminLink = await invite(admin, 'a-admin@example.test', 'ADMIN');
    await invite(admin, 'a-member@example.test', 'MEMBER');
    expect((await org.owner.gql(REMOVE, { id: await membershipOf(admin.id) })).data!.removeMember.__typename).toBe('RemoveMemberPayload');

    expect(await statuses(org.id)).toEqual({
      'o-owner@example.test': 'REVOKED',
      'o-admin@example.test': 'PENDING',
      'a-admin@example.test': 'REVOKED',
      'a-member@example.test': 'REVOKED',
    });
    const revoked = await app.rt.prisma.auditLog.findMany({ where: { organizationId: org.id, action: 'member.invitation_revoked' } });
    expect(revoked.map((r) => [(r.metadata as { email: string }).email, (r.metadata as { reason: string }).reason]).sort()).toEqual([
      ['a-admin@example.test', 'its sender is no longer a member'],
      ['a-member@example.test', 'its sender is no longer a member'],
      ['o-owner@example.test', "its sender's role is now ADMIN"],
    ]);
    const newcomer = await aUserAt('a-admin@example.test');
    expect((await newcomer.gql(ACCEPT, { token: adminLink })).data!.acceptInvitation.__typename).toBe('NotFoundError');
    expect(await app.rt.prisma.membership.count({ where: { organizationId: org.id, userId: newcomer.id } })).toBe(0);
  });

  it('checks the sender again when the link is used, and changes nothing when it refuses', async () => {
    const g = given(app);
    const org = await g.anOrganization();
    const admin = await g.aMemberOf(org, 'ADMIN');
    const r = await admin.gql(INVITE, { input: { organizationId: org.gid, email: 'late@example.test', role: 'ADMIN' } });
    const token = r.data!.inviteMember.token as string;
    // A role lowered without the revocation (a process of an older version, a fix by hand in the database).
    await app.rt.prisma.membership.updateMany({ where: { organizationId: org.id, userId: admin.id }, data: { role: 'MEMBER' } });
    const late = await aUserAt('late@example.test');
    const refused = (await late.gql(ACCEPT, { token })).data!.acceptInvitation;
    expect(refused.__typename).toBe('ForbiddenError');
    expect(refused.message).toContain('can no longer grant ADMIN');
    expect(await app.rt.prisma.membership.count({ where: { organizationId: org.id, userId: late.id } })).toBe(0);
    expect((await app.rt.prisma.invitation.findFirstOrThrow({ where: { organizationId: org.id } })).acceptedAt).toBeNull();
  });
});
