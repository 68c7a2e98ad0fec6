import { gql } from './harness.js';

/**
 * An owner signed up on a hub process that runs on a database of its own (so the test cannot build data
 * in it directly), over HTTP only: its API token, organization, project and an offline agent.
 */
export async function anOwnerOnProcess(url: string, email: string) {
  const signUp = await gql(url, `mutation($e: String!) { signUp(input: { email: $e, password: "long enough pw", name: "Owner" }) { __typename } }`, { e: email });
  const cookie = signUp.headers.get('set-cookie')!.split(';')[0]!;
  const token = (await gql(url, `mutation { createApiToken(input: { name: "t" }) { ... on CreateApiTokenPayload { secret } } }`, {}, { cookie })).data!.createApiToken
    .secret as string;
  const as = (query: string, variables: Record<string, unknown> = {}) => gql(url, query, variables, { token });
  const organizationId = (await as(`mutation { createOrganization(input: { name: "Remote Co" }) { ... on CreateOrganizationPayload { organization { id } } } }`)).data!
    .createOrganization.organization.id as string;
  const projectId = (
    await as(`mutation($o: ID!) { createProject(input: { organizationId: $o, name: "P" }) { ... on CreateProjectPayload { project { id } } } }`, { o: organizationId })
  ).data!.createProject.project.id as string;
  const agentId = (
    await as(
      `mutation($p: ID!) { createAgent(input: { projectId: $p, name: "A", provider: OFFLINE, model: "offline-small" }) { ... on CreateAgentPayload { agent { id } } } }`,
      { p: projectId },
    )
  ).data!.createAgent.agent.id as string;
  return { token, as, organizationId, projectId, agentId };
}
