/** Domain errors. Expected failures are returned as typed GraphQL results; anything else thrown is a bug. */

export class AppError extends Error {
  /** Stable machine-readable code, also put in `extensions.code` when thrown outside a typed union. */
  readonly code: string = 'APP_ERROR';

  /** graphql-js copies an error's `extensions` onto the GraphQL error, on HTTP and WebSocket alike. */
  get extensions(): Record<string, unknown> {
    return { code: this.code };
  }
}

export class NotFoundError extends AppError {
  override readonly code = 'NOT_FOUND';
  constructor(public readonly entity = 'Object') {
    super(`${entity} not found`);
    this.name = 'NotFoundError';
  }
}

export class UnauthenticatedError extends AppError {
  override readonly code = 'UNAUTHENTICATED';
  constructor(message = 'You must be signed in') {
    super(message);
    this.name = 'UnauthenticatedError';
  }
}

export class ForbiddenError extends AppError {
  override readonly code = 'FORBIDDEN';
  constructor(message = 'You do not have permission to do this') {
    super(message);
    this.name = 'ForbiddenError';
  }
}

/**
 * PostgreSQL refused text it cannot store (U+0000, SQLSTATE 22021), from the pg driver or through Prisma's
 * driver adapter: the caller's input, e.g. a lookup by a name holding a NUL, not a bug.
 */
export function isUnstorableText(err: unknown): boolean {
  const e = err as { code?: unknown; meta?: { driverAdapterError?: { cause?: { code?: unknown } } } } | null;
  return e?.code === '22021' || e?.meta?.driverAdapterError?.cause?.code === '22021';
}

export interface FieldIssue {
  path: string[];
  message: string;
}

export class ValidationError extends AppError {
  override readonly code = 'VALIDATION_FAILED';
  constructor(public readonly issues: FieldIssue[]) {
    super(issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; '));
    this.name = 'ValidationError';
  }
  static field(path: string, message: string) {
    return new ValidationError([{ path: path.split('.'), message }]);
  }
}

export class ConflictError extends AppError {
  override readonly code = 'CONFLICT';
  /** The input field the conflict is about (e.g. `email`), when it is about one. */
  constructor(
    message: string,
    public readonly field: string | null = null,
  ) {
    super(message);
    this.name = 'ConflictError';
  }
}

export class RateLimitedError extends AppError {
  override readonly code = 'RATE_LIMITED';
  constructor(public readonly retryAfterSeconds: number) {
    super(`Too many requests; retry in ${retryAfterSeconds} s`);
    this.name = 'RateLimitedError';
  }

  override get extensions() {
    return { code: this.code, retryAfterSeconds: this.retryAfterSeconds };
  }
}
