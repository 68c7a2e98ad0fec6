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
    expect(cb.tryAcquire('p')).toBe('call');
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
    expect(cb.tryAcquire('p')).toBe('probe');
    expect(cb.tryAcquire('p')).toBe(false); // probe in flight
    cb.recordSuccess('p');
    expect(cb.state('p')).toBe('closed');
    expect(cb.tryAcquire('p')).toBe('call');
  });

  it('re-opens when the probe fails, and frees the probe slot on release', () => {
    const { cb, clock } = breaker(1);
    cb.recordFailure('p');
    clock.now += 5_000;
    expect(cb.tryAcquire('p')).toBe('probe');
    cb.recordFailure('p');
    expect(cb.state('p')).toBe('open');
    expect(cb.tryAcquire('p')).toBe(false);
    clock.now += 5_000;
    expect(cb.tryAcquire('p')).toBe('probe');
    cb.release('p', 'probe'); // e.g. the probe was aborted: no verdict
    expect(cb.tryAcquire('p')).toBe('probe');
  });

  it('keeps one probe at a time when a call granted before the circuit opened ends without a verdict', () => {
    const { cb, clock } = breaker(1);
    expect(cb.tryAcquire('p')).toBe('call'); // a long stream, granted while the circuit was closed
    cb.recordFailure('p'); // another call fails: open
    clock.now += 5_000;
    expect(cb.tryAcquire('p')).toBe('probe');
    cb.release('p', 'call'); // the long stream is cancelled; it was not the probe
    expect(cb.tryAcquire('p')).toBe(false);
    cb.release('p', 'probe');
    expect(cb.tryAcquire('p')).toBe('probe');
  });
});
