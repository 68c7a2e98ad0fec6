import SchemaBuilder from '@pothos/core';
import ComplexityPlugin from '@pothos/plugin-complexity';
import ErrorsPlugin from '@pothos/plugin-errors';
import PrismaPlugin from '@pothos/plugin-prisma';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import ValidationPlugin from '@pothos/plugin-validation';
import { getNamedType, isListType, isNonNullType, type GraphQLField, type GraphQLOutputType } from 'graphql';
import { getDatamodel } from '../_generated/pothos-prisma-types.js';
import type PrismaTypes from '../_generated/pothos-prisma-types.js';
import type { Role } from '../_generated/prisma/enums.js';
import type { Context } from '../context.js';
import { authScopeInitializer } from './auth.js';
import { PAGE_ERRORS } from './page-errors.js';
import { ForbiddenError, NotFoundError, RateLimitedError, UnauthenticatedError, ValidationError } from '../lib/errors.js';

/** Limits on the shape and cost of one operation (GitHub/Shopify style; cost is reported in `extensions`). */
/** Per operation: complexity is roughly the number of fields resolved, with each connection costed at its page size. */
export const QUERY_LIMITS = { complexity: 10_000, depth: 12, breadth: 120 } as const;
export const MAX_PAGE_SIZE = 100;
/** What a connection is costed at when the request names no page size (the largest default page of any connection). */
const UNSIZED_PAGE = 50;

const isList = (type: GraphQLOutputType): boolean => (isNonNullType(type) ? isList(type.ofType) : isListType(type));

/**
 * Cost of a field: a paged field costs its page size (`first` or `last`, at most what it serves: MAX_PAGE_SIZE,
 * or its own `extensions.maxPageSize`) times what each item selects, and a connection's `edges` list then
 * counts once; any other list is counted as 10 items. So `organizations(first: 1) { … projects(first: 1)
 * { … } }` is cheap, and three nested pages of 100 are not.
 */
function connectionAwareComplexity(args: Record<string, unknown>, _ctx: Context, field: GraphQLField<unknown, Context>) {
  if (field.args.some((a) => a.name === 'first')) {
    const size = typeof args.first === 'number' ? args.first : typeof args.last === 'number' ? args.last : UNSIZED_PAGE;
    const largest = typeof field.extensions.maxPageSize === 'number' ? field.extensions.maxPageSize : MAX_PAGE_SIZE;
    return { field: 1, multiplier: Math.max(0, Math.min(size, largest)) };
  }
  if (!isList(field.type)) return 1;
  return { field: 1, multiplier: getNamedType(field.type).name.endsWith('Edge') ? 1 : 10 };
}

export interface AuthScopes {
  loggedIn: boolean;
  /** Viewer holds at least `role` in the organization. */
  orgRole: { organizationId: string; role: Role };
  /** The viewer is this user. */
  self: string;
}

export const builder = new SchemaBuilder<{
  Context: Context;
  PrismaTypes: PrismaTypes;
  AuthScopes: AuthScopes;
  DefaultFieldNullability: false;
  // A field's `query` may read the database first (Project.runs: where a filtered page resumes).
  AsyncSelections: true;
  Scalars: {
    ID: { Input: string; Output: string };
    DateTime: { Input: Date; Output: Date | string };
    Money: { Input: bigint; Output: bigint | number };
    JSON: { Input: unknown; Output: unknown };
  };
}>({
  // Errors first so authorization failures raised by scope-auth become typed results on mutations.
  plugins: [ErrorsPlugin, ScopeAuthPlugin, PrismaPlugin, RelayPlugin, ValidationPlugin, ComplexityPlugin, PAGE_ERRORS],
  defaultFieldNullability: false,
  scopeAuth: {
    authorizeOnSubscribe: true,
    // Type-level scopes (defense in depth on tenant-owned types) run once per object, not once per field.
    runScopesOnType: true,
    authScopes: authScopeInitializer,
    unauthorizedError: (_parent, ctx) =>
      ctx.viewer ? new ForbiddenError() : new UnauthenticatedError(),
  },
  prisma: {
    client: (ctx) => ctx.prisma,
    dmmf: getDatamodel(),
    exposeDescriptions: true,
    filterConnectionTotalCount: true,
    onUnusedQuery: process.env.NODE_ENV === 'production' ? null : 'warn',
  },
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    // No generic node(id) lookup: every object is fetched through a query that scopes it to the viewer's organizations.
    nodeQueryOptions: false,
    nodesQueryOptions: false,
  },
  // A field opts in with `errors: {}` (plus `types` for domain errors); its type becomes
  // `<Field>Result = <Payload> | ValidationError | NotFoundError | …`.
  errors: {
    defaultTypes: [ValidationError, NotFoundError, UnauthenticatedError, ForbiddenError, RateLimitedError],
    directResult: true,
    defaultUnionOptions: { name: ({ fieldName }) => `${fieldName[0]!.toUpperCase()}${fieldName.slice(1)}Result` },
  },
  complexity: {
    defaultComplexity: 1,
    defaultListMultiplier: 10,
    fieldComplexity: connectionAwareComplexity,
    limit: { ...QUERY_LIMITS },
  },
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

builder.scalarType('DateTime', {
  description: 'A UTC instant as an ISO 8601 string, e.g. 2026-11-24T09:30:00.000Z.',
  serialize: (value) => (value instanceof Date ? value.toISOString() : new Date(value).toISOString()),
  parseValue: (value) => {
    if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(Date.parse(value))) {
      throw new TypeError('DateTime must be an ISO 8601 string such as 2026-11-24T09:30:00Z');
    }
    return new Date(value);
  },
});

/** The largest amount of micro-dollars: PostgreSQL's BIGINT maximum (about $9.2 trillion). */
export const MAX_MONEY_MICROS = 9_223_372_036_854_775_807n;

builder.scalarType('Money', {
  description:
    'An amount of US dollars in integer micro-dollars (1 USD = 1,000,000), encoded as a decimal string to keep full precision.',
  serialize: (value) => BigInt(value).toString(),
  parseValue: (value) => {
    const micros = (typeof value === 'string' || typeof value === 'number') && /^-?\d{1,19}$/.test(String(value)) ? BigInt(value) : null;
    if (micros === null) throw new TypeError('Money must be an integer number of micro-dollars, as a string such as "2500000"');
    // What a BIGINT column holds: no amount the API reads can overflow where it is stored.
    if (micros > MAX_MONEY_MICROS || micros < -MAX_MONEY_MICROS - 1n) throw new TypeError(`Money must be at most ${MAX_MONEY_MICROS} micro-dollars`);
    return micros;
  },
});

builder.scalarType('JSON', {
  description: 'Arbitrary JSON value.',
  serialize: (value) => value,
  parseValue: (value) => value,
});
