import {
  createSourceEventStream,
  execute,
  getOperationAST,
  Kind,
  subscribe,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type SelectionSetNode,
} from 'graphql';
import { eventPlan, type EventPlan } from './event-plan.js';

/**
 * Subscription fields whose events render the same for every subscriber: authorization happens once, when
 * subscribing, and no resolver below them reads the viewer or the context. Their results are computed once
 * per (document, operation, variables, event) and shared by every subscriber that receives the same event
 * object (e.g. the 1,000 subscribers of one run). A field that starts reading the viewer must leave this set.
 * The resolvers below them must also be pure functions of the event: a plan (event-plan.ts) may run them a
 * second time for one event, when it hands the event to graphql-js.
 */
export const VIEWER_INDEPENDENT_SUBSCRIPTIONS: ReadonlySet<string> = new Set(['runEvents']);

/**
 * Where one operation's `next` messages can be written directly, skipping graphql-ws' per-message work
 * (the result is serialized once for every subscriber; only the operation id differs). `write` returns a
 * promise when the socket is backed up, and nothing once the socket is gone.
 */
export interface MessageSink {
  id: string;
  write(message: string): void | Promise<void>;
}

type MaybePromise<T> = T | Promise<T>;

/** One event's result for one request key, with its JSON when it has no errors (then it is sent as is). */
interface SharedResult {
  result: ExecutionResult;
  json: string | null;
}

/** Per event object, by request key; entries go when the event object does. */
const results = new WeakMap<object, Map<string, MaybePromise<SharedResult>>>();
const documentIds = new WeakMap<DocumentNode, number>();
let nextDocumentId = 1;

/**
 * Whether every root field the operation's selection names (through fragments, whatever their @skip or
 * @include says) is viewer-independent: validation leaves one field to execute, but which one can depend on
 * those directives, so all the candidates must be shareable.
 */
function onlySharedRootFields(document: DocumentNode, selectionSet: SelectionSetNode, seen = new Set<string>()): boolean {
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      if (!VIEWER_INDEPENDENT_SUBSCRIPTIONS.has(selection.name.value)) return false;
      continue;
    }
    if (selection.kind === Kind.FRAGMENT_SPREAD) {
      if (seen.has(selection.name.value)) continue;
      seen.add(selection.name.value);
    }
    const fragment =
      selection.kind === Kind.INLINE_FRAGMENT
        ? selection
        : document.definitions.find((d) => d.kind === Kind.FRAGMENT_DEFINITION && d.name.value === selection.name.value);
    if (!fragment || !('selectionSet' in fragment) || !onlySharedRootFields(document, fragment.selectionSet, seen)) return false;
  }
  return true;
}

/** What makes two subscribers' results for one event identical, or null when they may differ. */
function sharingKey(args: ExecutionArgs): string | null {
  const operation = getOperationAST(args.document, args.operationName);
  if (operation?.operation !== 'subscription') return null;
  if (!onlySharedRootFields(args.document, operation.selectionSet)) return null;
  let id = documentIds.get(args.document);
  if (id === undefined) documentIds.set(args.document, (id = nextDocumentId++));
  return `${id}\u0000${args.operationName ?? ''}\u0000${JSON.stringify(args.variableValues ?? null)}`;
}

const isPromise = <T>(value: MaybePromise<T>): value is Promise<T> => typeof (value as Promise<T> | null)?.then === 'function';

/**
 * graphql-js builds result objects without a prototype, which V8 keeps in dictionary mode: slow to
 * serialize, and a result with errors is serialized once per subscriber (by graphql-ws, after our error
 * formatting). So the data is kept as plain objects: the same JSON (it holds serialized scalars only).
 */
function share(result: ExecutionResult): SharedResult {
  if (result.errors) return { result: { ...result, data: result.data && (JSON.parse(JSON.stringify(result.data)) as ExecutionResult['data']) }, json: null };
  const json = JSON.stringify(result);
  return { result: JSON.parse(json) as ExecutionResult, json };
}

/** One event's result: by the operation's plan when it has one and the plan can, else by graphql-js. */
function executeEvent(args: ExecutionArgs, plan: EventPlan | null, event: unknown): MaybePromise<SharedResult> {
  const planned = plan?.(event);
  if (planned) return { result: planned, json: JSON.stringify(planned) };
  const executed = execute({ ...args, rootValue: event });
  return isPromise(executed) ? executed.then(share) : share(executed);
}

function executeShared(args: ExecutionArgs, plan: EventPlan | null, key: string, event: unknown): MaybePromise<SharedResult> {
  if (typeof event !== 'object' || event === null) return executeEvent(args, plan, event);
  let byKey = results.get(event);
  if (!byKey) results.set(event, (byKey = new Map()));
  let shared = byKey.get(key);
  if (!shared) {
    shared = executeEvent(args, plan, event);
    byKey.set(key, shared);
  }
  return shared;
}

const DONE: IteratorReturnResult<void> = Object.freeze({ value: undefined, done: true });

/**
 * An event source that can also hand over the events it already received without a turn of the event
 * loop, and call back when more arrive (the run event stream does): then a fan-out writes to every
 * subscriber's socket from the bus message's own dispatch, with no promise per subscriber.
 */
export interface SyncEventSource {
  /** True when next() has work besides waiting (opening, reading, ending): takeNow() gives nothing then. */
  readonly needsNext: boolean;
  takeNow(): unknown;
  onArrival: (() => void) | null;
}

const isSyncSource = (source: object): source is SyncEventSource => typeof (source as Partial<SyncEventSource>).takeNow === 'function';

/**
 * The operation's results, for graphql-ws to send. With a sink, results without errors are written
 * straight to it, and the iterator only yields the others (for graphql-ws to format and send, in order:
 * both go through the same socket). return() and throw() reach the source at once, as graphql-js' own
 * mapping does.
 */
function sharedResults(
  source: AsyncIterable<unknown>,
  results: (event: unknown) => MaybePromise<SharedResult>,
  sink: MessageSink | undefined,
): AsyncGenerator<ExecutionResult, void, void> {
  const iterator = source[Symbol.asyncIterator]();
  const fast = sink && isSyncSource(iterator) ? iterator : null;
  const prefix = sink ? `{"id":${JSON.stringify(sink.id)},"type":"next","payload":` : '';
  let closed = false;
  /** An event taken on the fast path that it could not send (a result still running, or with errors). */
  let carried: { event: unknown } | null = null;
  /** A write that found the socket backed up. */
  let backedUp: Promise<void> | null = null;
  let resume: (() => void) | null = null;

  const fail = async (error: unknown): Promise<never> => {
    try {
      await iterator.return?.();
    } catch {
      // The mapping's own error is the one to report.
    }
    throw error;
  };

  /** Writes every event at hand; true when there is nothing left to do but wait for the bus. */
  const writeAtHand = (source: SyncEventSource): boolean => {
    for (;;) {
      if (closed) return false;
      const event = source.takeNow();
      if (event === undefined) return !source.needsNext;
      let shared: MaybePromise<SharedResult>;
      try {
        shared = results(event);
      } catch {
        carried = { event }; // the slow path runs it again and reports the error
        return false;
      }
      if (isPromise(shared) || shared.json === null) {
        carried = { event };
        return false;
      }
      const pending = sink!.write(`${prefix}${shared.json}}`);
      if (pending) {
        backedUp = pending;
        return false;
      }
    }
  };

  const onArrival = () => {
    if (writeAtHand(fast!)) return;
    fast!.onArrival = null;
    resume?.();
  };

  async function next(): Promise<IteratorResult<ExecutionResult, void>> {
    for (;;) {
      if (closed) return DONE;
      if (backedUp) {
        const pending = backedUp;
        backedUp = null;
        await pending;
        continue;
      }
      let event: unknown;
      if (carried) {
        event = carried.event;
        carried = null;
      } else {
        if (fast && writeAtHand(fast)) {
          // Parked: the bus dispatch writes what arrives, until something needs this path.
          await new Promise<void>((r) => {
            resume = r;
            fast.onArrival = onArrival;
          });
          resume = null;
          continue;
        }
        if (carried || backedUp || closed) continue;
        const step = await iterator.next();
        if (step.done || closed) return DONE;
        event = step.value;
      }
      let shared: SharedResult;
      try {
        const pending = results(event);
        shared = isPromise(pending) ? await pending : pending;
      } catch (error) {
        return fail(error);
      }
      if (!sink || shared.json === null) return { value: shared.result, done: false };
      const pending = sink.write(`${prefix}${shared.json}}`);
      if (pending) await pending;
    }
  }

  const stop = () => {
    closed = true;
    if (fast) fast.onArrival = null;
    resume?.();
  };

  return {
    next,
    async return() {
      stop();
      if (iterator.return) await iterator.return();
      return DONE;
    },
    async throw(error: unknown) {
      stop();
      if (iterator.throw) await iterator.throw(error);
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
    // Node 20 types async generators as async disposable; graphql-ws only needs next/return/throw.
  } as AsyncGenerator<ExecutionResult, void, void>;
}

/**
 * graphql-js' subscribe, except that for viewer-independent subscriptions each event is executed and
 * serialized once for every subscriber with the same document and variables, and (given the operation's
 * sink) written to each socket without further work. Executed by the operation's plan (`eventPlan`: the
 * fields collected once, then per event only resolve, null check and serialize) whenever it has one and
 * it can give graphql-js' result; by graphql-js otherwise.
 */
export async function subscribeShared(
  args: ExecutionArgs,
  sink?: MessageSink,
): Promise<AsyncGenerator<ExecutionResult, void, void> | ExecutionResult> {
  const key = sharingKey(args);
  if (key === null) return subscribe(args);
  const stream = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in stream)) return stream as ExecutionResult;
  const plan = eventPlan(args);
  return sharedResults(stream as AsyncIterable<unknown>, (event) => executeShared(args, plan, key, event), sink);
}
