import { describe, expect, it } from "vitest";
import { workerPolicySchema } from "../../infra/config.js";
import { localClock, minimumAt } from "../../scaler/policy/timeWindows.js";
import { localToUtc, minimumOf, spanMinutes, weekSlot } from "../bench/calendar.js";
import { Fleet, launchRateKept, newFleet, runSpan, type Day, type Scaler, type SimMeeting } from "../bench/fleet-sim.js";
import { meetingDemand } from "../bench/load-model.js";
import { forecastFrom, type LoadProfile } from "../bench/scalers.js";

const policy = workerPolicySchema.parse({
  min: 1,
  max: 4,
  baseline: 1,
  defaultSize: { cores: 4, ramGb: 16 },
  maxSize: { cores: 4, ramGb: 16 },
  timeZone: "Europe/Berlin",
});

const meeting = (id: number, startMinute: number, minutes: number, participants: number, videos = 0): SimMeeting => ({
  id,
  startSecond: startMinute * 60,
  endSecond: (startMinute + minutes) * 60,
  participants,
  videos,
  listenOnly: 0,
});

const idle: Scaler = { name: "idle", intervalMinutes: 1, decide: () => ({ decisions: [], placement: [] }) };

describe("the bench's overload accounting", () => {
  it("counts an overloaded server's minutes and every participant on it, and nothing under the line", () => {
    // 60 participants and 40 cameras: 2,400 forwarded streams, beyond 90 % of 4 cores.
    const heavy = meeting(0, 0, 10, 60, 40);
    expect(meetingDemand(heavy).cores).toBeGreaterThan(0.9 * 4);
    const day: Day = { startMs: 0, minutes: 20, meetings: [heavy, meeting(1, 0, 20, 5)] };
    const { result } = runSpan(idle, day, newFleet(policy, 1), policy);
    expect(result.overloadedServerMinutes).toBe(10);
    expect(result.overloadedParticipantMinutes).toBe(10 * (60 + 5));
    expect(result.serverHours).toBeCloseTo(20 / 60);
    expect(result.coreHours).toBeCloseTo((20 * 4) / 60);
    expect(result.ramGbHours).toBeCloseTo((20 * 16) / 60);
  });

  it("counts all participant-minutes of a meeting no server could take", () => {
    const day: Day = { startMs: 0, minutes: 5, meetings: [meeting(0, 1, 30, 12)] };
    const { result } = runSpan(idle, day, newFleet(policy, 0, 1), policy);
    expect(result.meetingsRejected).toBe(1);
    expect(result.overloadedParticipantMinutes).toBe(30 * 12);
    expect(result.serverHours).toBe(0);
  });

  it("bills a booting server but measures load only on running ones", () => {
    const day: Day = { startMs: 0, minutes: 3, meetings: [] };
    const fleet = new Fleet(newFleet(policy, 0, 1), policy, day);
    fleet.apply({ kind: "start", server: "bbb-01", reason: "test", inputs: {}, dryRun: false }, 0);
    fleet.advance(0);
    const metrics = fleet.measure();
    expect(metrics.size).toBe(0);
    expect(fleet.result("x").serverHours).toBeCloseTo(1 / 60);
    expect(fleet.launches).toEqual([{ minute: 0, kind: "start" }]);
  });
});

describe("the bench's window-minimum check", () => {
  it("counts the minutes a fleet ends with fewer servers powered than the minimum", () => {
    const day: Day = { startMs: 0, minutes: 7, meetings: [] };
    const { fleet } = runSpan(idle, day, newFleet(policy, 0, 2), policy);
    expect(fleet.minutesBelowMinimum).toBe(7);
    expect(runSpan(idle, day, newFleet(policy, 1), policy).fleet.minutesBelowMinimum).toBe(0);
  });
});

describe("the bench's launch-rate check", () => {
  const rate = { launchRate: { count: 2, perSeconds: 300 } };
  it("accepts launches spread over the window and rejects a third within it", () => {
    expect(launchRateKept([{ minute: 0 }, { minute: 0 }, { minute: 5 }, { minute: 5 }], rate)).toBe(true);
    expect(launchRateKept([{ minute: 0 }, { minute: 2 }, { minute: 4 }], rate)).toBe(false);
  });
});

describe("the bench's calendar and forecast", () => {
  it("puts a local time on the right instant across the spring clock change in Europe/Berlin", () => {
    expect(new Date(localToUtc("2025-03-29", 8 * 3600, "Europe/Berlin")).toISOString()).toBe("2025-03-29T07:00:00.000Z");
    expect(new Date(localToUtc("2025-03-30", 8 * 3600, "Europe/Berlin")).toISOString()).toBe("2025-03-30T06:00:00.000Z");
    expect(new Date(localToUtc("2025-03-30", 86_400 + 8 * 3600, "Europe/Berlin")).toISOString()).toBe("2025-03-31T06:00:00.000Z");
    expect(spanMinutes("2025-03-30", 1, "Europe/Berlin")).toBe(23 * 60);
    expect(spanMinutes("2025-10-26", 1, "Europe/Berlin")).toBe(25 * 60);
  });

  it("names slots and window minimums as the decision loop and the policy do, every minute of a clock-change week", () => {
    const school = workerPolicySchema.parse({
      ...policy,
      max: 40,
      windows: [{ days: ["mon", "tue", "wed", "thu", "fri"], from: "07:30", to: "14:00", min: 30 }],
    });
    const from = localToUtc("2025-03-30", 0, "Europe/Berlin");
    for (let at = from; at < from + 2 * 86_400_000; at += 37 * 60_000) {
      const clock = localClock(at, "Europe/Berlin");
      expect(weekSlot(at, "Europe/Berlin")).toBe(`${clock.day} ${clock.time}`);
      expect(minimumOf(school, at)).toBe(minimumAt(school, at));
    }
  });

  it("reads last week's load at the same local time after the clocks changed, and not when it is older than eight days", () => {
    const recordedAt = localToUtc("2025-03-24", 8 * 3600, "Europe/Berlin");
    const profile: LoadProfile = new Map([["mon 08:00", { at: recordedAt, cpuCores: 40, memoryGb: 200 }]]);
    const now = localToUtc("2025-03-31", 7 * 3600 + 59 * 60, "Europe/Berlin");
    expect(forecastFrom(profile, "Europe/Berlin", now, 60_000)).toEqual([{ at: now + 60_000, cpuCores: 40, memoryGb: 200 }]);
    const twoWeeksLater = localToUtc("2025-04-07", 7 * 3600 + 59 * 60, "Europe/Berlin");
    expect(forecastFrom(profile, "Europe/Berlin", twoWeeksLater, 60_000)).toEqual([]);
  });
});
