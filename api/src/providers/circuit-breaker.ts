export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  failureThreshold: number;
  /** The failures must all fall within this window (measured from the first of the run). */
  windowMs: number;
  /** How long an open circuit rejects calls before letting one probe through. */
  cooldownMs: number;
  /** Injectable clock (ms). */
  now?: () => number;
}

/**
 * What tryAcquire granted: a call through a closed circuit, or the half-open circuit's one probe, and the epoch
 * of the state it was granted in. Its verdict counts only while that state lasts: a call granted before the
 * circuit opened that succeeds after says nothing about the provider since.
 */
export interface CircuitPermit {
  readonly kind: 'call' | 'probe';
  readonly epoch: number;
}

interface Circuit {
  state: CircuitState;
  /** This circuit's own count of state changes (closed, open, half-open, closed): never a value used before. */
  epoch: number;
  failures: number;
  firstFailureAt: number;
  openedAt: number;
  probeInFlight: boolean;
}

/**
 * Per-key (per-provider) circuit breaker. Closed: everything passes. Open: everything is rejected
 * until `cooldownMs` has passed, then half-open: exactly one probe is let through; its success
 * closes the circuit, its failure re-opens it for another cool-down.
 * Callers must settle every granted `tryAcquire` with recordSuccess, recordFailure or release, passing its
 * permit: a verdict counts only if the state it was granted in still holds (see CircuitPermit).
 */
export class CircuitBreaker {
  /**
   * One per key ever called, kept when closed: its epoch must outlive the state, so a permit granted in one
   * closed spell never matches the next. Keys are providers, a handful.
   */
  private readonly circuits = new Map<string, Circuit>();
  private readonly now: () => number;

  constructor(private readonly opts: CircuitBreakerOptions) {
    if (opts.failureThreshold < 1) throw new RangeError('failureThreshold must be >= 1');
    this.now = opts.now ?? Date.now;
  }

  /** Current state without side effects ('half_open' once an open circuit's cool-down has elapsed). */
  state(key: string): CircuitState {
    const c = this.circuits.get(key);
    if (!c) return 'closed';
    if (c.state === 'open' && this.now() - c.openedAt >= this.opts.cooldownMs) return 'half_open';
    return c.state;
  }

  /** May a call go to `key` now? In half-open state only one caller gets the 'probe' until it settles. */
  tryAcquire(key: string): CircuitPermit | false {
    const c = this.circuit(key);
    if (c.state === 'closed') return { kind: 'call', epoch: c.epoch };
    if (c.state === 'open') {
      if (this.now() - c.openedAt < this.opts.cooldownMs) return false;
      c.state = 'half_open';
      c.epoch++;
    }
    if (c.probeInFlight) return false;
    c.probeInFlight = true;
    return { kind: 'probe', epoch: c.epoch };
  }

  /** Closes the circuit (or resets its failure count), if the call was granted in the current state. */
  recordSuccess(key: string, permit: CircuitPermit): void {
    const c = this.circuits.get(key);
    if (!c || permit.epoch !== c.epoch) return;
    if (c.state === 'half_open') {
      // Closed again: calls granted before count no more.
      c.state = 'closed';
      c.epoch++;
      c.probeInFlight = false;
    }
    c.failures = 0;
  }

  recordFailure(key: string, permit: CircuitPermit): void {
    const now = this.now();
    const c = this.circuit(key);
    // Granted before the current state began (say, before the circuit opened): it tells of the provider then.
    if (permit.epoch !== c.epoch) return;
    if (c.state === 'half_open') {
      this.open(c, now);
      return;
    }
    if (c.state === 'open') return;
    if (c.failures > 0 && now - c.firstFailureAt > this.opts.windowMs) c.failures = 0;
    if (c.failures === 0) c.firstFailureAt = now;
    c.failures++;
    if (c.failures >= this.opts.failureThreshold) this.open(c, now);
  }

  /**
   * The call ended without a verdict on the provider's health (aborted, or a request-specific 4xx). Only
   * the probe frees the probe slot: a call granted before the circuit opened may end while a probe is out.
   */
  release(key: string, permit: CircuitPermit): void {
    const c = this.circuits.get(key);
    if (permit.kind === 'probe' && c?.state === 'half_open' && c.epoch === permit.epoch) c.probeInFlight = false;
  }

  private open(c: Circuit, now: number): void {
    c.state = 'open';
    c.epoch++;
    c.openedAt = now;
    c.probeInFlight = false;
    c.failures = 0;
  }

  private circuit(key: string): Circuit {
    let c = this.circuits.get(key);
    if (!c) {
      c = { state: 'closed', epoch: 0, failures: 0, firstFailureAt: 0, openedAt: 0, probeInFlight: false };
      this.circuits.set(key, c);
    }
    return c;
  }
}
