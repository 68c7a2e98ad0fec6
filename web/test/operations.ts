// GraphQL operations the browser tests use to set up their data through the real API.

export const SIGN_UP = /* GraphQL */ `
  mutation ($input: SignUpInput!) {
    signUp(input: $input) { __typename ... on Error { message } }
  }
`;
export const CREATE_ORG = /* GraphQL */ `
  mutation ($input: CreateOrganizationInput!) {
    createOrganization(input: $input) { __typename ... on CreateOrganizationPayload { organization { id slug } } ... on Error { message } }
  }
`;
export const CREATE_PROJECT = /* GraphQL */ `
  mutation ($input: CreateProjectInput!) {
    createProject(input: $input) { __typename ... on CreateProjectPayload { project { id } } ... on Error { message } }
  }
`;
export const CREATE_AGENT = /* GraphQL */ `
  mutation ($input: CreateAgentInput!) {
    createAgent(input: $input) { __typename ... on CreateAgentPayload { agent { id } } ... on Error { message } }
  }
`;
export const START_RUN = /* GraphQL */ `
  mutation ($input: StartRunInput!) {
    startRun(input: $input) { __typename ... on StartRunPayload { run { id } } ... on Error { message } }
  }
`;
export const RETRY_RUN = /* GraphQL */ `
  mutation ($id: ID!) {
    retryRun(input: { id: $id }) { __typename ... on RetryRunPayload { run { id } } ... on Error { message } }
  }
`;
export const INVITE_MEMBER = /* GraphQL */ `
  mutation ($input: InviteMemberInput!) {
    inviteMember(input: $input) { __typename ... on InviteMemberPayload { token } ... on Error { message } }
  }
`;
export const ACCEPT_INVITATION = /* GraphQL */ `
  mutation ($input: AcceptInvitationInput!) {
    acceptInvitation(input: $input) { __typename ... on Error { message } }
  }
`;
