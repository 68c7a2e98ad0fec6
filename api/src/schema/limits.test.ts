import { GraphQLError, Kind, parse, type DocumentNode, type ExecutionArgs } from 'graphql';
import { describe, expect, it } from 'vitest';
import { schema } from './index.js';
import { MAX_PAGE_SIZE } from './builder.js';
import { DocumentCache, measureCached, measureOperation, prepareOperation } from './limits.js';

const prepare = (query: string, opts: { introspection?: boolean; variables?: Record<string, unknown> } = {}) =>
  prepareOperation(schema, { query, variables: opts.variables }, {}, { introspection: opts.introspection ?? false });

const documentOf = (prepared: ReturnType<typeof prepare>) => {
  if (Array.isArray(prepared)) throw new Error(`refused: ${(prepared as GraphQLError[]).map((e) => e.message).join('; ')}`);
  return (prepared as ExecutionArgs).document;
};

const codes = (prepared: ReturnType<typeof prepare>) =>
  Array.isArray(prepared) ? (prepared as GraphQLError[]).map((e) => e.extensions.code) : 'accepted';

describe('prepareOperation: one parsed and validated document per query text', () => {
  it('serves the same text from the cache, and never one document for another text', () => {
    const text = 'subscription($runId: ID!) { runEvents(runId: $runId) { seq type } }';
    const first = documentOf(prepare(text, { variables: { runId: 'a' } }));
    expect(documentOf(prepare(text, { variables: { runId: 'b' } }))).toBe(first);
    const other = documentOf(prepare('subscription($runId: ID!) { runEvents(runId: $runId) { seq text } }'));
    expect(other).not.toBe(first);
    expect(JSON.stringify(other)).toContain('"text"');
    expect(JSON.stringify(first)).not.toContain('"text"');
  });

  it('checks introspection per setting: a document accepted where it is allowed is still refused where it is not', () => {
    const text = '{ __schema { queryType { name } } }';
    expect(codes(prepare(text, { introspection: true }))).toBe('accepted');
    const refused = codes(prepare(text, { introspection: false }));
    expect(refused.length).toBeGreaterThan(0);
    expect(new Set(refused)).toEqual(new Set(['GRAPHQL_VALIDATION_FAILED']));
    expect(codes(prepare(text, { introspection: true }))).toBe('accepted');
  });

  it('refuses invalid documents every time, with their codes', () => {
    for (let i = 0; i < 2; i++) {
      expect(codes(prepare('{ health { ok '))).toEqual(['GRAPHQL_PARSE_FAILED']);
      expect(codes(prepare('{ health { nope } }'))).toEqual(['GRAPHQL_VALIDATION_FAILED']);
    }
  });

  it('applies the cost limits on every operation, cached document or not', () => {
    const broad = `query($all: Boolean!) { health { ok @include(if: $all) ${'ok '.repeat(150)} } }`;
    for (const all of [true, false, true]) expect(codes(prepare(broad, { variables: { all } }))).toEqual(['QUERY_BREADTH']);
    expect(codes(prepare('query($all: Boolean!) { health { ok @include(if: $all) } }', { variables: { all: true } }))).toBe('accepted');
  });
});

describe('DocumentCache', () => {
  const doc = parse('{ health { ok } }');

  it('keeps the most recently used entries, bounded by count', () => {
    const cache = new DocumentCache(2, 1_000);
    cache.set('a', doc);
    cache.set('b', doc);
    expect(cache.get('a')).toBe(doc); // a is now the most recent
    cache.set('c', doc);
    expect([cache.get('a'), cache.get('b'), cache.get('c')]).toEqual([doc, undefined, doc]);
    expect(cache.size).toBe(2);
  });

  it('is bounded by the total length of the texts, and does not keep a text too large for it', () => {
    const cache = new DocumentCache(100, 800);
    cache.set('x'.repeat(90), doc);
    cache.set('y'.repeat(90), doc);
    expect(cache.size).toBe(2);
    cache.set('z'.repeat(101), doc); // over an eighth of the budget
    expect(cache.size).toBe(2);
    for (let i = 0; i < 10; i++) cache.set(`${i}`.repeat(90), doc);
    expect(cache.size).toBe(8);
    expect(cache.get('x'.repeat(90))).toBeUndefined();
  });
});

describe('operation cost: a connection costs its page size', () => {
  const cost = (query: string, variables?: Record<string, unknown>) => measureOperation(schema, parse(query), { context: {}, variables });
  const nested = (first: number) =>
    `{ viewer { organizations(first: ${first}) { edges { node { projects(first: ${first}) { edges { node { agents(first: ${first}) { edges { node { id name model } } } } } } } } } } }`;

  it('lets small nested pages through and refuses large ones', () => {
    expect(cost(nested(1))).toMatchObject({ errors: [] });
    expect(cost(nested(1)).cost!.requested).toBeLessThan(50);
    const large = cost(nested(100));
    expect(large.errors.map((e) => e.extensions.code)).toEqual(['QUERY_COMPLEXITY']);
    expect(large.cost!.requested).toBeGreaterThan(1_000_000);
    // The page size counts whether it is written in the document or passed as a variable.
    const viaVariable = cost('query($n: Int) { viewer { organizations(first: $n) { edges { node { id } } } } }', { n: 7 });
    expect(viaVariable.cost!.requested).toBe(cost('{ viewer { organizations(first: 7) { edges { node { id } } } } }').cost!.requested);
  });

  it('measures a document once per page size, whatever its other variables', () => {
    const document = parse('query($n: Int, $after: String) { viewer { organizations(first: $n, after: $after) { edges { node { id name } } } } }');
    const measure = (variables: Record<string, unknown>) => measureCached(schema, document, {}, { variables });
    const seven = measure({ n: 7, after: 'a' });
    expect(seven.cost!.requested).toBe(cost('{ viewer { organizations(first: 7) { edges { node { id name } } } } }').cost!.requested);
    expect(measure({ n: 7, after: 'b' })).toBe(seven);
    const hundred = measure({ n: 100, after: 'a' });
    expect(hundred).not.toBe(seven);
    expect(hundred.cost!.requested).toBeGreaterThan(seven.cost!.requested);
  });

  it('keeps every operation the SDK and the web app ship within the limits, at their largest page', async () => {
    const modules = [await import('../../../sdk/src/_generated/graphql.js'), await import('../../../web/src/lib/graphql/_generated/graphql.js')];
    const measured: string[] = [];
    for (const module of modules) {
      for (const [name, value] of Object.entries(module)) {
        const document = value as DocumentNode;
        const operation = document?.kind === Kind.DOCUMENT ? document.definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION) : undefined;
        if (!operation || operation.kind !== Kind.OPERATION_DEFINITION) continue;
        // Required variables get a value of their type; every page size is the largest there is.
        const variables: Record<string, unknown> = {};
        for (const v of operation.variableDefinitions ?? []) {
          const list = (v.type.kind === Kind.NON_NULL_TYPE ? v.type.type : v.type).kind === Kind.LIST_TYPE;
          let type = v.type;
          while (type.kind !== Kind.NAMED_TYPE) type = type.type;
          const key = v.variable.name.value;
          const t = type.name.value;
          // A list (say, event types to keep) may be empty.
          variables[key] = list ? [] : key === 'first' ? MAX_PAGE_SIZE : t === 'Int' ? 1 : t === 'Boolean' ? false : t === 'DateTime' ? new Date().toISOString() : t === 'UsageGroupBy' ? 'DAY' : t === 'ID' || t === 'String' ? 'x' : {};
        }
        const result = measureOperation(schema, document, { context: {}, variables });
        expect(result.errors.map((e) => e.message), name).toEqual([]);
        // A mutation's input object cannot be made up here (its cost is then left to execution); they select payloads, not pages.
        if (operation.operation === 'mutation' && result.cost === null) continue;
        expect(result.cost, name).not.toBeNull();
        measured.push(name);
      }
    }
    expect(measured.length).toBeGreaterThan(40);
  });
});
