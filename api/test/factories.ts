import { randomUUID } from 'node:crypto';
import type { Role } from '../src/_generated/prisma/enums.js';
import { toGlobalId } from '../src/lib/ids.js';
import { newApiToken, sha256 } from '../src/lib/tokens.js';
import type { Runtime } from '../src/runtime.js';
import { gql, type GqlResult } from './harness.js';

// A fixed, cheap hash: factory users sign in with API tokens; only auth tests exercise real argon2 sign-in.
const UNUSABLE_PASSWORD_HASH = '$argon2id$v=19$m=19456,t=2,p=1$dW51c2FibGU$dW51c2FibGUtaGFzaA';

export interface TestUser {
  id: string;
  gid: string;
  email: string;
  name: string;
  token: string;
  /** Runs a GraphQL operation over HTTP as this user. */
  gql<T = Record<string, any>>(query: string, variables?: Record<string, unknown>): Promise<GqlResult<T>>;
}

export interface TestOrg {
  id: string;
  gid: string;
  slug: string;
  owner: TestUser;
}

export interface TestProject {
  id: string;
  gid: string;
  org: TestOrg;
}

/** Test data builders that read as sentences: `const { org } = await given(app).anOrganization()`. */
export function given(app: { rt: Runtime; url: string }) {
  const prisma = app.rt.prisma;

  async function aUser(name = 'Test User'): Promise<TestUser> {
    const email = `user-${randomUUID().slice(0, 8)}@example.test`;
    const user = await prisma.user.create({ data: { email, name, passwordHash: UNUSABLE_PASSWORD_HASH } });
    const token = newApiToken();
    await prisma.apiToken.create({ data: { userId: user.id, name: 'test', prefix: token.slice(0, 12), tokenHash: sha256(token) } });
    return {
      id: user.id,
      gid: toGlobalId('User', user.id),
      email,
      name,
      token,
      gql: (query, variables) => gql(app.url, query, variables, { token }),
    };
  }

  async function anOrganization(owner?: TestUser): Promise<TestOrg & { owner: TestUser }> {
    const o = owner ?? (await aUser('Owner'));
    const slug = `org-${randomUUID().slice(0, 8)}`;
    const org = await prisma.organization.create({
      data: { slug, name: `Org ${slug}`, memberships: { create: { userId: o.id, role: 'OWNER' } } },
    });
    return { id: org.id, gid: toGlobalId('Organization', org.id), slug, owner: o };
  }

  async function aMemberOf(org: TestOrg, role: Role, name = `${role.toLowerCase()} user`): Promise<TestUser> {
    const u = await aUser(name);
    await prisma.membership.create({ data: { organizationId: org.id, userId: u.id, role } });
    return u;
  }

  async function aProject(org: TestOrg): Promise<TestProject> {
    const slug = `p-${randomUUID().slice(0, 8)}`;
    const p = await prisma.project.create({ data: { organizationId: org.id, slug, name: `Project ${slug}` } });
    return { id: p.id, gid: toGlobalId('Project', p.id), org };
  }

  /** An agent on the offline provider (its pace is the server's OFFLINE_TOKEN_DELAY_MS); `offline-large` streams long. */
  async function anOfflineAgent(project: TestProject, { name = 'Offline', model = 'offline-large', maxOutputTokens = 400 } = {}) {
    const agent = await prisma.agent.create({
      data: { organizationId: project.org.id, projectId: project.id, name, provider: 'OFFLINE', model, maxOutputTokens },
    });
    return { id: agent.id, gid: toGlobalId('Agent', agent.id) };
  }

  return { aUser, anOrganization, aMemberOf, aProject, anOfflineAgent };
}
