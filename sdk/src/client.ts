import { HealthDocument, type HealthQuery } from './_generated/graphql.js';
import {
  activityApi,
  agentsApi,
  invitationsApi,
  membersApi,
  organizationsApi,
  projectsApi,
  providersApi,
  tokensApi,
  viewerApi,
  type AccountEvent,
  type Viewer,
} from './resources.js';
import { budgetsApi, usageApi } from './budgets.js';
import { runsApi } from './runs.js';
import type { Paginated } from './pagination.js';
import { createTransport, type ClientOptions, type RequestOptions, type Transport } from './transport.js';

export interface HubClient extends Transport {
  /** The API's public health report; needs no token. */
  health(options?: RequestOptions): Promise<HealthQuery['health']>;
  /** The signed-in account with its API tokens and organizations. */
  viewer(options?: RequestOptions): Promise<Viewer>;
  /**
   * Your account's own record, newest first: sign-ins, failed sign-in attempts, API tokens created and revoked.
   * `options` apply to each page's request.
   */
  activity(options?: RequestOptions): Paginated<AccountEvent>;
  tokens: ReturnType<typeof tokensApi>;
  organizations: ReturnType<typeof organizationsApi>;
  members: ReturnType<typeof membersApi>;
  invitations: ReturnType<typeof invitationsApi>;
  projects: ReturnType<typeof projectsApi>;
  providers: ReturnType<typeof providersApi>;
  agents: ReturnType<typeof agentsApi>;
  runs: ReturnType<typeof runsApi>;
  budgets: ReturnType<typeof budgetsApi>;
  usage: ReturnType<typeof usageApi>;
}

/** Creates a client for one API endpoint and credential. Call `close()` when done if you used subscriptions. */
export function createClient(options: ClientOptions): HubClient {
  const transport = createTransport(options);
  return {
    ...transport,
    async health(requestOptions?: RequestOptions) {
      return (await transport.request(HealthDocument, {}, requestOptions)).health;
    },
    viewer: viewerApi(transport),
    activity: activityApi(transport),
    tokens: tokensApi(transport),
    organizations: organizationsApi(transport),
    members: membersApi(transport),
    invitations: invitationsApi(transport),
    projects: projectsApi(transport),
    providers: providersApi(transport),
    agents: agentsApi(transport),
    runs: runsApi(transport),
    budgets: budgetsApi(transport),
    usage: usageApi(transport),
  };
}
