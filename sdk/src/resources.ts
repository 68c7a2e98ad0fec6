import {
  AcceptInvitationDocument,
  AgentDocument,
  ApiTokensDocument,
  ArchiveAgentDocument,
  RestoreAgentDocument,
  ArchiveProjectDocument,
  RestoreProjectDocument,
  CreateAgentDocument,
  CreateApiTokenDocument,
  CreateOrganizationDocument,
  CreateProjectDocument,
  DeleteOrganizationDocument,
  InvitationPreviewDocument,
  InviteMemberDocument,
  OrganizationDocument,
  OrganizationInvitationsDocument,
  OrganizationMembersDocument,
  OrganizationProjectsDocument,
  ProjectAgentsDocument,
  ProjectDocument,
  ProvidersDocument,
  RemoveMemberDocument,
  RevokeApiTokenDocument,
  RevokeInvitationDocument,
  UpdateAgentDocument,
  UpdateMemberRoleDocument,
  UpdateOrganizationDocument,
  UpdateProjectDocument,
  ViewerActivityDocument,
  ViewerDocument,
  ViewerOrganizationsDocument,
  type AccountEventFragment,
  type AgentFragment,
  type ApiTokenFragment,
  type CreateAgentInput,
  type CreateApiTokenInput,
  type CreateOrganizationInput,
  type CreateProjectInput,
  type DeleteOrganizationInput,
  type InvitationFragment,
  type InvitationPreviewQuery,
  type InviteMemberInput,
  type MembershipFragment,
  type OrganizationFragment,
  type OrganizationQuery,
  type ProjectFragment,
  type ProjectQuery,
  type ProvidersQuery,
  type UpdateAgentInput,
  type UpdateMemberRoleInput,
  type UpdateOrganizationInput,
  type UpdateProjectInput,
  type UserFragment,
  type ViewerQuery,
} from './_generated/graphql.js';
import { ForbiddenError, NotFoundError, UnauthorizedError, unwrap } from './errors.js';
import { list, paginate, toPage, type List, type Paginated } from './pagination.js';
import type { RequestOptions, Transport } from './transport.js';

export type User = UserFragment;
export type Viewer = NonNullable<ViewerQuery['viewer']>;
export type ApiToken = ApiTokenFragment;
/** One entry of your account's own record (`client.activity()`): `auth.sign_in`, `auth.sign_in_failed`, `token.created`… */
export type AccountEvent = AccountEventFragment;
export type Organization = OrganizationFragment;
/** An organization with the first page of its members and projects. */
export type OrganizationDetails = NonNullable<OrganizationQuery['organization']>;
export type Membership = MembershipFragment;
/** An invitation to join an organization; its link works once, for the invited email, for 7 days. */
export type Invitation = InvitationFragment;
/** What an invitation link offers its holder: the organization, the role, who invited and until when. */
export type InvitationPreview = NonNullable<InvitationPreviewQuery['invitation']>;
export type Project = ProjectFragment;
/** A project with its live queue counts. */
export type ProjectDetails = NonNullable<ProjectQuery['project']>;
export type ProviderStatus = ProvidersQuery['providers'][number];
export type Agent = AgentFragment;

/** Options of `projects.list` and `agents.list`: whether to include archived ones, and each page's request options. */
type ArchivedListOptions = { includeArchived?: boolean | undefined } & RequestOptions;

/** What only a signed-in caller has: without credentials the API answers `viewer: null`, which throws here. */
function signedIn<T>(viewer: T | null | undefined): T {
  if (viewer == null) throw new UnauthorizedError('No credentials: pass a token to createClient');
  return viewer;
}

/** A `get` of something missing (or not yours) throws rather than returning null. */
function found<T>(value: T | null | undefined, what: string): T {
  if (value == null) throw new NotFoundError(`${what} not found`);
  return value;
}

export function viewerApi(t: Transport) {
  /** The signed-in account with its API tokens and (up to 100) organizations. */
  return async (options?: RequestOptions): Promise<Viewer> => {
    return signedIn((await t.request(ViewerDocument, {}, options)).viewer);
  };
}

export function activityApi(t: Transport) {
  /**
   * Your account's own record, newest first: sign-ups, sign-ins and failed sign-in attempts on your email,
   * API tokens created and revoked. What you do in an organization is in its audit log. `options` apply to
   * each page's request.
   */
  return (options?: RequestOptions): Paginated<AccountEvent> =>
    paginate(async (page) => {
      return toPage(signedIn((await t.request(ViewerActivityDocument, page, options)).viewer).activity);
    }, options?.signal);
}

export function tokensApi(t: Transport) {
  return {
    /** Creates an API token. `secret` is shown only in this response: store it now. */
    async create(input: CreateApiTokenInput, options?: RequestOptions): Promise<{ apiToken: ApiToken; secret: string }> {
      const { apiToken, secret } = unwrap((await t.request(CreateApiTokenDocument, { input }, options)).createApiToken);
      return { apiToken, secret };
    },
    /** Revokes one of your tokens; requests made with it fail with UnauthorizedError from then on. */
    async revoke(id: string, options?: RequestOptions): Promise<ApiToken> {
      return unwrap((await t.request(RevokeApiTokenDocument, { input: { id } }, options)).revokeApiToken).apiToken;
    },
    /** Your tokens, newest first, revoked ones included. */
    list(options?: RequestOptions): List<ApiToken> {
      return list(async function* () {
        const { viewer } = await t.request(ApiTokensDocument, {}, options);
        yield* signedIn(viewer).apiTokens;
      }, options?.signal);
    },
  };
}

export function organizationsApi(t: Transport) {
  return {
    async create(input: CreateOrganizationInput, options?: RequestOptions): Promise<Organization> {
      return unwrap((await t.request(CreateOrganizationDocument, { input }, options)).createOrganization).organization;
    },
    /** By slug, with the first page of members and projects. Throws NotFoundError if you are not a member. */
    async get(slug: string, options?: RequestOptions): Promise<OrganizationDetails> {
      return found((await t.request(OrganizationDocument, { slug }, options)).organization, 'Organization');
    },
    async update(input: UpdateOrganizationInput, options?: RequestOptions): Promise<Organization> {
      return unwrap((await t.request(UpdateOrganizationDocument, { input }, options)).updateOrganization).organization;
    },
    /** Deletes the organization and everything in it; `confirmSlug` must repeat its slug. Returns the deleted id. */
    async delete(input: DeleteOrganizationInput, options?: RequestOptions): Promise<string> {
      return unwrap((await t.request(DeleteOrganizationDocument, { input }, options)).deleteOrganization).deletedId;
    },
    /** Organizations you belong to, by name; `options` apply to each page's request. */
    list(options?: RequestOptions): Paginated<Organization> {
      return paginate(async (page) => {
        return toPage(signedIn((await t.request(ViewerOrganizationsDocument, page, options)).viewer).organizations);
      }, options?.signal);
    },
  };
}

export function membersApi(t: Transport) {
  return {
    /**
     * Invites an email address, with or without an account yet. `token` is the secret of the link
     * (`<app>/invitations/<token>`), shown only in this response: pass it on to the invitee, who joins with
     * `invitations.accept`. A pending invitation for the same email is replaced. Throws ConflictError if
     * they are already a member (its `field` is `email`) or the organization already has 100 pending
     * invitations, ForbiddenError above your own role.
     */
    async invite(input: InviteMemberInput, options?: RequestOptions): Promise<{ invitation: Invitation; token: string }> {
      const { invitation, token } = unwrap((await t.request(InviteMemberDocument, { input }, options)).inviteMember);
      return { invitation, token };
    },
    async updateRole(input: UpdateMemberRoleInput, options?: RequestOptions): Promise<Membership> {
      return unwrap((await t.request(UpdateMemberRoleDocument, { input }, options)).updateMemberRole).membership;
    },
    /** Removes a member (or yourself, to leave). Returns the removed membership's id. */
    async remove(membershipId: string, options?: RequestOptions): Promise<string> {
      return unwrap((await t.request(RemoveMemberDocument, { input: { membershipId } }, options)).removeMember).removedId;
    },
    /** Members of an organization (by slug), oldest first; `options` apply to each page's request. */
    list(organizationSlug: string, options?: RequestOptions): Paginated<Membership> {
      return paginate(async (page) => {
        const { organization } = await t.request(OrganizationMembersDocument, { slug: organizationSlug, ...page }, options);
        return toPage(found(organization, 'Organization').members);
      }, options?.signal);
    },
  };
}

export function invitationsApi(t: Transport) {
  return {
    /**
     * Pending invitations of an organization (by slug), newest first. ADMIN and above; others get ForbiddenError.
     * `options` apply to each page's request.
     */
    list(organizationSlug: string, options?: RequestOptions): Paginated<Invitation> {
      return paginate(async (page) => {
        const { organization } = await t.request(OrganizationInvitationsDocument, { slug: organizationSlug, ...page }, options);
        // The API answers a lower role with a FORBIDDEN error (thrown by the transport) and a null list.
        const { invitations } = found(organization, 'Organization');
        if (!invitations) throw new ForbiddenError('Your role cannot see invitations');
        return toPage(invitations);
      }, options?.signal);
    },
    /** Withdraws a pending invitation: its link stops working. Throws ConflictError if it is no longer pending. */
    async revoke(invitationId: string, options?: RequestOptions): Promise<Invitation> {
      return unwrap((await t.request(RevokeInvitationDocument, { input: { invitationId } }, options)).revokeInvitation).invitation;
    },
    /**
     * What a link (or its token) offers, for its holder to decide; works without signing in. Null when the link is
     * unknown, used, revoked or expired.
     */
    async preview(token: string, options?: RequestOptions): Promise<InvitationPreview | null> {
      return (await t.request(InvitationPreviewDocument, { token }, options)).invitation;
    },
    /**
     * Joins the organization through a link (or its token), signed in as the invited email: another account
     * gets ForbiddenError. A link works once; afterwards, or once revoked or expired, NotFoundError.
     */
    async accept(token: string, options?: RequestOptions): Promise<Membership> {
      return unwrap((await t.request(AcceptInvitationDocument, { input: { token } }, options)).acceptInvitation).membership;
    },
  };
}

export function projectsApi(t: Transport) {
  return {
    async create(input: CreateProjectInput, options?: RequestOptions): Promise<Project> {
      return unwrap((await t.request(CreateProjectDocument, { input }, options)).createProject).project;
    },
    async get(id: string, options?: RequestOptions): Promise<ProjectDetails> {
      return found((await t.request(ProjectDocument, { id }, options)).project, 'Project');
    },
    async update(input: UpdateProjectInput, options?: RequestOptions): Promise<Project> {
      return unwrap((await t.request(UpdateProjectDocument, { input }, options)).updateProject).project;
    },
    async archive(id: string, options?: RequestOptions): Promise<Project> {
      return unwrap((await t.request(ArchiveProjectDocument, { input: { id } }, options)).archiveProject).project;
    },
    /** Brings an archived project back into lists and pickers. */
    async restore(id: string, options?: RequestOptions): Promise<Project> {
      return unwrap((await t.request(RestoreProjectDocument, { input: { id } }, options)).restoreProject).project;
    },
    /**
     * Projects of an organization (by slug), newest first; archived ones only when asked. `signal` and
     * `timeoutMs` apply to each page's request.
     */
    list(organizationSlug: string, { includeArchived, ...options }: ArchivedListOptions = {}): Paginated<Project> {
      return paginate(async (page) => {
        const { organization } = await t.request(OrganizationProjectsDocument, { slug: organizationSlug, includeArchived, ...page }, options);
        return toPage(found(organization, 'Organization').projects);
      }, options.signal);
    },
  };
}

export function providersApi(t: Transport) {
  return {
    /** Every provider with whether this deployment has it configured, and its models and prices. */
    list(options?: RequestOptions): List<ProviderStatus> {
      return list(async function* () {
        yield* (await t.request(ProvidersDocument, {}, options)).providers;
      }, options?.signal);
    },
  };
}

export function agentsApi(t: Transport) {
  return {
    async create(input: CreateAgentInput, options?: RequestOptions): Promise<Agent> {
      return unwrap((await t.request(CreateAgentDocument, { input }, options)).createAgent).agent;
    },
    async get(id: string, options?: RequestOptions): Promise<Agent> {
      return found((await t.request(AgentDocument, { id }, options)).agent, 'Agent');
    },
    async update(input: UpdateAgentInput, options?: RequestOptions): Promise<Agent> {
      return unwrap((await t.request(UpdateAgentDocument, { input }, options)).updateAgent).agent;
    },
    /** Archived agents keep their runs but cannot start new ones. */
    async archive(id: string, options?: RequestOptions): Promise<Agent> {
      return unwrap((await t.request(ArchiveAgentDocument, { input: { id } }, options)).archiveAgent).agent;
    },
    /** Brings an archived agent back, to be run and edited again. */
    async restore(id: string, options?: RequestOptions): Promise<Agent> {
      return unwrap((await t.request(RestoreAgentDocument, { input: { id } }, options)).restoreAgent).agent;
    },
    /**
     * Agents of a project, oldest first; archived ones only when asked. `signal` and `timeoutMs` apply to
     * each page's request.
     */
    list(projectId: string, { includeArchived, ...options }: ArchivedListOptions = {}): Paginated<Agent> {
      return paginate(async (page) => {
        const { project } = await t.request(ProjectAgentsDocument, { projectId, includeArchived, ...page }, options);
        return toPage(found(project, 'Project').agents);
      }, options.signal);
    },
  };
}
