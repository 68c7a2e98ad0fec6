import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.js';

function breaker(threshold = 3) {
  const clock = { now: 0 };
  const cb = new CircuitBreaker({ failureThreshold: threshold, windowMs: 10_000, cooldownMs: 5_000, now: () => clock.now });
  return { cb, clock };
}

describe('CircuitBreaker', () => {
  it('opens after N consecutive failures and rejects during the cool-down', () => {
    const { cb, clock } = breaker();
    cb.recordFailure('p');
    cb.recordFailure('p');
    expect(cb.tryAcquire('p')).toBe(true);
    cb.recordFailure('p');
    expect(cb.state('p')).toBe('open');
    clock.now += 4_999;
    expect(cb.tryAcquire('p')).toBe(false);
    expect(cb.state('other')).toBe('closed');
  });

  it('only counts failures inside the window, and a success resets the count', () => {
    const { cb, clock } = breaker();
    cb.recordFailure('p');
    cb.recordFailure('p');
    clock.now += 10_001;
    cb.recordFailure('p');
    expect(cb.state('p')).toBe('closed');
    cb.recordFailure('p');
    cb.recordSuccess('p');
    cb.recordFailure('p');
    cb.recordFailure('p');
    expect(cb.state('p')).toBe('closed');
  });

  it('half-opens after the cool-down with exactly one probe', () => {
    const { cb, clock } = breaker(1);
    cb.recordFailure('p');
    clock.now += 5_000;
    expect(cb.state('p')).toBe('half_open');
    expect(cb.tryAcquire('p')).toBe(true);
    expect(cb.tryAcquire('p')).toBe(false); // probe in flight
    cb.recordSuccess('p');
    expect(cb.state('p')).toBe('closed');
    expect(cb.tryAcquire('p')).toBe(true);
  });

  it('re-opens when the probe fails, and frees the probe slot on release', () => {
    const { cb, clock } = breaker(1);
    cb.recordFailure('p');
    clock.now += 5_000;
    expect(cb.tryAcquire('p')).toBe(true);
    cb.recordFailure('p');
    expect(cb.state('p')).toBe('open');
    expect(cb.tryAcquire('p')).toBe(false);
    clock.now += 5_000;
    expect(cb.tryAcquire('p')).toBe(true);
    cb.release('p'); // e.g. the probe was aborted: no verdict
    expect(cb.tryAcquire('p')).toBe(true);
  });
});
