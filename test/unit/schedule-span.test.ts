import { describe, expect, it } from "vitest";
import { describeSchedule, scheduledSpan } from "../../scaler/policy/timeWindows.js";

const BERLIN = "Europe/Berlin";
const at = (iso: string) => Date.parse(iso);
const span = (from: string, to: string) => ({ from: at(from), to: at(to) });

describe("a schedule's window by time of day, in the fleet's zone", () => {
  const exam = { min: 20, at: "10:30", until: "13:30" };

  it("opens today's span when called before it, and keeps one already open as it is", () => {
    // 09:00 in Berlin (CET, UTC+1) on a winter morning.
    expect(scheduledSpan(exam, at("2026-12-07T08:00:00Z"), BERLIN)).toEqual(span("2026-12-07T09:30:00Z", "2026-12-07T12:30:00Z"));
    expect(scheduledSpan(exam, at("2026-12-07T10:00:00Z"), BERLIN)).toEqual(span("2026-12-07T09:30:00Z", "2026-12-07T12:30:00Z"));
  });

  it("takes tomorrow's span once today's has ended", () => {
    expect(scheduledSpan(exam, at("2026-12-07T13:00:00Z"), BERLIN)).toEqual(span("2026-12-08T09:30:00Z", "2026-12-08T12:30:00Z"));
  });

  it("ends a span whose until is before its at on the next day, and finds last night's while it is open", () => {
    const night = { min: 2, at: "22:00", until: "02:00" };
    expect(scheduledSpan(night, at("2026-12-08T00:30:00Z"), BERLIN)).toEqual(span("2026-12-07T21:00:00Z", "2026-12-08T01:00:00Z"));
    expect(scheduledSpan(night, at("2026-12-08T12:00:00Z"), BERLIN)).toEqual(span("2026-12-08T21:00:00Z", "2026-12-09T01:00:00Z"));
  });

  it("reads times of day on the day clocks change as the clocks on the wall show them", () => {
    // 29 March 2026: Berlin moves from UTC+1 to UTC+2 at 02:00 local; the 10:30 exam is at 08:30 UTC.
    expect(scheduledSpan(exam, at("2026-03-29T05:00:00Z"), BERLIN)).toEqual(span("2026-03-29T08:30:00Z", "2026-03-29T11:30:00Z"));
    expect(scheduledSpan(exam, at("2026-03-28T05:00:00Z"), BERLIN)).toEqual(span("2026-03-28T09:30:00Z", "2026-03-28T12:30:00Z"));
  });

  it("keeps the duration form: from the call plus its lead", () => {
    expect(scheduledSpan({ min: 6, durationMinutes: 90, startsInMinutes: 15 }, 0, BERLIN)).toEqual({ from: 900_000, to: 6_300_000 });
  });

  it("says what it keeps in words", () => {
    expect(describeSchedule(exam)).toBe("20 servers 10:30-13:30");
    expect(describeSchedule({ min: 6, durationMinutes: 90, startsInMinutes: 15 })).toBe("6 servers for 90 min, from 15 min after the call");
  });
});
