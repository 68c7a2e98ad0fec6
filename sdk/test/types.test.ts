import { ConflictError, HubError, NetworkError, NotFoundError, RateLimitedError, type HubErrorCode } from '@hub/sdk';
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
