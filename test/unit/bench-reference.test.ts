import { describe, expect, it } from "vitest";
import { workerPolicySchema, type WorkerPolicy } from "../../infra/config.js";
import { localToUtc, spanMinutes } from "../bench/calendar.js";
import { CREATE_MINUTES, launchRateKept, newFleet, runSpan, type Day, type Scaler, type SimMeeting } from "../bench/fleet-sim.js";
import { achievableReference, lowerBound, windowMinimumCoreHours } from "../bench/references.js";

const settings = (overrides: Record<string, unknown>): WorkerPolicy =>
  workerPolicySchema.parse({
    min: 1,
    max: 6,
    baseline: 1,
    defaultSize: { cores: 2, ramGb: 8 },
    maxSize: { cores: 4, ramGb: 16 },
    timeZone: "Europe/Berlin",
    launchRate: { count: 2, perSeconds: 300 },
    ...overrides,
  });

/** `count` lessons of 30 with a few cameras, opening at `startMinute` for an hour. */
const lessons = (count: number, startMinute: number): SimMeeting[] =>
  Array.from({ length: count }, (_, id) => ({
    id,
    startSecond: startMinute * 60,
    endSecond: (startMinute + 60) * 60,
    participants: 30,
    videos: 2,
    listenOnly: 10,
  }));

/** Runs the reference and records, each minute, how many servers were running and how many existed. */
function observe(policy: WorkerPolicy, day: Day) {
  const reference = achievableReference(policy, day);
  const running: number[] = [];
  const existing: number[] = [];
  const watched: Scaler = {
    ...reference,
    decide(servers, minute, now, metrics) {
      running.push(servers.filter((server) => server.power === "running").length);
      existing.push(servers.length);
      return reference.decide(servers, minute, now, metrics);
    },
  };
  const run = runSpan(watched, day, newFleet(policy, policy.baseline), policy);
  return { ...run, running, existing };
}

describe("the achievable reference", () => {
  it("creates ahead of a known bell within the launch rate, so nothing is overloaded", () => {
    const policy = settings({});
    const day: Day = { startMs: 0, minutes: 180, meetings: lessons(30, 90) };
    const { result, fleet } = observe(policy, day);
    expect(result.overloadedServerMinutes).toBe(0);
    expect(result.meetingsRejected).toBe(0);
    const creates = fleet.launches.filter((launch) => launch.kind === "create");
    expect(creates.length).toBeGreaterThan(2);
    expect(Math.max(...creates.map((launch) => launch.minute))).toBeLessThanOrEqual(90 - CREATE_MINUTES);
    expect(launchRateKept(fleet.launches, policy)).toBe(true);
  });

  it("never exceeds max nor the launch rate when the load needs more, and its overload is measured", () => {
    const policy = settings({});
    const day: Day = { startMs: 0, minutes: 180, meetings: lessons(120, 60) };
    const { result, fleet, existing } = observe(policy, day);
    expect(Math.max(...existing)).toBeLessThanOrEqual(policy.max);
    expect(fleet.peakExisting).toBeLessThanOrEqual(policy.max);
    expect(launchRateKept(fleet.launches, policy)).toBe(true);
    expect(result.overloadedServerMinutes).toBeGreaterThan(0);
    expect(result.overloadedParticipantMinutes).toBeGreaterThan(0);
  });

  it("keeps the window minimum running for the whole window, at the default size when there is no load", () => {
    const policy = settings({ max: 10, windows: [{ days: ["tue"], from: "07:30", to: "14:00", min: 5 }] });
    const startMs = localToUtc("2025-02-04", 0, policy.timeZone);
    const day: Day = { startMs, minutes: spanMinutes("2025-02-04", 1, policy.timeZone), meetings: [] };
    const { result, running, fleet } = observe(policy, day);
    expect(fleet.minutesBelowMinimum).toBe(0);
    const from = 7 * 60 + 30;
    const to = 14 * 60;
    expect(Math.min(...running.slice(from, to))).toBeGreaterThanOrEqual(5);
    expect(Math.max(...running.slice(to + 10))).toBe(1);
    // Five default-size servers for the window, one for the group minimum otherwise, and the boots before the window.
    expect(result.coreHours).toBeLessThan(windowMinimumCoreHours(day, policy) * 1.05);
    expect(result.coreHours).toBeGreaterThanOrEqual(windowMinimumCoreHours(day, policy));
  });
});

describe("the lower bound", () => {
  it("pools the load onto max-size servers at the overload line, at least the group minimum", () => {
    const policy = settings({ min: 2, baseline: 2 });
    const day: Day = { startMs: 0, minutes: 60, meetings: lessons(30, 0) };
    const result = lowerBound(day, policy);
    expect(result.peakServers).toBeGreaterThanOrEqual(2);
    expect(result.overloadedServerMinutes).toBe(0);
    expect(result.coreHours).toBeCloseTo(result.serverHours * policy.maxSize.cores);
  });
});
