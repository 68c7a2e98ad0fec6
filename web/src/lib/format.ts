const MICROS_PER_DOLLAR = 1_000_000n;
const dollarsFormat = new Intl.NumberFormat('en-US');

/**
 * Formats integer micro-dollars (the API's `Money` string) as US dollars, exactly: at least two
 * decimals, up to six when the amount has sub-cent precision. `1234500000` → `$1,234.50`,
 * `1500` → `$0.0015`.
 */
export function formatMoney(micros: string | bigint): string {
  const value = typeof micros === 'bigint' ? micros : BigInt(micros);
  const abs = value < 0n ? -value : value;
  const whole = abs / MICROS_PER_DOLLAR;
  const fraction = (abs % MICROS_PER_DOLLAR).toString().padStart(6, '0').replace(/0+$/, '').padEnd(2, '0');
  return `${value < 0n ? '-' : ''}$${dollarsFormat.format(whole)}.${fraction}`;
}

/** Adds `Money` strings without floating point. */
export function sumMoney(...amounts: (string | bigint)[]): bigint {
  return amounts.reduce<bigint>((sum, a) => sum + BigInt(a), 0n);
}

/** A compact duration: `42s`, `5m 12s`, `3h 4m`, `2d 7h`. */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const days = Math.floor(s / 86_400);
  const hours = Math.floor((s % 86_400) / 3_600);
  const minutes = Math.floor((s % 3_600) / 60);
  const seconds = s % 60;
  if (days > 0) return `${days}d ${hours}h`;
  if (hours > 0) return `${hours}h ${minutes}m`;
  if (minutes > 0) return `${minutes}m ${seconds}s`;
  return `${seconds}s`;
}

/** Milliseconds with precision that suits the magnitude: `0.42 ms`, `12.3 ms`, `250 ms`. */
export function formatLatency(ms: number): string {
  const digits = ms < 10 ? 2 : ms < 100 ? 1 : 0;
  return `${ms.toFixed(digits)} ms`;
}

/** `just now`, `12s ago`, `3m ago`, `2h ago`, `4d ago`. */
export function formatAgo(then: number, now: number): string {
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 2) return 'just now';
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3_600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3_600)}h ago`;
  return `${Math.floor(seconds / 86_400)}d ago`;
}

/** A `DateTime` in the viewer's locale and time zone, e.g. `Nov 24, 2026, 09:30:00`. */
export function formatDateTime(iso: string): string {
  return new Date(iso).toLocaleString(undefined, {
    dateStyle: 'medium',
    timeStyle: 'medium',
  });
}

/** `text` cut to at most `max` characters, ending with an ellipsis when it was longer. */
export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1).trimEnd()}…` : text;
}
