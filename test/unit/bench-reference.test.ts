import { describe, expect, it } from "vitest";
import { workerPolicySchema, type WorkerPolicy } from "../../infra/config.js";
import { localToUtc, spanMinutes } from "../bench/calendar.js";
import { CREATE_MINUTES, launchRateKept, newFleet, runSpan, type Day, type Scaler, type SimMeeting } from "../bench/fleet-sim.js";
import { serverDemand } from "../bench/load-model.js";
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

describe("the reference packed to the operator's up-thresholds", () => {
  /** Runs a reference and records each minute the highest CPU and memory use of a running server. */
  function peakUse(policy: WorkerPolicy, day: Day, reference: Scaler) {
    let cpu = 0;
    let memory = 0;
    const watched: Scaler = {
      ...reference,
      decide(servers, minute, now, metrics) {
        for (const server of servers) {
          if (server.power !== "running") continue;
          const demand = serverDemand(server.meetings.values());
          cpu = Math.max(cpu, demand.cores / server.size.cores);
          memory = Math.max(memory, demand.ramGb / server.size.ramGb);
        }
        return reference.decide(servers, minute, now, metrics);
      },
    };
    const { result } = runSpan(watched, day, newFleet(policy, policy.baseline), policy);
    return { result, cpu, memory };
  }

  it("keeps every server under the up-thresholds, and so needs more core-hours than packing to the overload line", () => {
    const policy = settings({ max: 12, thresholds: { cpu: { up: 0.6, down: 0.3 }, memory: { up: 0.8, down: 0.4 } } });
    const day: Day = { startMs: 0, minutes: 180, meetings: lessons(40, 60) };
    const line = { cpu: policy.thresholds.cpu.up, memory: policy.thresholds.memory.up };
    const atThresholds = peakUse(policy, day, achievableReference(policy, day, line, "at the thresholds"));
    const atOverload = peakUse(policy, day, achievableReference(policy, day));
    expect(atThresholds.result.name).toBe("at the thresholds");
    expect(atThresholds.result.meetingsRejected).toBe(0);
    expect(atThresholds.cpu).toBeLessThanOrEqual(0.6);
    expect(atThresholds.memory).toBeLessThanOrEqual(0.8);
    expect(atOverload.cpu).toBeGreaterThan(0.6);
    expect(atThresholds.result.coreHours).toBeGreaterThan(atOverload.result.coreHours);
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
