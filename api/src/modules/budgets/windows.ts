import type { BudgetPeriod } from '../../_generated/prisma/enums.js';

/** Budget periods are calendar days and months on the organization's wall clock, whatever its offset or DST. */

interface WallClock {
  year: number;
  month: number; // 1-12
  day: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string) {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

function wallTime(at: Date, timeZone: string) {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(at)) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  return parts as { year: number; month: number; day: number; hour: number; minute: number; second: number };
}

/** How far the zone's wall clock is ahead of UTC at this instant, in ms. */
function offsetMs(at: Date, timeZone: string) {
  const w = wallTime(at, timeZone);
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(at.getTime() / 1000) * 1000;
}

/** The UTC instant at which the zone's wall clock reads 00:00 on the given date. */
function zonedMidnight({ year, month, day }: WallClock, timeZone: string): Date {
  const naive = Date.UTC(year, month - 1, day);
  // Two passes settle the offset even when midnight sits next to a DST change.
  let t = naive - offsetMs(new Date(naive), timeZone);
  t = naive - offsetMs(new Date(t), timeZone);
  return new Date(t);
}

/** Start of the period containing `at`. */
export function windowStart(period: BudgetPeriod, timeZone: string, at: Date): Date {
  const w = wallTime(at, timeZone);
  return zonedMidnight({ year: w.year, month: w.month, day: period === 'DAILY' ? w.day : 1 }, timeZone);
}

/** Start of the next period: when the budget resets. */
export function windowEnd(period: BudgetPeriod, timeZone: string, at: Date): Date {
  const start = windowStart(period, timeZone, at);
  const w = wallTime(start, timeZone);
  if (period === 'DAILY') {
    // 36 h after local midnight is always inside the next local day (days are 23-25 h long).
    const next = wallTime(new Date(start.getTime() + 36 * 3600_000), timeZone);
    return zonedMidnight({ year: next.year, month: next.month, day: next.day }, timeZone);
  }
  return zonedMidnight({ year: w.month === 12 ? w.year + 1 : w.year, month: (w.month % 12) + 1, day: 1 }, timeZone);
}
