/** Local dates and times in an IANA time zone, daylight saving included, for days the bench replays. */
import { minimumAt } from "../../scaler/policy/timeWindows.js";

const MINUTE_MS = 60_000;

/** Formatters are slow to build and the bench asks millions of times: one per zone and kind. */
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(kind: "full" | "slot", timeZone: string): Intl.DateTimeFormat {
  const key = `${kind} ${timeZone}`;
  let cached = formatters.get(key);
  if (cached === undefined) {
    cached =
      kind === "full"
        ? new Intl.DateTimeFormat("en-US", {
            timeZone,
            hourCycle: "h23",
            year: "numeric",
            month: "2-digit",
            day: "2-digit",
            hour: "2-digit",
            minute: "2-digit",
            second: "2-digit",
          })
        : new Intl.DateTimeFormat("en-GB", { timeZone, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    formatters.set(key, cached);
  }
  return cached;
}

/** The slot of the week of `at` as the decision loop names it (scaler/loop.ts): "tue 08:05", local time. */
export function weekSlot(at: number, timeZone: string): string {
  const parts = formatter("slot", timeZone).formatToParts(at);
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((candidate) => candidate.type === type)?.value ?? "";
  return `${part("weekday").toLowerCase()} ${part("hour")}:${part("minute")}`;
}

/** The zone's offset from UTC at `at` (ms since epoch), in ms. */
function offsetAt(at: number, timeZone: string): number {
  const parts = formatter("full", timeZone).formatToParts(at);
  const value = (type: Intl.DateTimeFormatPartTypes) => Number(parts.find((part) => part.type === type)?.value);
  const asUtc = Date.UTC(value("year"), value("month") - 1, value("day"), value("hour"), value("minute"), value("second"));
  return asUtc - Math.floor(at / 1000) * 1000;
}

/** The date `days` after an ISO date ("2025-03-30"). */
export function addDays(date: string, days: number): string {
  const [year, month, day] = date.split("-").map(Number);
  return new Date(Date.UTC(year ?? 1970, (month ?? 1) - 1, (day ?? 1) + days)).toISOString().slice(0, 10);
}

/**
 * The instant (ms since epoch) of a local wall-clock time: `second` seconds after local midnight of `date`, counted
 * on the wall clock (a time that the clock skips, such as 02:30 on the day summer time begins, lands an hour later).
 */
export function localToUtc(date: string, second: number, timeZone: string): number {
  const dayOffset = Math.floor(second / 86_400);
  const [year, month, day] = addDays(date, dayOffset).split("-").map(Number);
  const wall = Date.UTC(year ?? 1970, (month ?? 1) - 1, day ?? 1) + (second - dayOffset * 86_400) * 1000;
  const first = wall - offsetAt(wall, timeZone);
  return wall - offsetAt(first, timeZone);
}

/** Minutes from local midnight of `date` to local midnight `days` later: 1,380 on the day summer time begins. */
export function spanMinutes(date: string, days: number, timeZone: string): number {
  return Math.round((localToUtc(addDays(date, days), 0, timeZone) - localToUtc(date, 0, timeZone)) / MINUTE_MS);
}

const minimums = new WeakMap<object, Map<string, number>>();

/**
 * scaler/policy's minimumAt, asked once per slot of the week and policy: it depends on nothing else, and the bench
 * asks it every minute of every replayed day.
 */
export function minimumOf(policy: Parameters<typeof minimumAt>[0], at: number): number {
  let bySlot = minimums.get(policy);
  if (bySlot === undefined) {
    bySlot = new Map();
    minimums.set(policy, bySlot);
  }
  const slot = weekSlot(at, policy.timeZone);
  let minimum = bySlot.get(slot);
  if (minimum === undefined) {
    minimum = minimumAt(policy, at);
    bySlot.set(slot, minimum);
  }
  return minimum;
}
