import type { ApolloServerPlugin } from '@apollo/server';
import { createComplexityRule } from '@pothos/plugin-complexity';
import {
  GraphQLError,
  Kind,
  NoSchemaIntrospectionCustomRule,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type GraphQLSchema,
  type ParseOptions,
  type ValidationRule,
  visit,
} from 'graphql';
import { QUERY_LIMITS } from './builder.js';

/** Lexical tokens one document may contain; the largest operation the SDK ships has under 400. */
export const MAX_TOKENS = 3_000;
/** Aliased fields one document may contain: aliases are how one request asks for the same costly field many times. */
export const MAX_ALIASES = 20;

export const PARSE_OPTIONS: ParseOptions = { maxTokens: MAX_TOKENS };

/** Rejects documents with more than `max` aliased fields, counted across operations and fragments. */
export function maxAliasesRule(max = MAX_ALIASES): ValidationRule {
  return (context) => {
    let aliases = 0;
    return {
      Field(node) {
        if (node.alias && ++aliases === max + 1) {
          context.reportError(
            new GraphQLError(`The document uses more than ${max} aliases`, { nodes: node, extensions: { code: 'TOO_MANY_ALIASES' } }),
          );
        }
      },
    };
  };
}

/** Validation rules that only depend on the document, added to GraphQL's own. */
export const LIMIT_RULES: ValidationRule[] = [maxAliasesRule()];

/** The estimated cost of one operation against its limit, reported as `extensions.cost`. */
export interface QueryCost {
  requested: number;
  limit: number;
  depth: number;
  breadth: number;
}

const LIMIT_ORDER = ['QUERY_DEPTH', 'QUERY_BREADTH', 'QUERY_COMPLEXITY'];

interface Measured {
  cost: QueryCost | null;
  errors: GraphQLError[];
}

/**
 * Measures the selected operation with the schema's complexity settings (the same numbers the
 * Pothos complexity plugin enforces at execution) and returns the limit errors, if any. Variable
 * problems are left to execution, which reports them in its usual form.
 */
export function measureOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  request: { context: object; variables?: Record<string, unknown> | null; operationName?: string | null },
): Measured {
  let measured: Measured = { cost: null, errors: [] };
  validate(schema, document, [
    createComplexityRule({
      context: request.context,
      variableValues: request.variables ?? {},
      operationName: request.operationName ?? undefined,
      maxComplexity: QUERY_LIMITS.complexity,
      maxDepth: QUERY_LIMITS.depth,
      maxBreadth: QUERY_LIMITS.breadth,
      onResult: (result, errors) => {
        measured = {
          cost: { requested: result.complexity, limit: QUERY_LIMITS.complexity, depth: result.depth, breadth: result.breadth },
          // Shape before cost, as the Pothos plugin checks them: "too deep" explains a huge cost better than the cost does.
          errors: [...errors].sort((a, b) => LIMIT_ORDER.indexOf(String(a.extensions.code)) - LIMIT_ORDER.indexOf(String(b.extensions.code))),
        };
      },
    }),
  ]);
  return measured;
}

/**
 * Rejects operations over the cost, depth or breadth limit before anything runs, and reports the
 * measured cost of every operation in the response's `extensions.cost` (GitHub/Shopify style).
 */
export function queryCostPlugin<TContext extends object>(): ApolloServerPlugin<TContext> {
  return {
    async requestDidStart() {
      let cost: QueryCost | null = null;
      return {
        async didResolveOperation({ schema, document, request, contextValue, operation }) {
          // Without a selectable operation, execution reports the problem itself.
          if (!operation) return;
          const measured = measureCached(schema, document, contextValue, { variables: request.variables, operationName: operation.name?.value });
          cost = measured.cost;
          const [first] = measured.errors;
          if (first) throw new GraphQLError(first.message, { extensions: { ...first.extensions, http: { status: 400 } } });
        },
        async willSendResponse({ response }) {
          if (cost && response.body.kind === 'single') {
            response.body.singleResult.extensions = { ...response.body.singleResult.extensions, cost };
          }
        },
      };
    },
  };
}

/**
 * A bounded LRU of valid documents by query text, per schema and introspection setting: clients repeat the
 * same few operations (1,000 subscribers of one run send one text), so each is parsed and validated once.
 * Bounded by count and by the total length of the texts, which a client controls.
 */
export class DocumentCache {
  private readonly entries = new Map<string, DocumentNode>();
  private chars = 0;

  constructor(
    readonly maxEntries = 500,
    readonly maxChars = 512 * 1024,
  ) {}

  get size() {
    return this.entries.size;
  }

  get(key: string): DocumentNode | undefined {
    const document = this.entries.get(key);
    if (document) {
      // Most recently used last.
      this.entries.delete(key);
      this.entries.set(key, document);
    }
    return document;
  }

  set(key: string, document: DocumentNode): void {
    if (key.length > this.maxChars / 8 || this.entries.has(key)) return;
    this.entries.set(key, document);
    this.chars += key.length;
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries && this.chars <= this.maxChars) break;
      this.entries.delete(oldest);
      this.chars -= oldest.length;
    }
  }
}

const documentCaches = new WeakMap<GraphQLSchema, DocumentCache>();

/** Parses and validates `query`, or returns the request errors; valid documents come from the cache. */
function validDocument(schema: GraphQLSchema, query: string, introspection: boolean): DocumentNode | readonly GraphQLError[] {
  let cache = documentCaches.get(schema);
  if (!cache) documentCaches.set(schema, (cache = new DocumentCache()));
  const key = (introspection ? 'i:' : 'n:') + query;
  const cached = cache.get(key);
  if (cached) return cached;
  let document: DocumentNode;
  try {
    document = parse(query, PARSE_OPTIONS);
  } catch (err) {
    return [withCode(err instanceof GraphQLError ? err : new GraphQLError(String(err)), 'GRAPHQL_PARSE_FAILED')];
  }
  const rules = [...specifiedRules, ...LIMIT_RULES, ...(introspection ? [] : [NoSchemaIntrospectionCustomRule])];
  const invalid = validate(schema, document, rules);
  if (invalid.length > 0) return invalid.map((e) => withCode(e, 'GRAPHQL_VALIDATION_FAILED'));
  cache.set(key, document);
  return document;
}

const MEASURES_PER_DOCUMENT = 64;
const measures = new WeakMap<DocumentNode, Map<string, Measured>>();
const sizeVariables = new WeakMap<DocumentNode, string[]>();

/**
 * The variables a document passes as a page size (`first` / `last`): the only arguments the cost reads
 * (see `connectionAwareComplexity` in builder.ts), so the only variables a measure depends on.
 */
function pageSizeVariables(document: DocumentNode): string[] {
  let names = sizeVariables.get(document);
  if (!names) {
    const found = new Set<string>();
    visit(document, {
      Argument(node) {
        if ((node.name.value === 'first' || node.name.value === 'last') && node.value.kind === Kind.VARIABLE) found.add(node.value.name.value);
      },
    });
    sizeVariables.set(document, (names = [...found]));
  }
  return names;
}

/**
 * `measureOperation` for a cached document, remembered per operation and page-size variables (the cost
 * depends on them and on nothing else: no field's complexity in this schema reads the context or another
 * argument). So a mutation sent with new input every time is measured once.
 */
export function measureCached(
  schema: GraphQLSchema,
  document: DocumentNode,
  context: object,
  request: { variables?: Record<string, unknown> | null; operationName?: string | null },
): Measured {
  let byRequest = measures.get(document);
  if (!byRequest) measures.set(document, (byRequest = new Map()));
  const sizes = pageSizeVariables(document).map((name) => request.variables?.[name] ?? null);
  const key = `${request.operationName ?? ''}\u0000${JSON.stringify(sizes)}`;
  let measured = byRequest.get(key);
  if (!measured) {
    measured = measureOperation(schema, document, { context, ...request });
    // Not measured (variables that do not fit the operation, left to execution): nothing to remember.
    if (measured.cost === null) return measured;
    if (byRequest.size >= MEASURES_PER_DOCUMENT) byRequest.clear();
    byRequest.set(key, measured);
  }
  return measured;
}

/**
 * The same parse, validation and cost checks for operations that arrive over graphql-ws, which
 * does not go through Apollo's pipeline. Returns the execution arguments or the errors to send.
 * Identical query texts share one parsed document (never modified by execution).
 */
export function prepareOperation(
  schema: GraphQLSchema,
  payload: { query: string; variables?: Record<string, unknown> | null; operationName?: string | null },
  contextValue: object,
  { introspection }: { introspection: boolean },
): ExecutionArgs | readonly GraphQLError[] {
  const document = validDocument(schema, payload.query, introspection);
  if (!('kind' in document)) return document;
  const measured = measureCached(schema, document, contextValue, payload);
  if (measured.errors.length > 0) return measured.errors;
  return {
    schema,
    document,
    contextValue,
    variableValues: payload.variables ?? undefined,
    operationName: payload.operationName ?? undefined,
  };
}

/** Request errors carry the same codes as over HTTP, so clients (and the error formatter) can tell them from bugs. */
const withCode = (error: GraphQLError, code: string) =>
  error.extensions.code ? error : new GraphQLError(error.message, { nodes: error.nodes, source: error.source, positions: error.positions, extensions: { ...error.extensions, code } });
