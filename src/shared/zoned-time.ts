/**
 * Wall-clock time in a time zone (DESIGN §5: UTC in storage, Asia/Shanghai in reports and day boundaries),
 * through Intl only, so a zone with daylight saving would work as well.
 */

export const HOTLINE_TZ = 'Asia/Shanghai';

export interface WallTime {
  year: number;
  /** 1..12 */
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** 0 = Sunday .. 6 = Saturday */
  weekday: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric', weekday: 'short' });
    formatters.set(tz, f);
  }
  return f;
}

const WEEKDAYS: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/** the wall clock in `tz` at instant `at` */
export function wallTime(at: Date, tz = HOTLINE_TZ): WallTime {
  const parts: Record<string, string> = {};
  for (const p of formatter(tz).formatToParts(at)) parts[p.type] = p.value;
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
    weekday: WEEKDAYS[parts.weekday ?? ''] ?? 0,
  };
}

/** the zone's offset from UTC at instant `ms`, in ms */
function offsetAt(ms: number, tz: string): number {
  const w = wallTime(new Date(ms), tz);
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(ms / 1000) * 1000;
}

/** the instant at which the wall clock in `tz` shows this date and time (month 1..12; out-of-range values roll over) */
export function zonedToUtc(year: number, month: number, day: number, hour = 0, minute = 0, second = 0, tz = HOTLINE_TZ): Date {
  const guess = Date.UTC(year, month - 1, day, hour, minute, second);
  const first = guess - offsetAt(guess, tz);
  const second_ = guess - offsetAt(first, tz);
  return new Date(second_);
}

/** 'YYYY-MM-DD' -> [year, month, day], or null when it is no real calendar date */
export function parseLocalDate(s: string): [number, number, number] | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const check = new Date(Date.UTC(y, mo - 1, d));
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) return null;
  return [y, mo, d];
}

/** the start of the local day `days` after the given local date (negative: before) */
export function localDayStart(year: number, month: number, day: number, days = 0, tz = HOTLINE_TZ): Date {
  const d = new Date(Date.UTC(year, month - 1, day + days));
  return zonedToUtc(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), 0, 0, 0, tz);
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** 'YYYY-MM-DD' of a wall date */
export function wallDate(w: Pick<WallTime, 'year' | 'month' | 'day'>): string {
  return `${w.year}-${pad2(w.month)}-${pad2(w.day)}`;
}

/** 'HH:mm' of a wall time */
export function wallHHmm(w: Pick<WallTime, 'hour' | 'minute'>): string {
  return `${pad2(w.hour)}:${pad2(w.minute)}`;
}

/** 'HH:mm' of an instant in `tz` */
export function localHHmm(at: Date, tz = HOTLINE_TZ): string {
  return wallHHmm(wallTime(at, tz));
}
