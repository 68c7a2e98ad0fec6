import {
  execute,
  GraphQLEnumType,
  GraphQLInt,
  GraphQLList,
  GraphQLNonNull,
  GraphQLObjectType,
  GraphQLScalarType,
  GraphQLSchema,
  GraphQLString,
  parse,
  validate,
  type ExecutionArgs,
  type ExecutionResult,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { eventPlan } from './event-plan.js';
import { schema as productSchema } from './index.js';

/** What graphql-js gives for the event, as it goes over the wire. */
const byGraphqlJs = (args: ExecutionArgs, event: unknown) => JSON.stringify(execute({ ...args, rootValue: event }) as ExecutionResult);

function argsFor(schema: GraphQLSchema, query: string, variableValues: Record<string, unknown> = {}, operationName?: string): ExecutionArgs {
  const document = parse(query);
  expect(validate(schema, document)).toEqual([]);
  return { schema, document, variableValues, operationName, contextValue: {} };
}

const createdAt = new Date('2026-12-07T10:11:12.345Z');
const runEvents = [
  { runId: 'r', seq: 1, type: 'STATUS', payload: { status: 'QUEUED' }, createdAt },
  { runId: 'r', seq: 2, type: 'STATUS', payload: { status: 'RUNNING', attempt: 2, worker: 'worker-1' }, createdAt },
  { runId: 'r', seq: 3, type: 'TOKEN', payload: { text: 'He said "hi" \\ \u0000 é 😀\n' }, createdAt },
  { runId: 'r', seq: 4, type: 'USAGE', payload: { inputTokens: 3, outputTokens: 5, costMicros: '12' }, createdAt },
  { runId: 'r', seq: 5, type: 'ERROR', payload: { message: 'boom', kind: 'provider' }, createdAt },
  { runId: 'r', seq: 6, type: 'TOKEN', payload: { text: '' }, createdAt },
];

describe('event plans on the product schema (runEvents)', () => {
  const RUN_ID = 'UnVuOjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMA==';
  const documents: [string, string, Record<string, unknown>?, string?][] = [
    ['the web Run page', `subscription S($runId: ID!, $afterSeq: Int) { runEvents(runId: $runId, afterSeq: $afterSeq) { seq type status text payload createdAt } }`, { afterSeq: 0 }],
    ['the SDK (a fragment)', `fragment RunEvent on RunEvent { seq type text status payload createdAt } subscription RunEvents($runId: ID!, $afterSeq: Int) { runEvents(runId: $runId, afterSeq: $afterSeq) { ...RunEvent } }`, { afterSeq: 3 }],
    ['aliases and __typename', `subscription($runId: ID!) { e: runEvents(runId: $runId) { __typename n: seq kind: type t: text } }`],
    ['the same key twice, an inline fragment', `subscription($runId: ID!) { runEvents(runId: $runId) { seq ... on RunEvent { seq text } ... { type } } }`],
    ['@include and @skip from variables', `subscription($runId: ID!, $withText: Boolean!) { runEvents(runId: $runId) { seq text @include(if: $withText) type @skip(if: $withText) payload @skip(if: false) } }`, { withText: true }],
    ['@include false', `subscription($runId: ID!, $withText: Boolean!) { runEvents(runId: $runId) { seq text @include(if: $withText) type @skip(if: $withText) } }`, { withText: false }],
    ['one of two operations', `subscription A($runId: ID!) { runEvents(runId: $runId) { seq } } subscription B($runId: ID!) { runEvents(runId: $runId) { text status } }`, {}, 'B'],
  ];

  for (const [name, query, variables, operationName] of documents) {
    it(`gives graphql-js' result for every event: ${name}`, () => {
      const args = argsFor(productSchema, query, { runId: RUN_ID, ...variables }, operationName);
      const plan = eventPlan(args);
      expect(plan).not.toBeNull();
      for (const event of runEvents) {
        const planned = plan!(event);
        expect(planned).not.toBeNull();
        expect(JSON.stringify(planned)).toBe(byGraphqlJs(args, event));
      }
    });
  }

  it('has no plan for other subscriptions, queries, or invalid variables (graphql-js answers those)', () => {
    expect(eventPlan(argsFor(productSchema, `query { __typename }`))).toBeNull();
    expect(eventPlan(argsFor(productSchema, `subscription($p: ID!) { projectRunUpdates(projectId: $p) { status run { id } } }`, { p: 'x' }))).toBeNull();
    expect(eventPlan(argsFor(productSchema, `subscription($runId: ID!) { runEvents(runId: $runId) { seq } }`, {}))).toBeNull();
    expect(eventPlan(argsFor(productSchema, `subscription($runId: ID!, $a: Int) { runEvents(runId: $runId, afterSeq: $a) { seq } }`, { runId: RUN_ID, a: 'x' }))).toBeNull();
  });
});

describe('event plans on a schema with every awkward case', () => {
  const Mood = new GraphQLEnumType({ name: 'Mood', values: { HAPPY: { value: 'h' }, SAD: { value: 's' } } });
  const Even = new GraphQLScalarType({
    name: 'Even',
    serialize: (v) => {
      if (typeof v !== 'number' || v % 2 !== 0) throw new TypeError(`not even: ${String(v)}`);
      return v;
    },
  });
  const Nothing = new GraphQLScalarType({ name: 'Nothing', serialize: () => undefined });
  type Ev = { n: number; mood?: string; must?: unknown; fails?: boolean; later?: boolean; typed?: boolean; tags?: string[] };
  const Event: GraphQLObjectType<Ev> = new GraphQLObjectType<Ev>({
    name: 'Event',
    isTypeOf: (e: Ev) => e.typed !== false,
    fields: () => ({
      n: { type: new GraphQLNonNull(GraphQLInt) },
      mood: { type: Mood },
      must: { type: new GraphQLNonNull(GraphQLString) },
      even: { type: Even, resolve: (e) => e.n },
      nothing: { type: Nothing, resolve: () => 1 },
      shout: { type: GraphQLString, args: { times: { type: GraphQLInt, defaultValue: 2 } }, resolve: (e, { times }: { times: number }) => `n${e.n}`.repeat(times) },
      fails: { type: GraphQLString, resolve: (e) => (e.fails ? new Error(`failed at ${e.n}`) : 'ok') },
      throws: { type: GraphQLString, resolve: (e) => {
        if (e.fails) throw new Error(`threw at ${e.n}`);
        return 'ok';
      } },
      later: { type: GraphQLString, resolve: (e) => (e.later ? Promise.resolve('later') : 'now') },
      tags: { type: new GraphQLList(GraphQLString) },
      self: { type: Event, resolve: (e) => e },
    }),
  });
  const schema = new GraphQLSchema({
    query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLInt } } }),
    subscription: new GraphQLObjectType({
      name: 'Subscription',
      fields: {
        events: { type: Event, args: { min: { type: GraphQLInt } }, resolve: (e: Ev | null) => e },
        strict: { type: new GraphQLNonNull(Event), resolve: (e: Ev | null) => e },
      },
    }),
  });
  const events: (Ev | null)[] = [
    { n: 2, mood: 'h', must: 'x' },
    { n: 3, mood: 's', must: 'y' }, // odd: Even refuses it
    { n: 4, mood: 'angry', must: 'z' }, // not a Mood
    { n: 6, must: null }, // null in a non-null field
    { n: 8, must: 'w', fails: true },
    { n: 10, must: 'v', later: true },
    { n: 12, must: 'u', typed: false },
    null,
  ];

  /** Every event gives graphql-js' result, through the plan or (when the plan declines) through graphql-js. */
  function expectSameAsGraphqlJs(query: string, variables: Record<string, unknown> = {}) {
    const args = argsFor(schema, query, variables);
    const plan = eventPlan(args);
    expect(plan).not.toBeNull();
    const declined: number[] = [];
    for (const event of events) {
      const planned = plan!(event);
      const expected = execute({ ...args, rootValue: event }) as ExecutionResult | Promise<ExecutionResult>;
      if (planned === null) {
        declined.push(event?.n ?? 0);
        continue;
      }
      expect(expected).not.toBeInstanceOf(Promise);
      expect(expected as ExecutionResult).not.toHaveProperty('errors');
      expect(JSON.stringify(planned)).toBe(JSON.stringify(expected));
    }
    return declined;
  }

  it('declines exactly the events whose result has an error or a promise, and matches graphql-js on the rest', () => {
    // A nullable root: a null event is `{ events: null }`, planned; the rest decline as graphql-js errs.
    expect(expectSameAsGraphqlJs(`subscription { events { n mood must } }`)).toEqual([4, 6, 12]);
    expect(expectSameAsGraphqlJs(`subscription { events { n even } }`)).toEqual([3, 12]);
    expect(expectSameAsGraphqlJs(`subscription { events { n fails } }`)).toEqual([8, 12]);
    expect(expectSameAsGraphqlJs(`subscription { events { n throws } }`)).toEqual([8, 12]);
    expect(expectSameAsGraphqlJs(`subscription { events { n later } }`)).toEqual([10, 12]);
    expect(expectSameAsGraphqlJs(`subscription { events { n nothing } }`)).toEqual([2, 3, 4, 6, 8, 10, 12]);
    // A non-null root: a null event is an error.
    expect(expectSameAsGraphqlJs(`subscription { strict { n } }`)).toEqual([12, 0]);
    // Leaf arguments, defaults and variables.
    expect(expectSameAsGraphqlJs(`subscription($t: Int) { events(min: 1) { a: shout b: shout(times: 1) c: shout(times: $t) } }`, { t: 3 })).toEqual([12]);
  });

  it('has no plan for selections of lists or nested objects (graphql-js executes those)', () => {
    expect(eventPlan(argsFor(schema, `subscription { events { n tags } }`))).toBeNull();
    expect(eventPlan(argsFor(schema, `subscription { events { n self { n } } }`))).toBeNull();
  });
});
