import { describe, expect, it } from 'vitest';
import { formatAgo, formatDuration, formatLatency, formatMoney, sumMoney, truncate } from '../src/lib/format.js';

describe('formatMoney', () => {
  it('shows two decimals, more only for sub-cent amounts', () => {
    expect(formatMoney('0')).toBe('$0.00');
    expect(formatMoney('1234500000')).toBe('$1,234.50');
    expect(formatMoney('1500')).toBe('$0.0015');
    expect(formatMoney('1')).toBe('$0.000001');
    expect(formatMoney('-2500000')).toBe('-$2.50');
  });

  it('stays exact beyond float precision', () => {
    expect(formatMoney('9007199254740993123456')).toBe('$9,007,199,254,740,993.123456');
    expect(formatMoney(sumMoney('100000', '200000'))).toBe('$0.30');
  });
});

describe('time and duration', () => {
  it('formats durations compactly', () => {
    expect(formatDuration(42)).toBe('42s');
    expect(formatDuration(312)).toBe('5m 12s');
    expect(formatDuration(3 * 3600 + 240)).toBe('3h 4m');
    expect(formatDuration(2 * 86_400 + 7 * 3600)).toBe('2d 7h');
  });

  it('formats relative times', () => {
    expect(formatAgo(10_000, 10_500)).toBe('just now');
    expect(formatAgo(0, 12_000)).toBe('12s ago');
    expect(formatAgo(0, 180_000)).toBe('3m ago');
  });

  it('picks latency precision by magnitude', () => {
    expect(formatLatency(0.4213)).toBe('0.42 ms');
    expect(formatLatency(12.34)).toBe('12.3 ms');
    expect(formatLatency(250.6)).toBe('251 ms');
  });
});

describe('truncate', () => {
  it('keeps text within the limit and ends a cut one with an ellipsis, without a space before it', () => {
    expect(truncate('Offline small', 13)).toBe('Offline small');
    expect(truncate('Offline small (echo + outline)', 12)).toBe('Offline sma…');
    expect(truncate('Offline small (echo + outline)', 9)).toBe('Offline…');
    expect(truncate('Offline small (echo + outline)', 9)).toHaveLength(8);
  });
});
