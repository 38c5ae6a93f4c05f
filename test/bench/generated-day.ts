import type { MeetingLoad } from "./load-model.js";

/** One meeting of a day: when it starts (seconds after local midnight) and for how long. */
export interface DayMeeting extends MeetingLoad {
  startSecond: number;
  durationSeconds: number;
}

/** A small deterministic generator (mulberry32), so the generated day is the same on every run. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const at = (hours: number, minutes: number) => (hours * 60 + minutes) * 60;

/**
 * A school day with another shape than school-day.csv: a later first bell, 50-minute lessons, a long lunch break,
 * the biggest lesson late in the morning and lessons on into the afternoon after the usual 14:00, then staff and
 * parents' meetings. Classes open within a few minutes of their bell, sizes and cameras vary per class.
 */
export function generatedSchoolDay(seed = 20250312): DayMeeting[] {
  const next = random(seed);
  const between = (low: number, high: number) => low + Math.floor(next() * (high - low + 1));
  const meetings: DayMeeting[] = [];
  const lessons: { bell: number; classes: number }[] = [
    { bell: at(8, 15), classes: 150 },
    { bell: at(9, 10), classes: 220 },
    { bell: at(10, 20), classes: 290 },
    { bell: at(11, 15), classes: 240 },
    { bell: at(12, 10), classes: 170 },
    { bell: at(13, 40), classes: 130 },
    { bell: at(14, 35), classes: 110 },
    { bell: at(15, 30), classes: 50 },
  ];
  for (const { bell, classes } of lessons) {
    for (let index = 0; index < classes; index += 1) {
      const participants = between(14, 34);
      // Most teachers open their room in the minute or two around the bell; a few come late.
      const delay = Math.floor(next() ** 2 * 420) - 90;
      meetings.push({
        startSecond: bell + delay,
        durationSeconds: between(38, 52) * 60,
        participants,
        videos: next() < 0.3 ? between(2, 8) : between(0, 2),
        listenOnly: Math.floor(participants * (0.15 + next() * 0.3)),
      });
    }
  }
  for (let index = 0; index < 45; index += 1) {
    const participants = between(6, 40);
    meetings.push({
      startSecond: at(15, 45) + between(0, 75) * 60,
      durationSeconds: between(45, 110) * 60,
      participants,
      videos: between(1, 10),
      listenOnly: Math.floor(participants / 5),
    });
  }
  for (let index = 0; index < 70; index += 1) {
    meetings.push({
      startSecond: at(17, 30) + between(0, 150) * 60,
      durationSeconds: between(10, 30) * 60,
      participants: between(2, 4),
      videos: between(0, 3),
      listenOnly: 0,
    });
  }
  return meetings.sort((a, b) => a.startSecond - b.startSecond);
}
