import type { Client, CombinedError } from '@urql/core';
import { getContextClient } from '@urql/svelte';
import { getContext, onMount, setContext } from 'svelte';
import { SessionOrganizationDocument, SessionViewerDocument, type Role } from '$lib/graphql/_generated/graphql';

export interface SessionUser {
  id: string;
  name: string;
  email: string;
}

export interface OrgSummary {
  id: string;
  slug: string;
  name: string;
}

export interface CurrentOrg extends OrgSummary {
  timeZone: string;
  viewerRole: Role;
  viewerCanUpdate: boolean;
  viewerCanDelete: boolean;
  viewerCanManageMembers: boolean;
  viewerCanCreateProject: boolean;
  viewerCanReadAuditLog: boolean;
}

export interface ProjectSummary {
  id: string;
  name: string;
  slug: string;
  createdAt: string;
  viewerCanUpdate: boolean;
}

const ORG_KEY = 'hub.org';
/** The last project chosen in an organization, per browser: `hub.project.<organization id>`. */
const projectKey = (orgId: string) => `hub.project.${orgId}`;
/** Where one project for every organization was kept before; still read, so nobody loses their choice. */
const LEGACY_PROJECT_KEY = 'hub.project';

/**
 * The project to show when this browser has not chosen one in the organization: the oldest, usually
 * the one the team started in. Stable: creating a project never moves anyone to it on their next visit.
 */
export function defaultProject<P extends { id: string; createdAt: string }>(projects: readonly P[]): P | null {
  let oldest: P | null = null;
  for (const project of projects) {
    if (!oldest || project.createdAt < oldest.createdAt || (project.createdAt === oldest.createdAt && project.id < oldest.id)) oldest = project;
  }
  return oldest;
}

function readStored(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage disabled (private mode, sandboxed frame)
  }
}

function writeStored(key: string, value: string | null): void {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // Not persisting the selection is harmless.
  }
}

/**
 * Who is signed in, which organization and project are selected, and what the viewer may do
 * there. One instance per app, created by the root layout; pages read it with `getSession()`.
 * The layout mounts pages that need an account only once `loading` is false and `viewer` is set.
 */
export class Session {
  viewer = $state<SessionUser | null>(null);
  /** True until the viewer and their selected organization are known (again after signing in). */
  loading = $state(true);
  /** Set when the API could not be reached; the last known state is kept. */
  error = $state<CombinedError | undefined>();
  organizations = $state<OrgSummary[]>([]);
  currentOrg = $state<CurrentOrg | null>(null);
  projects = $state<ProjectSummary[]>([]);
  #projectId = $state<string | null>(null);
  currentProject = $derived<ProjectSummary | null>(
    this.projects.find((p) => p.id === this.#projectId) ?? defaultProject(this.projects),
  );

  readonly #client: Client;
  #seq = 0;

  constructor(client: Client) {
    this.#client = client;
  }

  /**
   * Switches to another of the viewer's organizations (by slug, e.g. one just created or joined) and
   * loads it; resolves once it is the current one.
   */
  selectOrg(slug: string): Promise<void> {
    if (slug === this.currentOrg?.slug) return Promise.resolve();
    writeStored(ORG_KEY, slug);
    if (this.organizations.some((o) => o.slug === slug)) return this.#loadOrg(++this.#seq, slug);
    return this.refresh();
  }

  selectProject(id: string): void {
    this.#projectId = id;
    if (this.currentOrg) writeStored(projectKey(this.currentOrg.id), id);
  }

  /** Re-reads the viewer, the organizations and the selected organization from the API. */
  async refresh(): Promise<void> {
    const seq = ++this.#seq;
    const result = await this.#client.query(SessionViewerDocument, {}, { requestPolicy: 'network-only' }).toPromise();
    if (seq !== this.#seq) return;
    if (result.error || !result.data) {
      this.error = result.error;
      this.loading = false;
      return;
    }
    this.error = undefined;
    const viewer = result.data.viewer;
    if (!viewer) {
      this.#clear();
      this.loading = false;
      return;
    }
    // A different account (just signed in): hold pages back until its organization is loaded too.
    if (viewer.user.id !== this.viewer?.id) this.loading = true;
    this.viewer = viewer.user;
    this.organizations = viewer.organizations.edges.map(({ node }) => ({ id: node.id, slug: node.slug, name: node.name }));
    const stored = readStored(ORG_KEY);
    const org = this.organizations.find((o) => o.slug === stored) ?? this.organizations[0];
    if (org) {
      await this.#loadOrg(seq, org.slug);
    } else {
      this.currentOrg = null;
      this.projects = [];
      this.loading = false;
    }
  }

  /** Forgets the viewer at once, e.g. after signing out. */
  clear(): void {
    this.#seq++;
    this.#clear();
    this.error = undefined;
    this.loading = false;
  }

  #clear(): void {
    this.viewer = null;
    this.organizations = [];
    this.currentOrg = null;
    this.projects = [];
  }

  async #loadOrg(seq: number, slug: string): Promise<void> {
    const result = await this.#client
      .query(SessionOrganizationDocument, { slug }, { requestPolicy: 'network-only' })
      .toPromise();
    if (seq !== this.#seq) return;
    if (result.error) {
      this.error = result.error;
      this.loading = false;
      return;
    }
    const org = result.data?.organization;
    if (!org) {
      // Deleted, or the viewer was removed from it: start again from the first organization.
      writeStored(ORG_KEY, null);
      void this.refresh();
      return;
    }
    this.currentOrg = {
      id: org.id,
      slug: org.slug,
      name: org.name,
      timeZone: org.timeZone,
      viewerRole: org.viewerRole,
      viewerCanUpdate: org.viewerCanUpdate,
      viewerCanDelete: org.viewerCanDelete,
      viewerCanManageMembers: org.viewerCanManageMembers,
      viewerCanCreateProject: org.viewerCanCreateProject,
      viewerCanReadAuditLog: org.viewerCanReadAuditLog,
    };
    this.projects = org.projects.edges.map(({ node }) => ({
      id: node.id,
      name: node.name,
      slug: node.slug,
      createdAt: node.createdAt,
      viewerCanUpdate: node.viewerCanUpdate,
    }));
    this.#projectId = readStored(projectKey(org.id)) ?? readStored(LEGACY_PROJECT_KEY);
    this.loading = false;
  }
}

const KEY = Symbol('session');

/** Creates the app's session; call once, from the root layout, after `setContextClient`. */
export function setSession(): Session {
  const session = new Session(getContextClient());
  setContext(KEY, session);
  // Browser only: the server renders the shell without a session (see web/README.md).
  onMount(() => void session.refresh());
  return session;
}

export function getSession(): Session {
  const session = getContext<Session | undefined>(KEY);
  if (!session) throw new Error('getSession() needs the root layout to call setSession() first');
  return session;
}
