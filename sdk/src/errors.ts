/**
 * The codes a HubError carries: those of the SDK's own classes and failures, and those the API gives
 * errors that have no class of their own (they come through as a plain HubError). `string & {}` keeps a
 * code that a newer API adds usable, without it swallowing the known ones in `switch (err.code)`.
 */
export type HubErrorCode =
  // Each with its own class below.
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'VALIDATION_FAILED'
  | 'CONFLICT'
  | 'RATE_LIMITED'
  | 'BUDGET_EXCEEDED'
  | 'NETWORK_ERROR'
  // The SDK's own, as plain HubErrors.
  | 'CLIENT_CLOSED'
  | 'NO_WEBSOCKET'
  | 'WEBSOCKET_PROTOCOL_ERROR'
  | 'HUB_ERROR'
  // The API's request-level refusals and failures.
  | 'BAD_REQUEST'
  | 'PAYLOAD_TOO_LARGE'
  | 'GRAPHQL_PARSE_FAILED'
  | 'GRAPHQL_VALIDATION_FAILED'
  | 'QUERY_DEPTH'
  | 'QUERY_BREADTH'
  | 'QUERY_COMPLEXITY'
  | 'TOO_MANY_ALIASES'
  | 'TOO_MANY_OPERATIONS'
  | 'INTERNAL_SERVER_ERROR'
  | (string & {});

/**
 * Every error the SDK throws is a HubError (but a call stopped by its AbortSignal rejects with the signal's
 * reason); narrow with `instanceof` or by `code`.
 */
export class HubError extends Error {
  constructor(
    message: string,
    public readonly code: HubErrorCode = 'HUB_ERROR',
    public readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'HubError';
  }
}

/** Missing, invalid, expired or revoked credentials (HTTP 401, WebSocket close 4401/4403). */
export class UnauthorizedError extends HubError {
  declare readonly code: 'UNAUTHENTICATED';
  constructor(message = 'Unauthorized') {
    super(message, 'UNAUTHENTICATED');
    this.name = 'UnauthorizedError';
  }
}

/** Signed in, but the role does not allow the action. */
export class ForbiddenError extends HubError {
  declare readonly code: 'FORBIDDEN';
  constructor(message = 'Forbidden') {
    super(message, 'FORBIDDEN');
    this.name = 'ForbiddenError';
  }
}

/** The object does not exist, or it belongs to an organization you are not a member of. */
export class NotFoundError extends HubError {
  declare readonly code: 'NOT_FOUND';
  constructor(message = 'Not found') {
    super(message, 'NOT_FOUND');
    this.name = 'NotFoundError';
  }
}

/** Too many requests; wait `retryAfterSeconds` before trying again. */
export class RateLimitedError extends HubError {
  declare readonly code: 'RATE_LIMITED';
  constructor(
    message: string,
    public readonly retryAfterSeconds: number,
  ) {
    super(message, 'RATE_LIMITED', { retryAfterSeconds });
    this.name = 'RateLimitedError';
  }
}

/**
 * The API closed a WebSocket with 4429 because your user has as many connections open as it allows. That
 * close carries no delay, so `retryAfterSeconds` is the SDK's own: by then another of your connections may
 * have closed. A stream waits it out and retries, as for any rate limit, and throws this once its reconnect
 * attempts are spent. (A 4429 for too many bad credentials from this address says when to try again, "…;
 * retry in 12 s": that one is a plain `RateLimitedError` with the API's delay.)
 */
export class TooManyConnectionsError extends RateLimitedError {
  /** The WebSocket close code. */
  readonly closeCode = 4429;

  constructor(message = 'Too many open WebSocket connections for this user') {
    super(message, 5);
    this.name = 'TooManyConnectionsError';
  }
}

export interface FieldIssue {
  path: string[];
  message: string;
}

/** Input was rejected; `issues` name the offending fields inside `input`. */
export class ValidationError extends HubError {
  declare readonly code: 'VALIDATION_FAILED';
  constructor(
    message: string,
    public readonly issues: FieldIssue[],
  ) {
    super(message, 'VALIDATION_FAILED', { issues });
    this.name = 'ValidationError';
  }
}

/** The change clashes with existing data, e.g. the email is taken or the person is already a member. */
export class ConflictError extends HubError {
  declare readonly code: 'CONFLICT';
  constructor(
    message = 'Conflict',
    /** The input field the conflict is about (e.g. `email`), when it is about one. */
    public readonly field: string | null = null,
  ) {
    super(message, 'CONFLICT', field ? { field } : undefined);
    this.name = 'ConflictError';
  }
}

/** The API could not be reached, or the WebSocket closed unexpectedly. Safe to retry. */
export class NetworkError extends HubError {
  declare readonly code: 'NETWORK_ERROR';
  constructor(
    message: string,
    /** The WebSocket close code, when a socket closed. */
    public readonly closeCode?: number,
    options?: { cause?: unknown },
  ) {
    super(message, 'NETWORK_ERROR', closeCode === undefined ? {} : { closeCode }, options);
    this.name = 'NetworkError';
  }
}

/**
 * No answer came within the client's `timeoutMs` (or the call's own): the API hangs, or the network path to it
 * does. A NetworkError, so code that retries those retries this too; but a mutation may have been carried out
 * all the same (see `runs.start`'s `idempotencyKey`).
 */
export class TimeoutError extends NetworkError {
  constructor(
    message: string,
    public readonly timeoutMs: number,
  ) {
    super(message);
    this.name = 'TimeoutError';
  }
}

/** The shape every typed GraphQL error shares (the `MutationErrors` fragment). */
export interface TypedErrorResult {
  __typename: string;
  message: string;
  code: HubErrorCode;
  issues?: FieldIssue[];
  retryAfterSeconds?: number;
  [key: string]: unknown;
}

type ErrorFactory = (e: TypedErrorResult) => HubError;
const factories = new Map<string, ErrorFactory>([
  ['UnauthenticatedError', (e) => new UnauthorizedError(e.message)],
  ['ForbiddenError', (e) => new ForbiddenError(e.message)],
  ['NotFoundError', (e) => new NotFoundError(e.message)],
  ['RateLimitedError', (e) => new RateLimitedError(e.message, e.retryAfterSeconds ?? 1)],
  ['ValidationError', (e) => new ValidationError(e.message, e.issues ?? [])],
  ['ConflictError', (e) => new ConflictError(e.message, typeof e.field === 'string' ? e.field : null)],
]);

/** Lets later modules (budgets, …) map their own typed errors to classes. */
export function registerErrorType(typename: string, factory: ErrorFactory) {
  factories.set(typename, factory);
}

/** Converts a typed error result (from a mutation's union) into the matching error class. */
export function errorFromResult(e: TypedErrorResult): HubError {
  return factories.get(e.__typename)?.(e) ?? new HubError(e.message, e.code, e);
}

/** Converts a top-level GraphQL error (e.g. a 401 or a query-cost rejection) into an error class. */
export function errorFromGraphQL(err: { message: string; extensions?: Record<string, unknown> }, status?: number): HubError {
  const code = (err.extensions?.code as HubErrorCode | undefined) ?? (status === 401 ? 'UNAUTHENTICATED' : 'HUB_ERROR');
  switch (code) {
    case 'UNAUTHENTICATED':
      return new UnauthorizedError(err.message);
    case 'FORBIDDEN':
      return new ForbiddenError(err.message);
    case 'NOT_FOUND':
      return new NotFoundError(err.message);
    case 'CONFLICT':
      return new ConflictError(err.message);
    case 'RATE_LIMITED':
      return new RateLimitedError(err.message, Number(err.extensions?.retryAfterSeconds ?? 1));
    // BAD_USER_INPUT: variables the server could not coerce (an unknown enum value, a malformed DateTime).
    case 'VALIDATION_FAILED':
    case 'BAD_USER_INPUT':
      return new ValidationError(err.message, (err.extensions?.issues as FieldIssue[] | undefined) ?? []);
    default:
      return new HubError(err.message, code, err.extensions ?? {});
  }
}

type ErrorVariant = { __typename: string; code: string; message: string };

/** Returns a mutation's payload, or throws the typed error its result union resolved to. */
export function unwrap<T extends { __typename: string }>(result: T): Exclude<T, ErrorVariant> {
  if ('code' in result && 'message' in result && result.__typename.endsWith('Error')) {
    throw errorFromResult(result as unknown as TypedErrorResult);
  }
  return result as Exclude<T, ErrorVariant>;
}

/** A run was BLOCKED: its worst-case cost did not fit a budget. Money fields are micro-dollar strings. */
export class BudgetExceededError extends HubError {
  declare readonly code: 'BUDGET_EXCEEDED';
  constructor(
    message: string,
    public readonly period: 'DAILY' | 'MONTHLY',
    public readonly limit: string,
    public readonly spent: string,
    public readonly reserved: string,
    public readonly requested: string,
    /** When the budget's period ends (ISO 8601). */
    public readonly resetsAt: string,
    public readonly projectScoped: boolean,
  ) {
    super(message, 'BUDGET_EXCEEDED', { period, limit, spent, reserved, requested, resetsAt, projectScoped });
    this.name = 'BudgetExceededError';
  }

  static fromResult(e: {
    message: string;
    period: 'DAILY' | 'MONTHLY';
    limit: string;
    spent: string;
    reserved: string;
    requested: string;
    resetsAt: string;
    projectScoped: boolean;
  }) {
    return new BudgetExceededError(e.message, e.period, e.limit, e.spent, e.reserved, e.requested, e.resetsAt, e.projectScoped);
  }
}
