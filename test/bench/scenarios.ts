/**
 * The days the policy bench replays, by family, each over several weeks so that the forecast of a scored day is what
 * the policy itself recorded on the same weekday a week before. Everything is generated from fixed seeds: the same
 * days on every run. Times are local wall-clock seconds after midnight of the first day of a span (a span of two days
 * holds the second day's meetings at 86,400 s and later).
 */
import { readFileSync } from "node:fs";
import { addDays } from "./calendar.js";
import { generatedSchoolDay, random, type DayMeeting } from "./generated-day.js";
import { meetingDemand } from "./load-model.js";

/** One replayed stretch of local days, from local midnight of `date`. */
export interface Span {
  date: string;
  days: number;
  label: string;
  meetings: DayMeeting[];
}

export type Family = "ordinary" | "recorded" | "surge" | "camera" | "holiday" | "dst" | "after-holiday";

export interface Scenario {
  name: string;
  family: Family;
  /** One span a week, oldest first; each replays on the fleet and with the load profile the one before left. */
  weeks: Span[];
  /** Which weeks are scored; the ones before only build the fleet and the load profile. */
  scored: number[];
}

interface TraceMeeting extends DayMeeting {
  kind: string;
}

/** A trace in the format of test/traces/school-day.csv. */
export function readTrace(path: string): TraceMeeting[] {
  const [header, ...lines] = readFileSync(path, "utf8").trim().split("\n");
  const columns = (header ?? "").split(",");
  const at = (name: string) => columns.indexOf(name);
  return lines.map((line): TraceMeeting => {
    const cells = line.split(",");
    const [h, m, s] = (cells[at("start_local")] ?? "").split(":").map(Number);
    return {
      startSecond: (h ?? 0) * 3600 + (m ?? 0) * 60 + (s ?? 0),
      durationSeconds: Number(cells[at("duration_s")]),
      participants: Number(cells[at("participants")]),
      videos: Number(cells[at("videos")]),
      listenOnly: Number(cells[at("listen_only")]),
      kind: cells[at("kind")] ?? "class",
    };
  });
}

/**
 * Another week of the school that recorded `trace`: the same timetable (each meeting's slot, opened up to 3 minutes
 * earlier or later, one in 20 not held), but each meeting's length, size and cameras taken from another meeting of the
 * same kind that began within half an hour. The scored day's own meetings never reach its history this way.
 */
export function anotherWeekOf(trace: readonly TraceMeeting[], seed: number): DayMeeting[] {
  const next = random(seed);
  const days: DayMeeting[] = [];
  for (const meeting of trace) {
    if (next() < 0.05) continue;
    const donors = trace.filter(
      (other) => other.kind === meeting.kind && other !== meeting && Math.abs(other.startSecond - meeting.startSecond) <= 1800,
    );
    const donor = donors[Math.floor(next() * donors.length)] ?? meeting;
    days.push({
      startSecond: Math.max(0, meeting.startSecond + Math.round((next() - 0.5) * 360)),
      durationSeconds: donor.durationSeconds,
      participants: donor.participants,
      videos: donor.videos,
      listenOnly: donor.listenOnly,
    });
  }
  return days.sort((a, b) => a.startSecond - b.startSecond);
}

const at = (hours: number, minutes: number) => (hours * 60 + minutes) * 60;

/** Cores the meetings running at `second` need. */
function coresAt(meetings: readonly DayMeeting[], second: number): number {
  let cores = 0;
  for (const meeting of meetings) {
    if (meeting.startSecond <= second && second < meeting.startSecond + meeting.durationSeconds) cores += meetingDemand(meeting).cores;
  }
  return cores;
}

/**
 * An unscheduled surge: at 16:30, when lessons are over and last week's load was calm, new class-like meetings open
 * within ten minutes until the load is three times what it was, and run for three to four hours.
 */
export function withSurge(day: readonly DayMeeting[], seed: number): DayMeeting[] {
  const next = random(seed);
  const between = (low: number, high: number) => low + Math.floor(next() * (high - low + 1));
  const start = at(16, 30);
  const target = 2 * coresAt(day, start + 600);
  const added: DayMeeting[] = [];
  let cores = 0;
  while (cores < target) {
    const participants = between(15, 35);
    const meeting: DayMeeting = {
      startSecond: start + between(0, 599),
      durationSeconds: between(180, 240) * 60,
      participants,
      videos: next() < 0.3 ? between(2, 8) : between(0, 2),
      listenOnly: Math.floor(participants * (0.15 + next() * 0.3)),
    };
    cores += meetingDemand(meeting).cores;
    added.push(meeting);
  }
  return [...day, ...added].sort((a, b) => a.startSecond - b.startSecond);
}

/**
 * A project day: besides the lessons, 90 long meetings where nearly everyone has a camera on open within five minutes
 * of 13:45 and run for two to three hours. By head count they look like small classes.
 */
export function withCameraMeetings(day: readonly DayMeeting[], seed: number): DayMeeting[] {
  const next = random(seed);
  const between = (low: number, high: number) => low + Math.floor(next() * (high - low + 1));
  const added = Array.from({ length: 90 }, (): DayMeeting => {
    const participants = between(12, 24);
    return {
      startSecond: at(13, 45) + between(0, 299),
      durationSeconds: between(120, 180) * 60,
      participants,
      videos: Math.round(participants * (0.7 + next() * 0.3)),
      listenOnly: 0,
    };
  });
  return [...day, ...added].sort((a, b) => a.startSecond - b.startSecond);
}

/** A school holiday: no lessons, a few staff meetings during the day and a few parents' calls in the evening. */
export function holidayDay(seed: number): DayMeeting[] {
  const next = random(seed);
  const between = (low: number, high: number) => low + Math.floor(next() * (high - low + 1));
  const staff = Array.from({ length: 12 }, (): DayMeeting => {
    const participants = between(3, 12);
    return {
      startSecond: at(9, 0) + between(0, 360) * 60,
      durationSeconds: between(30, 90) * 60,
      participants,
      videos: between(0, 4),
      listenOnly: 0,
    };
  });
  const parents = Array.from({ length: 10 }, (): DayMeeting => {
    return {
      startSecond: at(17, 30) + between(0, 150) * 60,
      durationSeconds: between(10, 30) * 60,
      participants: between(2, 4),
      videos: between(0, 2),
      listenOnly: 0,
    };
  });
  return [...staff, ...parents].sort((a, b) => a.startSecond - b.startSecond);
}

/** A Sunday: tutoring calls in the evening only. */
function sundayEvening(seed: number): DayMeeting[] {
  const next = random(seed);
  const between = (low: number, high: number) => low + Math.floor(next() * (high - low + 1));
  return Array.from({ length: 25 }, (): DayMeeting => {
    const participants = between(2, 6);
    return {
      startSecond: at(17, 0) + between(0, 180) * 60,
      durationSeconds: between(30, 60) * 60,
      participants,
      videos: between(0, 3),
      listenOnly: 0,
    };
  }).sort((a, b) => a.startSecond - b.startSecond);
}

/** Ordinary school days of the generated school (generated-day.ts): the same timetable, another draw each week. */
const ordinary = (week: number, salt: number) => generatedSchoolDay(20250312 + salt * 1000 + week * 7919);

const day = (date: string, label: string, meetings: DayMeeting[]): Span => ({ date, days: 1, label, meetings });

/** The same weekday `weeks` times from `firstDate`. */
const weekly = (firstDate: string, weeks: number, make: (week: number, date: string) => Span): Span[] =>
  Array.from({ length: weeks }, (_, week) => make(week, addDays(firstDate, 7 * week)));

/**
 * The families, each over `weeks` weeks (at least two; the first day after a holiday needs three). Tuesdays in
 * February 2025, far from a clock change; the clock change is Sunday 30 March 2025 in Europe/Berlin.
 */
export function scenarios(weeks: number, recordedTrace: string): Scenario[] {
  const last = weeks - 1;
  const recorded = readTrace(recordedTrace);
  const afterHoliday = Math.max(3, weeks);
  return [
    {
      name: "ordinary school weeks (generated-day.ts)",
      family: "ordinary",
      weeks: weekly("2025-02-04", weeks, (week, date) => day(date, `week ${week + 1}`, ordinary(week, 1))),
      scored: Array.from({ length: weeks - 1 }, (_, index) => index + 1),
    },
    {
      name: "recorded school day (test/traces/school-day.csv)",
      family: "recorded",
      weeks: weekly("2025-02-04", weeks, (week, date) =>
        day(
          date,
          week === last ? "the recorded day" : `another week ${week + 1}`,
          week === last ? recorded : anotherWeekOf(recorded, 31 + week),
        ),
      ),
      scored: [last],
    },
    {
      name: "unscheduled surge (load triples at 16:30 within 10 minutes, for hours)",
      family: "surge",
      weeks: weekly("2025-02-04", weeks, (week, date) =>
        day(date, week === last ? "surge" : `week ${week + 1}`, week === last ? withSurge(ordinary(week, 2), 2) : ordinary(week, 2)),
      ),
      scored: [last],
    },
    {
      name: "camera-heavy project day (90 long camera meetings from 13:45 within 5 minutes)",
      family: "camera",
      weeks: weekly("2025-02-04", weeks, (week, date) =>
        day(
          date,
          week === last ? "cameras" : `week ${week + 1}`,
          week === last ? withCameraMeetings(ordinary(week, 3), 3) : ordinary(week, 3),
        ),
      ),
      scored: [last],
    },
    {
      name: "holiday after a normal week",
      family: "holiday",
      weeks: weekly("2025-02-04", weeks, (week, date) =>
        week === last ? day(date, "holiday", holidayDay(4)) : day(date, `week ${week + 1}`, ordinary(week, 4)),
      ),
      scored: [last],
    },
    {
      name: "first school day after a holiday",
      family: "after-holiday",
      weeks: weekly("2025-02-04", afterHoliday, (week, date) =>
        week === afterHoliday - 2 ? day(date, "holiday", holidayDay(5)) : day(date, `week ${week + 1}`, ordinary(week, 5)),
      ),
      scored: [afterHoliday - 1],
    },
    {
      name: "clocks change (Sun 30 Mar 2025, Europe/Berlin) and the Monday after",
      family: "dst",
      weeks: weekly(addDays("2025-03-30", -7 * last), weeks, (week, date) => ({
        date,
        days: 2,
        label: week === last ? "clock change" : `week ${week + 1}`,
        meetings: [
          ...sundayEvening(60 + week),
          ...ordinary(week, 6).map((meeting) => ({ ...meeting, startSecond: meeting.startSecond + 86_400 })),
        ],
      })),
      scored: [last],
    },
  ];
}
