import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type CircuitPermit } from './circuit-breaker.js';

function breaker(threshold = 3) {
  const clock = { now: 0 };
  const cb = new CircuitBreaker({ failureThreshold: threshold, windowMs: 10_000, cooldownMs: 5_000, now: () => clock.now });
  return { cb, clock };
}

function granted(cb: CircuitBreaker, key = 'p'): CircuitPermit {
  const permit = cb.tryAcquire(key);
  if (!permit) throw new Error(`no permit for ${key}`);
  return permit;
}

/** A call granted now that fails / succeeds at once. */
const fail = (cb: CircuitBreaker) => cb.recordFailure('p', granted(cb));
const succeed = (cb: CircuitBreaker) => cb.recordSuccess('p', granted(cb));

describe('CircuitBreaker', () => {
  it('opens after N consecutive failures and rejects during the cool-down', () => {
    const { cb, clock } = breaker();
    fail(cb);
    fail(cb);
    expect(cb.tryAcquire('p')).toMatchObject({ kind: 'call' });
    fail(cb);
    expect(cb.state('p')).toBe('open');
    clock.now += 4_999;
    expect(cb.tryAcquire('p')).toBe(false);
    expect(cb.state('other')).toBe('closed');
  });

  it('only counts failures inside the window, and a success resets the count', () => {
    const { cb, clock } = breaker();
    fail(cb);
    fail(cb);
    clock.now += 10_001;
    fail(cb);
    expect(cb.state('p')).toBe('closed');
    fail(cb);
    succeed(cb);
    fail(cb);
    fail(cb);
    expect(cb.state('p')).toBe('closed');
  });

  it('half-opens after the cool-down with exactly one probe', () => {
    const { cb, clock } = breaker(1);
    fail(cb);
    clock.now += 5_000;
    expect(cb.state('p')).toBe('half_open');
    const probe = granted(cb);
    expect(probe.kind).toBe('probe');
    expect(cb.tryAcquire('p')).toBe(false); // probe in flight
    cb.recordSuccess('p', probe);
    expect(cb.state('p')).toBe('closed');
    expect(cb.tryAcquire('p')).toMatchObject({ kind: 'call' });
  });

  it('re-opens when the probe fails, and frees the probe slot on release', () => {
    const { cb, clock } = breaker(1);
    fail(cb);
    clock.now += 5_000;
    const failed = granted(cb);
    expect(failed.kind).toBe('probe');
    cb.recordFailure('p', failed);
    expect(cb.state('p')).toBe('open');
    expect(cb.tryAcquire('p')).toBe(false);
    clock.now += 5_000;
    const probe = granted(cb);
    expect(probe.kind).toBe('probe');
    cb.release('p', probe); // e.g. the probe was aborted: no verdict
    expect(cb.tryAcquire('p')).toMatchObject({ kind: 'probe' });
  });

  it('keeps one probe at a time when a call granted before the circuit opened ends without a verdict', () => {
    const { cb, clock } = breaker(1);
    const early = granted(cb); // a long stream, granted while the circuit was closed
    fail(cb); // another call fails: open
    clock.now += 5_000;
    const probe = granted(cb);
    expect(probe.kind).toBe('probe');
    cb.release('p', early); // the long stream is cancelled; it was not the probe
    expect(cb.tryAcquire('p')).toBe(false);
    cb.release('p', probe);
    expect(cb.tryAcquire('p')).toMatchObject({ kind: 'probe' });
  });

  it('stays open when a call granted before it opened succeeds after: only the probe closes it', () => {
    const { cb, clock } = breaker(1);
    const early = cb.tryAcquire('p'); // a long stream, granted while the circuit was closed
    const failing = cb.tryAcquire('p');
    if (!early || !failing) throw new Error('closed: both granted');
    cb.recordFailure('p', failing); // another call fails: open
    cb.recordSuccess('p', early); // the long stream ends well, but says nothing of the provider since
    expect(cb.state('p')).toBe('open');
    expect(cb.tryAcquire('p')).toBe(false);

    clock.now += 5_000;
    const probe = cb.tryAcquire('p');
    if (!probe) throw new Error('half-open: the probe is granted');
    const late = cb.tryAcquire('p'); // refused: the probe is out
    expect(late).toBe(false);
    cb.recordSuccess('p', early); // settled twice by mistake, or another early call: still not the probe
    cb.recordFailure('p', early); // nor is a failure of a call granted before the circuit opened
    expect(cb.state('p')).toBe('half_open');
    expect(cb.tryAcquire('p')).toBe(false);
    cb.recordSuccess('p', probe);
    expect(cb.state('p')).toBe('closed');
  });

  it('lets a call granted after the circuit closed again count, and not one granted before it opened', () => {
    const { cb, clock } = breaker(2);
    const early = cb.tryAcquire('p');
    const [a, b] = [cb.tryAcquire('p'), cb.tryAcquire('p')];
    if (!early || !a || !b) throw new Error('closed: all granted');
    cb.recordFailure('p', a);
    cb.recordFailure('p', b); // open
    clock.now += 5_000;
    const probe = cb.tryAcquire('p');
    if (!probe) throw new Error('half-open: the probe is granted');
    cb.recordSuccess('p', probe); // closed again
    const current = cb.tryAcquire('p');
    if (!current) throw new Error('closed: granted');
    cb.recordFailure('p', current);
    cb.recordSuccess('p', early); // from before the circuit opened: does not reset the new count
    const next = cb.tryAcquire('p');
    if (!next) throw new Error('closed: granted');
    cb.recordFailure('p', next);
    expect(cb.state('p')).toBe('open');
  });

  it("counts a provider's verdicts whatever another provider's circuit does meanwhile", () => {
    const { cb, clock } = breaker(2);
    const [a1, a2] = [granted(cb, 'a'), granted(cb, 'a')];
    // Provider b fails, opens, half-opens and closes while a's two calls are out.
    cb.recordFailure('b', granted(cb, 'b'));
    cb.recordFailure('b', granted(cb, 'b'));
    expect(cb.state('b')).toBe('open');
    clock.now += 5_000;
    cb.recordSuccess('b', granted(cb, 'b'));
    expect(cb.state('b')).toBe('closed');
    cb.recordFailure('a', a1);
    cb.recordFailure('a', a2);
    expect(cb.state('a')).toBe('open');

    // And a success granted before b changed state still resets a's count.
    const c = breaker(2).cb;
    const early = granted(c, 'a');
    c.recordFailure('a', granted(c, 'a'));
    c.recordFailure('b', granted(c, 'b'));
    c.recordFailure('b', granted(c, 'b'));
    c.recordSuccess('a', early);
    c.recordFailure('a', granted(c, 'a'));
    expect(c.state('a')).toBe('closed');
  });
});
