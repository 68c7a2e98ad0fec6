import {
  HealthDocument,
  NotFoundError,
  SignInDocument,
  SignOutDocument,
  SignUpDocument,
  UnauthorizedError,
  ValidationError,
  ViewerOrganizationsDocument,
  unwrap,
  type HubClient,
} from '@hub/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOOT_TIMEOUT_MS, clientFor, given, startTestServer, type TestServer } from './support.js';

let app: TestServer;
let client: HubClient;
let owner: Awaited<ReturnType<ReturnType<typeof given>['aUser']>>;

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  owner = await given(app).aUser('Ada Owner');
  client = clientFor(app, owner.token);
}, BOOT_TIMEOUT_MS);
afterAll(async () => {
  await client.close();
  await app.close();
});

describe('client.request with the exported documents', () => {
  it('runs any typed operation, including the account mutations the namespaces leave out', async () => {
    expect((await client.request(HealthDocument)).health).toMatchObject({ ok: true });
    const anonymous = clientFor(app);
    const input = { email: 'grace@example.test', password: 'correct horse battery', name: 'Grace' };
    const signedUp = unwrap((await anonymous.request(SignUpDocument, { input })).signUp);
    expect(signedUp.viewer.user).toMatchObject({ email: 'grace@example.test', name: 'Grace' });
    const signedIn = unwrap((await anonymous.request(SignInDocument, { input: { email: input.email, password: input.password } })).signIn);
    expect(signedIn.viewer.user.email).toBe('grace@example.test');
    // Token callers have no session to end, so signing out needs a signed-in caller and is a no-op for them.
    expect(unwrap((await client.request(SignOutDocument)).signOut)).toEqual({ __typename: 'SignOutPayload', ok: true });
    await expect(anonymous.request(SignOutDocument).then((r) => unwrap(r.signOut))).rejects.toBeInstanceOf(UnauthorizedError);
  });

  it('takes no variables for an operation whose variables are all optional', async () => {
    const org = await given(app).anOrganization(owner);
    const { viewer } = await client.request(ViewerOrganizationsDocument);
    expect(viewer?.organizations.edges.map((e) => e.node.slug)).toContain(org.slug);
    expect((await client.request(ViewerOrganizationsDocument, { first: 1 })).viewer?.organizations.edges).toHaveLength(1);
  });
});

describe('viewer and tokens', () => {
  it('knows the viewer, with their tokens and organizations', async () => {
    const org = await given(app).anOrganization(owner);
    const me = await client.viewer();
    expect(me.user).toMatchObject({ id: owner.gid, email: owner.email, name: 'Ada Owner' });
    expect(me.apiTokens.map((t) => t.name)).toContain('test');
    expect(me.organizations.edges.map((e) => e.node.slug)).toContain(org.slug);
  });

  it('creates a token whose secret authenticates, lists it, and revokes it', async () => {
    const { apiToken, secret } = await client.tokens.create({ name: 'ci' });
    expect(secret.startsWith(apiToken.prefix)).toBe(true);
    expect(apiToken).toMatchObject({ name: 'ci', active: true, revokedAt: null });

    const ci = clientFor(app, secret);
    expect((await ci.viewer()).user.email).toBe(owner.email);
    const listed = await client.tokens.list().toArray();
    expect(listed.find((t) => t.id === apiToken.id)).toMatchObject({ name: 'ci', active: true });

    const revoked = await client.tokens.revoke(apiToken.id);
    expect(revoked.active).toBe(false);
    expect(revoked.revokedAt).toEqual(expect.any(String));
    await expect(ci.viewer()).rejects.toBeInstanceOf(UnauthorizedError);

    // Both land in the account's own record, newest first, across pages.
    const first = await client.activity().page({ first: 1 });
    const second = await client.activity().page({ first: 1, after: first.endCursor });
    expect(first.hasNextPage).toBe(true);
    expect([...first.items, ...second.items].map((e) => [e.action, e.target?.id])).toEqual([
      ['token.revoked', apiToken.id],
      ['token.created', apiToken.id],
    ]);
  });

  it('throws UnauthorizedError from every call about your own account without a token, lists included (not an empty list)', async () => {
    const anonymous = clientFor(app);
    await expect(anonymous.viewer()).rejects.toBeInstanceOf(UnauthorizedError);
    await expect(anonymous.activity().toArray()).rejects.toBeInstanceOf(UnauthorizedError);
    await expect(anonymous.tokens.list().toArray()).rejects.toBeInstanceOf(UnauthorizedError);
    await expect(anonymous.organizations.list().toArray()).rejects.toBeInstanceOf(UnauthorizedError);
  });
});

describe('organizations and members', () => {
  it('creates, reads, updates, lists and deletes an organization', async () => {
    const org = await client.organizations.create({ name: 'Acme Robotics', slug: 'acme-robotics', timeZone: 'Europe/Paris' });
    expect(org).toMatchObject({ slug: 'acme-robotics', name: 'Acme Robotics', timeZone: 'Europe/Paris', viewerRole: 'OWNER', viewerCanDelete: true });

    const details = await client.organizations.get('acme-robotics');
    expect(details.id).toBe(org.id);
    expect(details.members.totalCount).toBe(1);
    expect(details.members.edges[0]!.node.user.email).toBe(owner.email);
    expect(details.projects.totalCount).toBe(0);

    const renamed = await client.organizations.update({ id: org.id, name: 'Acme', timeZone: 'UTC' });
    expect(renamed).toMatchObject({ id: org.id, name: 'Acme', timeZone: 'UTC' });
    expect((await client.organizations.list().toArray()).map((o) => o.id)).toContain(org.id);

    await expect(client.organizations.delete({ id: org.id, confirmSlug: 'wrong' })).rejects.toBeInstanceOf(ValidationError);
    expect(await client.organizations.delete({ id: org.id, confirmSlug: 'acme-robotics' })).toBe(org.id);
    await expect(client.organizations.get('acme-robotics')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('invites a member, who accepts with their own account; changes their role, lists and removes them', async () => {
    const org = await given(app).anOrganization(owner);
    const grace = await given(app).aUser('Grace');
    const { invitation, token } = await client.members.invite({ organizationId: org.gid, email: grace.email, role: 'VIEWER' });
    expect(invitation).toMatchObject({ email: grace.email, role: 'VIEWER', status: 'PENDING', invitedBy: { id: owner.gid }, acceptedAt: null });
    expect(token).toMatch(/^hub_inv_/);
    expect((await client.invitations.list(org.slug).toArray()).map((i) => i.id)).toEqual([invitation.id]);

    // The link tells whoever holds it what it offers, even before they sign in.
    const link = `https://hub.example.test/invitations/${token}`;
    expect(await clientFor(app).invitations.preview(link)).toMatchObject({
      organizationSlug: org.slug,
      email: grace.email,
      role: 'VIEWER',
      invitedByName: 'Ada Owner',
      expiresAt: invitation.expiresAt,
    });
    const asGrace = clientFor(app, grace.token);
    const joined = await asGrace.invitations.accept(link);
    expect(joined).toMatchObject({ role: 'VIEWER', user: { email: grace.email }, viewerCanChangeRole: false });
    // Spent: the link offers nothing more, and the invitation left the pending list.
    expect(await asGrace.invitations.preview(token)).toBeNull();
    expect(await client.invitations.list(org.slug).toArray()).toEqual([]);

    const promoted = await client.members.updateRole({ membershipId: joined.id, role: 'ADMIN' });
    expect(promoted.role).toBe('ADMIN');

    const members = await client.members.list(org.slug).toArray();
    expect(members.map((m) => [m.user.email, m.role])).toEqual([
      [owner.email, 'OWNER'],
      [grace.email, 'ADMIN'],
    ]);

    expect(await client.members.remove(joined.id)).toBe(joined.id);
    expect((await client.members.list(org.slug).page()).totalCount).toBe(1);
  });

  it('lists pending invitations newest first, across pages, until one is revoked', async () => {
    const org = await given(app).anOrganization(owner);
    const emails = ['first@example.test', 'second@example.test', 'third@example.test'];
    const invited = [];
    for (const email of emails) invited.push((await client.members.invite({ organizationId: org.gid, email, role: 'MEMBER' })).invitation);

    const first = await client.invitations.list(org.slug).page({ first: 2 });
    expect(first).toMatchObject({ totalCount: 3, hasNextPage: true });
    const rest = await client.invitations.list(org.slug).page({ first: 2, after: first.endCursor });
    expect([...first.items, ...rest.items].map((i) => i.email)).toEqual([...emails].reverse());

    const revoked = await client.invitations.revoke(invited[1]!.id);
    expect(revoked).toMatchObject({ id: invited[1]!.id, status: 'REVOKED' });
    expect((await client.invitations.list(org.slug).toArray()).map((i) => i.email)).toEqual(['third@example.test', 'first@example.test']);
  });
});

describe('projects, providers and agents', () => {
  it('creates, reads, updates, lists, archives and restores a project', async () => {
    const org = await given(app).anOrganization(owner);
    const project = await client.projects.create({ organizationId: org.gid, name: 'Support bot', description: 'Answers tickets' });
    expect(project).toMatchObject({ name: 'Support bot', slug: 'support-bot', organization: { id: org.gid, slug: org.slug }, archivedAt: null });

    const details = await client.projects.get(project.id);
    expect(details.queue).toMatchObject({ queued: 0, running: 0 });

    expect((await client.projects.update({ id: project.id, name: 'Help desk' })).name).toBe('Help desk');
    expect((await client.projects.list(org.slug).toArray()).map((p) => p.id)).toEqual([project.id]);

    const archived = await client.projects.archive(project.id);
    expect(archived.archivedAt).toEqual(expect.any(String));
    expect(await client.projects.list(org.slug).toArray()).toEqual([]);
    expect((await client.projects.list(org.slug, { includeArchived: true }).toArray()).map((p) => p.id)).toEqual([project.id]);
    // Request options merged into the same object leave includeArchived as it was.
    const live = { signal: new AbortController().signal, timeoutMs: 10_000 };
    expect((await client.projects.list(org.slug, { includeArchived: true, ...live }).toArray()).map((p) => p.id)).toEqual([project.id]);
    expect(await client.projects.list(org.slug, live).toArray()).toEqual([]);
    await expect(client.projects.get('UHJvamVjdDpub3Bl')).rejects.toBeInstanceOf(NotFoundError);

    expect((await client.projects.restore(project.id)).archivedAt).toBeNull();
    expect((await client.projects.list(org.slug).toArray()).map((p) => p.id)).toEqual([project.id]);
  });

  it('lists providers with their models; OFFLINE is always configured', async () => {
    const providers = await client.providers.list().toArray();
    const offline = providers.find((p) => p.id === 'OFFLINE');
    expect(offline).toMatchObject({ configured: true, offline: true });
    expect(offline!.models.map((m) => m.id)).toContain('offline-small');
    // Money is a string of micro-dollars, never a float.
    expect(offline!.models[0]!.inputPricePerMillionTokens).toBe('0');
    // Each model says how many output tokens an agent on it may ask for.
    expect(offline!.models.find((m) => m.id === 'offline-small')!.maxOutputTokens).toBe(8_192);
  });

  it('creates, reads, updates, lists, archives and restores an agent', async () => {
    const org = await given(app).anOrganization(owner);
    const { gid: projectId } = await given(app).aProject(org);
    const agent = await client.agents.create({
      projectId,
      name: 'Planner',
      provider: 'OFFLINE',
      model: 'offline-small',
      systemPrompt: 'Plan carefully.',
      maxOutputTokens: 300,
      fallbackChain: [{ provider: 'OFFLINE', model: 'offline-large' }],
    });
    expect(agent).toMatchObject({
      name: 'Planner',
      provider: 'OFFLINE',
      model: 'offline-small',
      maxOutputTokens: 300,
      fallbackChain: [{ provider: 'OFFLINE', model: 'offline-large' }],
      project: { id: projectId },
      viewerCanRun: true,
    });
    expect(await client.agents.get(agent.id)).toEqual(agent);

    // The models swap places: a fallback may not be the agent's own model.
    const updated = await client.agents.update({ id: agent.id, name: 'Planner v2', model: 'offline-large', fallbackChain: [{ provider: 'OFFLINE', model: 'offline-small' }] });
    expect(updated).toMatchObject({
      name: 'Planner v2',
      model: 'offline-large',
      fallbackChain: [{ provider: 'OFFLINE', model: 'offline-small' }],
      systemPrompt: 'Plan carefully.',
    });
    expect((await client.agents.list(projectId).toArray()).map((a) => a.id)).toEqual([agent.id]);

    const archived = await client.agents.archive(agent.id);
    expect(archived).toMatchObject({ viewerCanRun: false, archivedAt: expect.any(String) });
    expect(await client.agents.list(projectId).toArray()).toEqual([]);
    expect(await client.agents.list(projectId, { includeArchived: true }).toArray()).toHaveLength(1);
    expect(await client.agents.list(projectId, { includeArchived: true, signal: new AbortController().signal, timeoutMs: 10_000 }).toArray()).toHaveLength(1);
    const refused = await client.runs.start({ agentId: agent.id, input: 'hello' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ValidationError);
    expect((refused as ValidationError).issues).toMatchObject([{ path: ['agentId'], message: 'This agent is archived' }]);

    const restored = await client.agents.restore(agent.id);
    expect(restored).toMatchObject({ viewerCanRun: true, archivedAt: null });
    expect((await client.agents.list(projectId).toArray()).map((a) => a.id)).toEqual([agent.id]);
  });
});
