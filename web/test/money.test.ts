import { describe, expect, it } from 'vitest';
import { MAX_MONEY_MICROS as MONEY_SCALAR_MAX } from '../../api/src/schema/builder.js';
import { dollarsInput, MAX_MONEY_MICROS, parseDollars } from '../src/lib/money.js';

const micros = (input: string) => {
  const result = parseDollars(input);
  if (!result.ok) throw new Error(`${input}: ${result.error}`);
  return result.micros;
};
const error = (input: string) => {
  const result = parseDollars(input);
  if (result.ok) throw new Error(`${input} parsed as ${result.micros}`);
  return result.error;
};

describe('parseDollars', () => {
  it('reads whole dollars, with or without a dollar sign and thousands separators', () => {
    expect(micros('25')).toBe('25000000');
    expect(micros('$25')).toBe('25000000');
    expect(micros('  $ 1,250 ')).toBe('1250000000');
    expect(micros('1,000,000')).toBe('1000000000000');
    expect(micros('0')).toBe('0');
    expect(micros('007')).toBe('7000000');
  });

  it('reads cents and sub-cent amounts exactly, to the micro-dollar', () => {
    expect(micros('$12.50')).toBe('12500000');
    expect(micros('12.5')).toBe('12500000');
    expect(micros('.5')).toBe('500000');
    expect(micros('12.')).toBe('12000000');
    expect(micros('0.000001')).toBe('1');
    expect(micros('1,234.567891')).toBe('1234567891');
    // Trailing zeros past the sixth decimal change nothing.
    expect(micros('2.500000000')).toBe('2500000');
  });

  it('never goes through a float', () => {
    // 0.1 + 0.2 and 1.005 are the classic binary floating-point traps.
    expect(micros('0.1')).toBe('100000');
    expect(micros('0.3')).toBe('300000');
    expect(micros('1.005')).toBe('1005000');
    expect(micros('4.35')).toBe('4350000');
    // Past Number.MAX_SAFE_INTEGER micro-dollars, still exact.
    expect(micros('9007199254.740993')).toBe('9007199254740993');
    expect(micros('9223372036854.775807')).toBe('9223372036854775807');
  });

  it('refuses more than the API\'s Money reads (a BIGINT of micro-dollars), naming the range, before any request', () => {
    // The walkthrough's limit: sent as 29 digits, it came back as a raw "Expected type Money" error.
    const tooMuch = 'The amount must be between $0 and $9,223,372,036,854.77.';
    expect(error('99999999999999999999999')).toBe(tooMuch);
    expect(error('9223372036854.775808')).toBe(tooMuch);
    expect(micros('9,223,372,036,854.775807')).toBe('9223372036854775807');
    expect(MAX_MONEY_MICROS).toBe(MONEY_SCALAR_MAX);
    expect(error('123456789012345678901.999999')).toBe(tooMuch);
    // A field with a lower bound of its own names itself and that bound.
    const limit = { label: 'The limit', maxMicros: 1_000_000_000_000_000n };
    expect(parseDollars('1,000,000,000', limit)).toEqual({ ok: true, micros: '1000000000000000' });
    expect(parseDollars('1,000,000,000.01', limit)).toEqual({ ok: false, error: 'The limit must be between $0 and $1,000,000,000.' });
  });

  it('explains what is wrong with anything else', () => {
    expect(error('')).toBe('Enter an amount in dollars.');
    expect(error('  $ ')).toBe('Enter an amount in dollars.');
    expect(error('-5')).toBe('The amount cannot be negative.');
    expect(error('$-5')).toBe('The amount cannot be negative.');
    expect(error('0.0000001')).toBe('Use at most 6 decimal places (one micro-dollar).');
    for (const bad of ['abc', '12.3.4', '1,00', '12,5000', '1e6', '$$5', '5$', '.', '12 50', 'NaN', 'Infinity', '0x10', '½']) {
      expect(error(bad), bad).toBe('Enter an amount in dollars, like 25 or 12.50.');
    }
  });
});

describe('dollarsInput', () => {
  it('writes micro-dollars back as an amount parseDollars reads to the same value', () => {
    expect(dollarsInput('25000000')).toBe('25');
    expect(dollarsInput('12500000')).toBe('12.50');
    expect(dollarsInput('1500')).toBe('0.0015');
    expect(dollarsInput('0')).toBe('0');
    expect(dollarsInput(1234567891n)).toBe('1234.567891');
    expect(dollarsInput('-2500000')).toBe('-2.50');
    for (const value of ['1', '10', '990000', '25000000', '9007199254740993']) {
      expect(micros(dollarsInput(value))).toBe(value);
    }
  });
});
