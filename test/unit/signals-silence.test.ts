import { describe, expect, it } from "vitest";
import { decide } from "../../scaler/policy/decide.js";
import { checkInsByName } from "../../scaler/signals/checkins.js";
import { buildSnapshot, type FleetMember, type MeetingCounts, type Observed } from "../../scaler/signals/snapshot.js";
import { EMPTY_HISTORY, MINUTE, NOW, policy } from "./policy-fixtures.js";

const member = (id: string): FleetMember => ({
  id,
  size: { cores: 2, ramGb: 8 },
  power: "running",
  bootedAt: NOW - 3_600_000,
  resizedAt: null,
  instance: `${id}:9100`,
  scaleliteId: id,
});
const idle = { cpu: 0.05, memory: 0.1, networkBytesPerSecond: 100 };
const empty: MeetingCounts = { meetings: 0, participants: 0, videos: 0, newestCreatedAt: null };

/** Two idle servers, both empty by BBB's fresh count; only the check-ins differ. */
function idleFleet(checkIns: ReadonlyMap<string, Observed<{ meetings: number; participants: number }>>) {
  return buildSnapshot({
    group: "bbb",
    takenAt: NOW,
    canPowerOff: true,
    fleet: [member("bbb-1"), member("bbb-2")],
    metrics: {
      at: NOW,
      value: new Map([
        ["bbb-1:9100", idle],
        ["bbb-2:9100", idle],
      ]),
    },
    scalelite: {
      at: NOW,
      value: ["bbb-1", "bbb-2"].map((id) => ({
        id,
        url: `https://${id}/bigbluebutton/api`,
        tag: null,
        state: "enabled" as const,
        online: true,
        load: 0,
        loadMultiplier: 1,
      })),
    },
    meetings: new Map([
      ["bbb-1", { at: NOW, value: empty }],
      ["bbb-2", { at: NOW, value: empty }],
    ]),
    checkIns,
    freshForMs: 2 * MINUTE,
  });
}

describe("a worker whose sidecar stops checking in", () => {
  it("is unknown, never idle: the fleet scales in on the worker that still reports, not on the silent one", () => {
    const checkIns = new Map([
      ["bbb-1", { at: NOW - 10 * MINUTE, value: { meetings: 0, participants: 0 } }],
      ["bbb-2", { at: NOW - 10_000, value: { meetings: 0, participants: 0 } }],
    ]);
    const snapshot = idleFleet(checkIns);
    expect(snapshot.servers[0]?.meetings.status).toBe("stale");
    const outcome = decide(snapshot, policy({ sustainPeriods: 1 }), EMPTY_HISTORY, NOW);
    expect(outcome.decisions.map((decision) => `${decision.kind} ${decision.server ?? ""}`)).toEqual(["drain bbb-2"]);
  });

  it("holds every scale-in when every sidecar is silent", () => {
    const silent = { at: NOW - 10 * MINUTE, value: { meetings: 0, participants: 0 } };
    const outcome = decide(
      idleFleet(
        new Map([
          ["bbb-1", silent],
          ["bbb-2", silent],
        ]),
      ),
      policy({ sustainPeriods: 1 }),
      EMPTY_HISTORY,
      NOW,
    );
    expect(outcome.decisions).toEqual([]);
  });
});

describe("check-ins by name", () => {
  it("stand for the instance id, its first DNS label and the name in its metadata; the newest report wins", () => {
    const byName = checkInsByName([
      {
        instanceId: "bbb-1.example.org",
        details: {},
        stats: { meetings: 2, participants: 30, videos: 4, listeners: 1 },
        stress: 0.3,
        lastReportAt: NOW,
      },
      {
        instanceId: "3f2a-uuid",
        details: { name: "bbb-2" },
        stats: { participants: -1, meetings: "x" },
        stress: null,
        lastReportAt: NOW - 5,
      },
    ]);
    expect(byName.get("bbb-1")).toEqual({ at: NOW, value: { stress: 0.3, meetings: 2, participants: 30, videos: 4 } });
    expect(byName.get("bbb-1.example.org")?.at).toBe(NOW);
    // Counts that are not counts are left out, never read as zero.
    expect(byName.get("bbb-2")).toEqual({ at: NOW - 5, value: {} });
  });
});
