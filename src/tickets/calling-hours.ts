import { HOTLINE_TZ, wallTime, zonedToUtc } from '../shared/zoned-time.js';

/** calling hours as minutes after local midnight, end exclusive (config.callback.hours) */
export interface CallingHours {
  startMinute: number;
  endMinute: number;
}

/** a closed ticket must be called back within this (DESIGN §4: 100 % within 24 h) */
export const TICKET_CALLBACK_DEADLINE_MS = 24 * 3600 * 1000;

/**
 * The first moment at or after `from` inside the calling hours (local time in `tz`): `from` itself when it is
 * inside, else the next opening (later today, or tomorrow's).
 */
export function firstCallingMoment(from: Date, hours: CallingHours, tz = HOTLINE_TZ): Date {
  const w = wallTime(from, tz);
  const minute = w.hour * 60 + w.minute + (w.second + (from.getTime() % 1000) / 1000) / 60;
  if (minute >= hours.startMinute && minute < hours.endMinute) return from;
  const dayOffset = minute < hours.startMinute ? 0 : 1;
  return zonedToUtc(w.year, w.month, w.day + dayOffset, Math.floor(hours.startMinute / 60), hours.startMinute % 60, 0, tz);
}
