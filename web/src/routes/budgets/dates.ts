/**
 * Calendar days on an organization's wall clock. Usage is bucketed by day in the organization's
 * time zone (budgets reset at its midnight), whatever the zone of the browser looking at it.
 * A day is a `YYYY-MM-DD` string, as the API's DAY usage keys are.
 */

const DAY_MS = 86_400_000;

const wallClocks = new Map<string, Intl.DateTimeFormat>();

function wallClock(timeZone: string): Intl.DateTimeFormat {
  let format = wallClocks.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    wallClocks.set(timeZone, format);
  }
  return format;
}

function wallParts(at: number, timeZone: string) {
  const parts: Record<string, number> = {};
  for (const part of wallClock(timeZone).formatToParts(at)) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  return parts as Record<'year' | 'month' | 'day' | 'hour' | 'minute' | 'second', number>;
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

function parseDay(day: string): [number, number, number] {
  const [year, month, date] = day.split('-').map(Number);
  return [year!, month!, date!];
}

/** The day `at` falls on in `timeZone`. */
export function zonedDay(at: Date | number, timeZone: string): string {
  const w = wallParts(typeof at === 'number' ? at : at.getTime(), timeZone);
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}`;
}

/** Calendar arithmetic only: no time zone can make a day 23 or 25 hours long here. */
export function addDays(day: string, days: number): string {
  const [year, month, date] = parseDay(day);
  const d = new Date(Date.UTC(year, month - 1, date + days));
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** Whole days from `from` to `to` (negative when `to` is earlier). */
export function daysBetween(from: string, to: string): number {
  const [fy, fm, fd] = parseDay(from);
  const [ty, tm, td] = parseDay(to);
  return Math.round((Date.UTC(ty, tm - 1, td) - Date.UTC(fy, fm - 1, fd)) / DAY_MS);
}

/** Every day from `from` to `to`, both included. */
export function eachDay(from: string, to: string): string[] {
  const count = daysBetween(from, to) + 1;
  return Array.from({ length: Math.max(0, count) }, (_, i) => addDays(from, i));
}

/** The instant the wall clock of `timeZone` reads 00:00 on `day` (or the first instant after, if DST skips it). */
export function startOfDay(day: string, timeZone: string): Date {
  const [year, month, date] = parseDay(day);
  const naive = Date.UTC(year, month - 1, date);
  const offsetAt = (t: number) => {
    const w = wallParts(t, timeZone);
    return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - (t - (((t % 1000) + 1000) % 1000));
  };
  // The offset at the naive guess can differ from the one at the answer near a DST change; a second pass settles it.
  const first = naive - offsetAt(naive);
  return new Date(naive - offsetAt(first));
}

/** `Jun 3` (and the year when it is not the current one), for chart axes and captions. */
export function formatDay(day: string, options: { withYear?: boolean; weekday?: boolean } = {}): string {
  const [year, month, date] = parseDay(day);
  return new Date(Date.UTC(year, month - 1, date)).toLocaleDateString(undefined, {
    timeZone: 'UTC',
    month: 'short',
    day: 'numeric',
    year: options.withYear ? 'numeric' : undefined,
    weekday: options.weekday ? 'short' : undefined,
  });
}
