import { GraphQLError, GraphQLInt, type DocumentNode, GraphQLObjectType, GraphQLSchema, GraphQLString, parse, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import { subscribeShared, VIEWER_INDEPENDENT_SUBSCRIPTIONS, type MessageSink, type SyncEventSource } from './shared-subscribe.js';

interface Ev {
  n: number;
  text: string;
}

interface Ctx {
  viewer: string;
  events: AsyncIterable<Ev>;
}

/** A source that also hands events over synchronously, as the run event stream does. */
class SyncFeed implements SyncEventSource, AsyncIterator<Ev, void> {
  items: Ev[] = [];
  ended = false;
  onArrival: (() => void) | null = null;
  private waiter: (() => void) | null = null;

  get needsNext() {
    return this.ended && this.items.length === 0;
  }

  takeNow() {
    return this.items.shift();
  }

  push(e: Ev) {
    this.items.push(e);
    this.arrived();
  }

  end() {
    this.ended = true;
    this.arrived();
  }

  private arrived() {
    if (this.onArrival) this.onArrival();
    else this.waiter?.();
  }

  async next(): Promise<IteratorResult<Ev, void>> {
    for (;;) {
      if (this.items.length > 0) return { value: this.items.shift()!, done: false };
      if (this.ended) return { value: undefined, done: true };
      await new Promise<void>((r) => (this.waiter = r));
      this.waiter = null;
    }
  }

  async return(): Promise<IteratorResult<Ev, void>> {
    this.ended = true;
    this.waiter?.();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

let textResolves = 0;

const EvType = new GraphQLObjectType<Ev, Ctx>({
  name: 'Ev',
  fields: {
    n: { type: GraphQLInt },
    text: {
      type: GraphQLString,
      resolve: (e) => {
        textResolves++;
        return e.text;
      },
    },
    broken: {
      type: GraphQLString,
      resolve: (e) => {
        if (e.n !== 0) throw new Error('broken field');
        return 'fine';
      },
    },
  },
});

const ViewerEvType = new GraphQLObjectType<Ev, Ctx>({
  name: 'ViewerEv',
  fields: {
    n: { type: GraphQLInt },
    seenBy: { type: GraphQLString, resolve: (_e, _a, ctx) => ctx.viewer },
  },
});

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLInt } } }),
  subscription: new GraphQLObjectType<unknown, Ctx>({
    name: 'Subscription',
    fields: {
      // Named like the real viewer-independent field, so the events of this one are shared.
      runEvents: { type: EvType, subscribe: (_r, _a, ctx) => ctx.events, resolve: (e) => e },
      viewerEvents: { type: ViewerEvType, subscribe: (_r, _a, ctx) => ctx.events, resolve: (e) => e },
    },
  }),
});

/** One feed of shared event objects, read by any number of subscribers. */
function feed() {
  const queues: { items: Ev[]; wake: (() => void) | null; done: boolean }[] = [];
  return {
    subscriber(): AsyncIterable<Ev> {
      const q = { items: [] as Ev[], wake: null as (() => void) | null, done: false };
      queues.push(q);
      return {
        async *[Symbol.asyncIterator]() {
          for (;;) {
            while (q.items.length) yield q.items.shift()!;
            if (q.done) return;
            await new Promise<void>((r) => (q.wake = r));
          }
        },
      };
    },
    publish(e: Ev) {
      for (const q of queues) {
        q.items.push(e);
        q.wake?.();
      }
    },
    end() {
      for (const q of queues) {
        q.done = true;
        q.wake?.();
      }
    },
  };
}

// One parsed document per text, as the server's document cache provides.
const documents = new Map<string, DocumentNode>();

function args(query: string, contextValue: Ctx, variableValues?: Record<string, unknown>): ExecutionArgs {
  let document = documents.get(query);
  if (!document) documents.set(query, (document = parse(query)));
  return { schema, document, contextValue, variableValues };
}

async function collect(result: Awaited<ReturnType<typeof subscribeShared>>) {
  if (!(Symbol.asyncIterator in result)) throw new Error(`not a stream: ${JSON.stringify(result)}`);
  const out: ExecutionResult[] = [];
  for await (const r of result) out.push(r);
  return out;
}

const plain = (value: unknown) => JSON.parse(JSON.stringify(value)) as unknown;

describe('subscribeShared', () => {
  it('executes each event once for subscribers with the same document and variables', async () => {
    expect(VIEWER_INDEPENDENT_SUBSCRIPTIONS.has('runEvents')).toBe(true);
    const f = feed();
    const query = 'subscription { runEvents { n text } }';
    const streams = await Promise.all(['ada', 'bob', 'cy'].map((viewer) => subscribeShared(args(query, { viewer, events: f.subscriber() }))));
    const results = Promise.all(streams.map(collect));
    textResolves = 0;
    for (let n = 1; n <= 5; n++) f.publish({ n, text: `t${n}` });
    f.end();
    const [a, b, c] = await results;
    const expected = Array.from({ length: 5 }, (_, i) => ({ data: { runEvents: { n: i + 1, text: `t${i + 1}` } } }));
    expect(plain(a!)).toEqual(expected);
    expect(plain(b!)).toEqual(expected);
    expect(plain(c!)).toEqual(expected);
    expect(textResolves).toBe(5);
  });

  it('gives subscribers with different selections or variables their own, correct payloads', async () => {
    const f = feed();
    const withVar = 'subscription($withText: Boolean!) { runEvents { n text @include(if: $withText) } }';
    const streams = await Promise.all([
      subscribeShared(args(withVar, { viewer: 'a', events: f.subscriber() }, { withText: true })),
      subscribeShared(args(withVar, { viewer: 'b', events: f.subscriber() }, { withText: false })),
      subscribeShared(args('subscription { e: runEvents { text } }', { viewer: 'c', events: f.subscriber() })),
      subscribeShared(args('subscription { ...F } fragment F on Subscription { runEvents { n } }', { viewer: 'd', events: f.subscriber() })),
    ]);
    const results = Promise.all(streams.map(collect));
    f.publish({ n: 1, text: 'one' });
    f.end();
    expect(plain(await results)).toEqual([
      [{ data: { runEvents: { n: 1, text: 'one' } } }],
      [{ data: { runEvents: { n: 1 } } }],
      [{ data: { e: { text: 'one' } } }],
      [{ data: { runEvents: { n: 1 } } }],
    ]);
  });

  it('executes other subscriptions for each subscriber, with its own context', async () => {
    const f = feed();
    const query = 'subscription { viewerEvents { n seenBy } }';
    const streams = await Promise.all(['ada', 'bob'].map((viewer) => subscribeShared(args(query, { viewer, events: f.subscriber() }))));
    const results = Promise.all(streams.map(collect));
    f.publish({ n: 1, text: 'x' });
    f.end();
    expect(plain(await results)).toEqual([[{ data: { viewerEvents: { n: 1, seenBy: 'ada' } } }], [{ data: { viewerEvents: { n: 1, seenBy: 'bob' } } }]]);
  });

  it('executes for each subscriber an operation that also names a shared field it skips, directly or in a fragment', async () => {
    const f = feed();
    const queries = [
      'subscription { runEvents @skip(if: true) { n } viewerEvents { n seenBy } }',
      'subscription { ... on Subscription @include(if: false) { runEvents { n } } ...V } fragment V on Subscription { viewerEvents { n seenBy } }',
    ];
    const streams = await Promise.all(queries.flatMap((query) => ['ada', 'bob'].map((viewer) => subscribeShared(args(query, { viewer, events: f.subscriber() })))));
    const results = Promise.all(streams.map(collect));
    f.publish({ n: 1, text: 'x' });
    f.end();
    const seen = (viewer: string) => [{ data: { viewerEvents: { n: 1, seenBy: viewer } } }];
    expect(plain(await results)).toEqual([seen('ada'), seen('bob'), seen('ada'), seen('bob')]);
  });

  it('writes results straight to the sink, with the operation id, and leaves results with errors to graphql-ws', async () => {
    const f = feed();
    const written: string[] = [];
    const sink: MessageSink = { id: 'op-1', write: (m) => void written.push(m) };
    const query = 'subscription($b: Boolean!) { runEvents { n broken @include(if: $b) } }'; // broken throws unless n is 0
    const stream = await subscribeShared(args(query, { viewer: 'a', events: f.subscriber() }, { b: false }), sink);
    const errorsStream = await subscribeShared(args(query, { viewer: 'b', events: f.subscriber() }, { b: true }), { id: 'op-2', write: (m) => void written.push(m) });
    const yielded = collect(stream);
    const errored = collect(errorsStream);
    f.publish({ n: 1, text: '' });
    f.publish({ n: 2, text: '' });
    f.end();
    expect(await yielded).toEqual([]);
    expect(written.map((m) => JSON.parse(m) as unknown)).toEqual([
      { id: 'op-1', type: 'next', payload: { data: { runEvents: { n: 1 } } } },
      { id: 'op-1', type: 'next', payload: { data: { runEvents: { n: 2 } } } },
    ]);
    const withErrors = await errored;
    expect(withErrors).toHaveLength(2);
    expect(withErrors[0]!.errors![0]).toBeInstanceOf(GraphQLError);
    expect(plain(withErrors)).toMatchObject([{ data: { runEvents: { n: 1, broken: null } }, errors: [{ message: 'broken field', path: ['runEvents', 'broken'] }] }, {}]);
  });

  it('stops writing once the subscription is returned, and waits for a backed-up sink', async () => {
    const f = feed();
    const written: string[] = [];
    let drained!: () => void;
    const sink: MessageSink = {
      id: 'op',
      write: (m) => {
        written.push(m);
        return written.length === 1 ? new Promise<void>((r) => (drained = r)) : undefined;
      },
    };
    const stream = (await subscribeShared(args('subscription { runEvents { n } }', { viewer: 'a', events: f.subscriber() }), sink)) as AsyncGenerator<ExecutionResult>;
    const pending = stream.next();
    f.publish({ n: 1, text: '' });
    f.publish({ n: 2, text: '' });
    await new Promise((r) => setTimeout(r, 10));
    expect(written).toHaveLength(1);
    drained();
    await new Promise((r) => setTimeout(r, 10));
    expect(written).toHaveLength(2);
    const returned = stream.return(undefined);
    f.publish({ n: 3, text: '' });
    await returned;
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(written).toHaveLength(2);
  });

  it('writes from the dispatch of a source that hands events over synchronously, in order with the rest', async () => {
    const feeds = [new SyncFeed(), new SyncFeed()];
    const written: string[][] = [[], []];
    const query = 'subscription($b: Boolean!) { runEvents { n broken @include(if: $b) } }';
    const streams = (await Promise.all(
      feeds.map((events, i) => subscribeShared(args(query, { viewer: `v${i}`, events }, { b: true }), { id: `op-${i}`, write: (m) => void written[i]!.push(m) })),
    )) as AsyncGenerator<ExecutionResult, void, void>[];
    const pending = streams.map((s) => s.next());
    await new Promise((r) => setTimeout(r, 5)); // both consumers are parked on their source
    const publish = (e: Ev) => feeds.forEach((f) => f.push(e));
    publish({ n: 0, text: 'a' });
    // Written during the dispatch itself, before any turn of the event loop.
    expect(written.map((w) => w.map((m) => JSON.parse(m) as unknown))).toEqual([
      [{ id: 'op-0', type: 'next', payload: { data: { runEvents: { n: 0, broken: 'fine' } } } }],
      [{ id: 'op-1', type: 'next', payload: { data: { runEvents: { n: 0, broken: 'fine' } } } }],
    ]);
    // A result with errors goes back to graphql-ws (which formats it), after what was written before it.
    publish({ n: 1, text: 'b' });
    const withErrors = await Promise.all(pending);
    expect(plain(withErrors.map((r) => r.value))).toMatchObject([
      { data: { runEvents: { n: 1, broken: null } }, errors: [{ message: 'broken field' }] },
      { data: { runEvents: { n: 1, broken: null } }, errors: [{ message: 'broken field' }] },
    ]);
    const rest = streams.map((s) => collect(s));
    await new Promise((r) => setTimeout(r, 5));
    publish({ n: 0, text: 'c' });
    expect(written.map((w) => w.length)).toEqual([2, 2]);
    feeds.forEach((f) => f.end());
    expect(await Promise.all(rest)).toEqual([[], []]);
  });
});
