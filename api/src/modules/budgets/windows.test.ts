import { describe, expect, it } from 'vitest';
import { windowEnd, windowStart } from './windows.js';

describe('budget windows follow the organization wall clock', () => {
  it('a day in Los Angeles starts at local midnight (08:00 UTC in winter, 07:00 in summer)', () => {
    expect(windowStart('DAILY', 'America/Los_Angeles', new Date('2026-01-15T07:59:59Z')).toISOString()).toBe('2026-01-14T08:00:00.000Z');
    expect(windowStart('DAILY', 'America/Los_Angeles', new Date('2026-01-15T08:00:00Z')).toISOString()).toBe('2026-01-15T08:00:00.000Z');
    expect(windowStart('DAILY', 'America/Los_Angeles', new Date('2026-07-15T12:00:00Z')).toISOString()).toBe('2026-07-15T07:00:00.000Z');
  });

  it('handles the 23-hour and 25-hour days of DST changes', () => {
    // 2026-03-08: clocks spring forward in the US.
    const spring = windowStart('DAILY', 'America/New_York', new Date('2026-03-08T12:00:00Z'));
    expect(spring.toISOString()).toBe('2026-03-08T05:00:00.000Z');
    expect(windowEnd('DAILY', 'America/New_York', spring).toISOString()).toBe('2026-03-09T04:00:00.000Z');
    // 2026-11-01: clocks fall back.
    const fall = windowStart('DAILY', 'America/New_York', new Date('2026-11-01T12:00:00Z'));
    expect(windowEnd('DAILY', 'America/New_York', fall).getTime() - fall.getTime()).toBe(25 * 3600_000);
  });

  it('months start on the 1st at local midnight, also in zones ahead of UTC and with half-hour offsets', () => {
    expect(windowStart('MONTHLY', 'Asia/Kolkata', new Date('2026-02-28T18:29:59Z')).toISOString()).toBe('2026-01-31T18:30:00.000Z');
    expect(windowStart('MONTHLY', 'Asia/Kolkata', new Date('2026-02-28T18:30:00Z')).toISOString()).toBe('2026-02-28T18:30:00.000Z');
    expect(windowEnd('MONTHLY', 'Asia/Kolkata', new Date('2026-12-10T00:00:00Z')).toISOString()).toBe('2026-12-31T18:30:00.000Z');
    expect(windowStart('MONTHLY', 'UTC', new Date('2026-11-24T10:00:00Z')).toISOString()).toBe('2026-11-01T00:00:00.000Z');
  });
});
