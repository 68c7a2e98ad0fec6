export { createClient, type HubClient } from './client.js';
export type { ClientOptions, RequestOptions, SubscribeOptions, Transport } from './transport.js';
export type { List, Page, PageArgs, Paginated } from './pagination.js';
export type {
  AccountEvent,
  Agent,
  ApiToken,
  Invitation,
  InvitationPreview,
  Membership,
  Organization,
  OrganizationDetails,
  Project,
  ProjectDetails,
  ProviderStatus,
  User,
  Viewer,
} from './resources.js';
export {
  isTerminalEvent,
  startsOver,
  TERMINAL_RUN_STATUSES,
  type ReconnectOptions,
  type Run,
  type RunErrorEvent,
  type RunEvent,
  type RunHandoffEvent,
  type RunLogEvent,
  type RunStatusEvent,
  type RunTokenEvent,
  type RunUpdate,
  type RunUsageEvent,
  type StreamOptions,
} from './runs.js';
export type { Budget, UsageReport } from './budgets.js';
export * from './errors.js';
// Every operation as a typed document (for `client.request` / `client.subscribe`), plus enums and input types.
export * from './_generated/graphql.js';
