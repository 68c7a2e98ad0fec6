const MICROS_PER_DOLLAR = 1_000_000n;
const MICRO_DIGITS = 6;

/**
 * The largest amount the API's `Money` scalar reads (MAX_MONEY_MICROS in api/src/schema/builder.ts, a
 * BIGINT's maximum): about $9.2 trillion.
 */
export const MAX_MONEY_MICROS = 9_223_372_036_854_775_807n;

export type ParsedDollars = { ok: true; micros: string } | { ok: false; error: string };

// Whole dollars either plain ("12500") or grouped by thousands ("12,500"); then an optional fraction.
const AMOUNT = /^(\d+|\d{1,3}(?:,\d{3})+)?(?:\.(\d*))?$/;

export interface ParseDollarsOptions {
  /** What the amount is, to name it in the too-large message: "The limit". */
  label?: string;
  /** The largest amount accepted, in micro-dollars; `Money`'s own maximum unless the field has a lower one. */
  maxMicros?: bigint;
}

/**
 * Parses an amount a person typed in dollars (`25`, `$12.50`, `1,250.75`, `.5`) into the API's
 * `Money`: integer micro-dollars as a decimal string. Works on the digits themselves, never
 * through a float, so `0.1` is exactly `"100000"`. Amounts past `maxMicros` are refused with a
 * message naming the field and the range, before any request.
 */
export function parseDollars(input: string, { label = 'The amount', maxMicros = MAX_MONEY_MICROS }: ParseDollarsOptions = {}): ParsedDollars {
  let text = input.trim();
  if (/^\$?\s*-/.test(text)) {
    return { ok: false, error: 'The amount cannot be negative.' };
  }
  text = text.replace(/^\$\s*/, '');
  if (text === '') return { ok: false, error: 'Enter an amount in dollars.' };

  const match = AMOUNT.exec(text);
  const whole = match?.[1] ?? '';
  const fraction = (match?.[2] ?? '').replace(/0+$/, '');
  if (!match || (whole === '' && (match[2] ?? '') === '')) {
    return { ok: false, error: 'Enter an amount in dollars, like 25 or 12.50.' };
  }
  if (fraction.length > MICRO_DIGITS) {
    return { ok: false, error: 'Use at most 6 decimal places (one micro-dollar).' };
  }

  const micros = BigInt(whole.replaceAll(',', '') || '0') * MICROS_PER_DOLLAR + BigInt(fraction.padEnd(MICRO_DIGITS, '0'));
  if (micros > maxMicros) return { ok: false, error: `${label} must be between $0 and ${maxDollars(maxMicros)}.` };
  return { ok: true, micros: micros.toString() };
}

/**
 * Micro-dollars as a plain amount for an input field, the inverse of `parseDollars`: `"25000000"`
 * → `25`, `"12500000"` → `12.50`, `"1500"` → `0.0015`. No currency sign, no grouping.
 */
export function dollarsInput(micros: string | bigint): string {
  const value = typeof micros === 'bigint' ? micros : BigInt(micros);
  const sign = value < 0n ? '-' : '';
  const abs = value < 0n ? -value : value;
  const whole = (abs / MICROS_PER_DOLLAR).toString();
  const fraction = (abs % MICROS_PER_DOLLAR).toString().padStart(MICRO_DIGITS, '0').replace(/0+$/, '');
  return fraction ? `${sign}${whole}.${fraction.padEnd(2, '0')}` : `${sign}${whole}`;
}

/** A maximum in micro-dollars as dollars for a message, whole cents down: `$9,999,999,999,999.99`. */
function maxDollars(micros: bigint): string {
  const cents = micros / 10_000n;
  const whole = (cents / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const fraction = cents % 100n;
  return fraction === 0n ? `$${whole}` : `$${whole}.${fraction.toString().padStart(2, '0')}`;
}
