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
