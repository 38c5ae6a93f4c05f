import { DateTime } from "luxon";
import type { TimeWindow } from "../../infra/config.js";

type Weekday = TimeWindow["days"][number];

const WEEKDAYS: Record<string, Weekday> = { Mon: "mon", Tue: "tue", Wed: "wed", Thu: "thu", Fri: "fri", Sat: "sat", Sun: "sun" };

export interface LocalClock {
  day: Weekday;
  /** "HH:MM", 24-hour, in the policy's time zone. */
  time: string;
}

/** The weekday and wall-clock time of `now` (ms since epoch) in an IANA time zone, daylight saving included. */
export function localClock(now: number, timeZone: string): LocalClock {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone,
    weekday: "short",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(now);
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((candidate) => candidate.type === type)?.value ?? "";
  const day = WEEKDAYS[part("weekday")];
  if (day === undefined) {
    throw new RangeError(`cannot read the weekday of ${now} in ${timeZone}`);
  }
  return { day, time: `${part("hour")}:${part("minute")}` };
}

/** A one-off window on given dates (an exam, an event), set through the API; its times are instants, in ms since epoch. */
export interface DatedWindow {
  name: string;
  from: number;
  to: number;
  min: number;
}

/**
 * The minimum of active servers at `now`: the group minimum, raised by every weekly window and every dated window
 * that is open (from inclusive, to exclusive).
 */
export function minimumAt(
  policy: { min: number; timeZone: string; windows: readonly TimeWindow[]; datedWindows?: readonly DatedWindow[] },
  now: number,
): number {
  const clock = localClock(now, policy.timeZone);
  let minimum = policy.min;
  for (const window of policy.windows) {
    if (window.days.includes(clock.day) && window.from <= clock.time && clock.time < window.to) {
      minimum = Math.max(minimum, window.min);
    }
  }
  for (const window of policy.datedWindows ?? []) {
    if (window.from <= now && now < window.to) minimum = Math.max(minimum, window.min);
  }
  return minimum;
}

/** A schedule's window (scaler/store/schedules.ts validates it): a duration from the call, or times of day. */
export interface ScheduleShape {
  min: number;
  durationMinutes?: number | undefined;
  startsInMinutes?: number | undefined;
  at?: string | undefined;
  until?: string | undefined;
}

/** What a schedule keeps, in words: "20 servers for 180 min" or "20 servers 10:30-13:30". */
export function describeSchedule(spec: ScheduleShape): string {
  if (spec.at !== undefined && spec.until !== undefined) return `${spec.min} servers ${spec.at}-${spec.until}`;
  const lead = spec.startsInMinutes === undefined || spec.startsInMinutes === 0 ? "" : `, from ${spec.startsInMinutes} min after the call`;
  return `${spec.min} servers for ${spec.durationMinutes ?? 0} min${lead}`;
}

/**
 * The span a schedule's hook opens at `now`: its duration from now (plus its lead), or the next span from `at` to
 * `until` in the fleet's zone that has not ended (one already open is taken as it is; `until` before `at` ends the
 * next day). Luxon resolves days when clocks change.
 */
export function scheduledSpan(spec: ScheduleShape, now: number, timeZone: string): { from: number; to: number } {
  if (spec.at === undefined || spec.until === undefined) {
    const from = now + (spec.startsInMinutes ?? 0) * 60_000;
    return { from, to: from + (spec.durationMinutes ?? 0) * 60_000 };
  }
  const today = DateTime.fromMillis(now, { zone: timeZone }).startOf("day");
  const timeOn = (day: DateTime, clock: string) => {
    const [hour, minute] = clock.split(":").map(Number);
    return day.set({ hour: hour!, minute: minute! });
  };
  const spanOn = (day: DateTime) => {
    const from = timeOn(day, spec.at!);
    const to = timeOn(day, spec.until!);
    return { from: from.toMillis(), to: (to <= from ? timeOn(day.plus({ days: 1 }), spec.until!) : to).toMillis() };
  };
  // Yesterday's span may still be open (one that ends after midnight); tomorrow's always ends after now.
  const open = [today.minus({ days: 1 }), today].map(spanOn).find((span) => span.to > now);
  return open ?? spanOn(today.plus({ days: 1 }));
}
