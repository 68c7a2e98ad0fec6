import {
  ConflictError,
  HubError,
  NetworkError,
  NotFoundError,
  RateLimitedError,
  type HubClient,
  type HubErrorCode,
  type Provider,
  type RequestOptions,
  type RunEvent,
  type RunStatus,
} from '@hub/sdk';
import { describe, expect, expectTypeOf, it } from 'vitest';

// What these tests check is checked by the type checker (`pnpm --filter @hub/sdk typecheck` compiles the
// tests too): a failing expectation there is a compile error. At run time they only keep vitest company.

describe('error codes', () => {
  it('HubError.code is a union of the codes the SDK and the API use, open to codes the API adds later', () => {
    expectTypeOf<HubError['code']>().toEqualTypeOf<HubErrorCode>();
    // The known codes are members of their own, not swallowed by `string`: `switch (err.code)` completes them.
    expectTypeOf<Extract<HubErrorCode, 'RATE_LIMITED'>>().toEqualTypeOf<'RATE_LIMITED'>();
    expectTypeOf<Extract<HubErrorCode, 'NETWORK_ERROR'>>().toEqualTypeOf<'NETWORK_ERROR'>();
    expectTypeOf<Extract<HubErrorCode, 'CLIENT_CLOSED'>>().toEqualTypeOf<'CLIENT_CLOSED'>();
    expectTypeOf<'A_CODE_FROM_A_NEWER_API'>().toExtend<HubErrorCode>();
    // Each class has its own.
    expectTypeOf<NotFoundError['code']>().toEqualTypeOf<'NOT_FOUND'>();
    expectTypeOf<RateLimitedError['code']>().toEqualTypeOf<'RATE_LIMITED'>();
    expectTypeOf<NetworkError['code']>().toEqualTypeOf<'NETWORK_ERROR'>();

    const describe = (err: HubError) => {
      switch (err.code) {
        case 'NOT_FOUND':
          return 'gone';
        case 'CONFLICT':
          return 'taken';
        default:
          return err.code;
      }
    };
    expect(describe(new NotFoundError())).toBe('gone');
    expect(describe(new ConflictError())).toBe('taken');
    expect(describe(new HubError('?', 'A_CODE_FROM_A_NEWER_API'))).toBe('A_CODE_FROM_A_NEWER_API');
  });
});

describe('run events', () => {
  it('RunEvent is narrowed by its type: each type has its own fields and payload', () => {
    const narrow = (event: RunEvent) => {
      // Before narrowing, the fields every event has.
      expectTypeOf(event.text).toEqualTypeOf<string | null>();
      expectTypeOf(event.status).toEqualTypeOf<RunStatus | null>();
      switch (event.type) {
        case 'TOKEN':
          expectTypeOf(event.text).toEqualTypeOf<string>();
          expectTypeOf(event.status).toEqualTypeOf<null>();
          expectTypeOf(event.payload.text).toEqualTypeOf<string>();
          break;
        case 'STATUS':
          expectTypeOf(event.status).toEqualTypeOf<RunStatus>();
          expectTypeOf(event.text).toEqualTypeOf<null>();
          expectTypeOf(event.payload.status).toEqualTypeOf<RunStatus>();
          expectTypeOf(event.payload.attempt).toEqualTypeOf<number | undefined>();
          expectTypeOf(event.payload.errorCode).toEqualTypeOf<string | undefined>();
          break;
        case 'USAGE':
          expectTypeOf(event.payload.provider).toEqualTypeOf<Provider>();
          expectTypeOf(event.payload.outputTokens).toEqualTypeOf<number>();
          expectTypeOf(event.payload.costMicros).toEqualTypeOf<string>();
          expectTypeOf(event.payload.estimated).toEqualTypeOf<boolean>();
          break;
        case 'ERROR':
          expectTypeOf(event.payload.message).toEqualTypeOf<string>();
          if ('kind' in event.payload) expectTypeOf(event.payload.provider).toEqualTypeOf<Provider>();
          else expectTypeOf(event.payload.code).toEqualTypeOf<'BUDGET_EXCEEDED'>();
          break;
        case 'LOG':
          expectTypeOf(event.payload.message).toEqualTypeOf<string>();
          if (event.payload.kind === 'skip') expectTypeOf(event.payload.reason).toEqualTypeOf<'unconfigured' | 'circuit_open'>();
          else expectTypeOf(event.payload.attempt).toEqualTypeOf<number>();
          break;
      }
      if (event.type === 'TOKEN') return event.text.length;
      return 0;
    };
    // Code written against the earlier, unnarrowed type still compiles.
    const before = (event: RunEvent) => {
      if (event.type === 'TOKEN') return event.text ?? '';
      return String(event.status ?? (event.payload as { message?: string }).message);
    };
    expectTypeOf(before).returns.toEqualTypeOf<string>();
    expect(narrow({ __typename: 'RunEvent', seq: 3, type: 'TOKEN', text: 'Hi', status: null, payload: { text: 'Hi' }, createdAt: '2026-01-01T00:00:00.000Z' })).toBe(2);
  });
});

/** Each method of the client, top-level (`health`) or in a namespace (`projects.get`), as [name, type]. */
type Methods = {
  [N in keyof HubClient & string]: HubClient[N] extends (...args: never[]) => unknown
    ? [N, HubClient[N]]
    : { [K in keyof HubClient[N] & string]: [`${N}.${K}`, HubClient[N][K]] }[keyof HubClient[N] & string];
}[keyof HubClient & string];

/** The last parameter of `F` when it may be left out, else never. */
type OptionalLast<F> = F extends (...args: infer A) => unknown ? (Required<A> extends [...infer Init, infer Last] ? (Init extends A ? Last : never) : never) : never;

/** Whether `F` takes `signal` and `timeoutMs`, typed as in RequestOptions, in an optional last argument. */
type TakesRequestOptions<F, L = OptionalLast<F>> = [L] extends [never]
  ? false
  : keyof RequestOptions extends keyof L
    ? [RequestOptions, Pick<L, keyof RequestOptions>] extends [Pick<L, keyof RequestOptions>, RequestOptions]
      ? true
      : false
    : false;

/** The names of the methods that do not. */
type WithoutRequestOptions<M = Methods> = M extends [infer Name, infer F] ? (TakesRequestOptions<F> extends true ? never : Name) : never;

describe('request options', () => {
  it('every method that makes a request takes { signal, timeoutMs } in an optional last argument', () => {
    // Spot checks of the shapes: their own parameter, or merged into the options object a method already had.
    expectTypeOf<HubClient['projects']['get']>().parameter(1).toEqualTypeOf<RequestOptions | undefined>();
    expectTypeOf<HubClient['tokens']['list']>().parameter(0).toEqualTypeOf<RequestOptions | undefined>();
    expectTypeOf<HubClient['projects']['list']>().parameter(1).toEqualTypeOf<({ includeArchived?: boolean | undefined } & RequestOptions) | undefined>();
    expectTypeOf<HubClient['budgets']['list']>().parameter(1).toEqualTypeOf<({ organizationWide?: boolean | undefined } & RequestOptions) | undefined>();
    expectTypeOf<TakesRequestOptions<HubClient['usage']['report']>>().toEqualTypeOf<true>();

    // All of them: only what is no request (a subscription, a stream, close) is left out. A new method without
    // the options shows up here.
    expectTypeOf<WithoutRequestOptions>().toEqualTypeOf<'subscribe' | 'close' | 'runs.stream' | 'runs.wait' | 'runs.updates'>();
    // Calls written before they took options still compile.
    const before = (client: HubClient) => [client.viewer(), client.projects.get('id'), client.projects.list('acme', { includeArchived: true }), client.budgets.list('acme')];
    expectTypeOf(before).returns.toBeArray();
  });
});
