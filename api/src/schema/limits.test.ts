import { GraphQLError, parse, type ExecutionArgs } from 'graphql';
import { describe, expect, it } from 'vitest';
import { schema } from './index.js';
import { DocumentCache, prepareOperation } from './limits.js';

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
