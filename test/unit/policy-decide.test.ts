import { describe, expect, it } from "vitest";
import { decide } from "../../scaler/policy/decide.js";
import { minimumAt } from "../../scaler/policy/timeWindows.js";
import type { Decision } from "../../scaler/policy/types.js";
import {
  EMPTY_HISTORY,
  bootingServer,
  firstJoins,
  joiningFleet,
  MINUTE,
  NOW,
  fresh,
  missing,
  policy,
  server,
  snapshot,
  stale,
  steadyHistory,
  stoppedServer,
} from "./policy-fixtures.js";

const IDLE = { cpu: 0.05, memory: 0.2 };
const idleHistory = steadyHistory(2, { ...IDLE, cores: 4, ramGb: 16 });
const kinds = (decisions: Decision[]) =>
  decisions.map((decision) => `${decision.kind}${decision.server === undefined ? "" : ` ${decision.server}`}`);

describe("policy: the faults of the seed scaler (REFERENCE §4)", () => {
  it.each([
    {
      fault: "flapping after boot: a server that just booted is not a scale-in victim",
      servers: [server("old", IDLE, { bootedAt: NOW - 3_600_000 }), server("new", IDLE, { bootedAt: NOW - 2 * MINUTE })],
      history: idleHistory,
      expected: ["drain old"],
    },
    {
      fault: "flapping after a scale-out: no scale-in during the cooldown",
      servers: [server("a", IDLE), server("b", IDLE)],
      history: steadyHistory(2, { ...IDLE, cores: 4, ramGb: 16 }, [{ at: NOW - 4 * MINUTE, kind: "start", server: "b" }]),
      expected: [],
    },
    {
      fault: "missing metric: a server without metrics is never read as idle",
      servers: [
        server("silent", { meetings: 0 }, { cpu: missing, memory: missing }),
        server("busy", { cpu: 0.05, memory: 0.2, meetings: 2 }),
      ],
      history: steadyHistory(2, { ...IDLE, cores: 4, ramGb: 16, participants: 40 }),
      expected: [],
    },
    {
      fault: "stale metrics: no scale-in on numbers that were not read this period",
      servers: [server("a", {}, { cpu: stale(0.01), memory: stale(0.1) }), server("b", {}, { cpu: stale(0.01), memory: stale(0.1) })],
      history: idleHistory,
      expected: [],
    },
    {
      fault: "unreachable node: the others still get their decisions",
      servers: [
        server(
          "gone",
          {},
          {
            cpu: missing,
            memory: missing,
            meetings: missing,
            participants: missing,
            scalelite: { state: "enabled", online: false, load: null, loadMultiplier: 1 },
          },
        ),
        server("hot", { cpu: 0.95, memory: 0.5, meetings: 6 }),
      ],
      history: EMPTY_HISTORY,
      expected: ["resize hot"],
      extra: [stoppedServer("spare")],
    },
    {
      fault: "concurrent resizes: no second resize while the first has not landed",
      servers: [server("hot", { cpu: 0.95, memory: 0.5, meetings: 6 }, { resizedAt: NOW - 3_600_000 })],
      history: { samples: [], actions: [{ at: NOW - MINUTE, kind: "resize" as const, server: "hot" }] },
      expected: ["create"],
    },
    {
      fault: "meeting race: an enabled empty server is cordoned first, never powered off in the same period",
      servers: [server("a", IDLE), server("b", { ...IDLE, meetings: 1, participants: 3 })],
      history: idleHistory,
      expected: ["drain a"],
    },
    {
      fault: "meeting race: a meeting Scalelite already counts keeps a drained server on",
      servers: [server("a", IDLE, { scalelite: { state: "cordoned", online: true, load: 15, loadMultiplier: 1 } }), server("b", IDLE)],
      history: idleHistory,
      expected: [],
    },
    {
      fault: "meeting race: a drained server with no meeting by BBB and Scalelite is stopped",
      servers: [server("a", IDLE, { scalelite: { state: "disabled", online: true, load: 0, loadMultiplier: 1 } }), server("b", IDLE)],
      history: idleHistory,
      expected: ["stop a"],
    },
  ])("$fault", ({ servers, history, expected, extra }) => {
    const outcome = decide(snapshot([...servers, ...(extra ?? [])]), policy(), history, NOW);
    expect(kinds(outcome.decisions)).toEqual(expected);
  });
});

describe("policy: horizontal", () => {
  it("starts stopped servers up to the minimum of the open time window (Tuesday 10:00 in Berlin)", () => {
    const windows = [{ days: ["mon", "tue", "wed", "thu", "fri"], from: "07:30", to: "14:00", min: 3 }];
    const outcome = decide(
      snapshot([server("a"), stoppedServer("b"), stoppedServer("c"), stoppedServer("d")]),
      policy({ windows }),
      EMPTY_HISTORY,
      NOW,
    );
    expect(kinds(outcome.decisions)).toEqual(["start b", "start c"]);
    expect(outcome.decisions[0]?.inputs.minimum).toBe(3);
  });

  it("reads the window in the policy's time zone, not UTC: 07:45 in Berlin is 06:45 UTC", () => {
    const windows = [{ days: ["tue"], from: "07:30", to: "14:00", min: 4 }];
    expect(minimumAt(policy({ windows }), Date.UTC(2025, 2, 11, 6, 45))).toBe(4);
    expect(minimumAt(policy({ windows }), Date.UTC(2025, 2, 11, 6, 15))).toBe(1);
    expect(minimumAt(policy({ windows, timeZone: "UTC" }), Date.UTC(2025, 2, 11, 6, 45))).toBe(1);
    // Sunday: the weekday window is closed.
    expect(minimumAt(policy({ windows }), Date.UTC(2025, 2, 16, 9, 0))).toBe(1);
  });

  it("launches enough capacity for the load in one period, at the maximum size, not one server per cycle", () => {
    const servers = [
      server("a", { cpu: 0.9, memory: 0.5, meetings: 8 }, { size: { cores: 8, ramGb: 32 } }),
      server("b", { cpu: 0.9, memory: 0.5, meetings: 8 }, { size: { cores: 8, ramGb: 32 } }),
    ];
    const outcome = decide(snapshot(servers), policy(), EMPTY_HISTORY, NOW);
    const creates = outcome.decisions.filter((decision) => decision.kind === "create");
    expect(creates.length).toBeGreaterThanOrEqual(2);
    expect(creates[0]?.targetSize).toEqual({ cores: 8, ramGb: 32 });
    expect(creates[0]?.inputs).toMatchObject({ demandCores: 14.4, capacityCores: 16 });
  });

  it("adds capacity ahead of a rising load (participants trend) before the servers are hot", () => {
    const servers = joiningFleet();
    const rising = firstJoins();
    // Growth is projected as far ahead as a resize takes to land; here that is as far as a launch.
    const growFar = policy({ resizeLeadSeconds: 300 });
    expect(kinds(decide(snapshot(servers), growFar, EMPTY_HISTORY, NOW).decisions)).toEqual([]);
    const ahead = decide(snapshot(servers), growFar, rising, NOW);
    expect(kinds(ahead.decisions)).toEqual(["resize a", "resize b"]);
    expect(ahead.decisions[0]?.inputs.projectedCores).toBeGreaterThan(ahead.decisions[0]?.inputs.demandCores ?? Infinity);
  });

  it("launches nothing for a rise the running servers can hold by growing, which lands before a boot would", () => {
    const servers = joiningFleet();
    const rising = firstJoins();
    const outcome = decide(snapshot(servers), policy(), rising, NOW);
    expect(kinds(outcome.decisions)).toEqual([]);
    expect(outcome.sample.participants).toBe(200);
    // Small servers that cannot grow far enough are not counted as able to: the launch comes at once.
    const capped = decide(snapshot(servers), policy({ maxSize: { cores: 2, ramGb: 8 } }), rising, NOW);
    expect(kinds(capped.decisions)).toEqual(["start c"]);
  });

  it("calls off a launch the projection no longer needs before it lands, and keeps one it still needs", () => {
    const booting = bootingServer("late", { cores: 8, ramGb: 32 });
    const calm = decide(
      snapshot([server("a", { cpu: 0.3, memory: 0.3, meetings: 2 }), server("b", { cpu: 0.3, memory: 0.3, meetings: 2 }), booting]),
      policy(),
      EMPTY_HISTORY,
      NOW,
    );
    expect(kinds(calm.decisions)).toEqual(["stop late"]);
    const busy = decide(
      snapshot([server("a", { cpu: 0.9, memory: 0.5, meetings: 8 }, { size: { cores: 8, ramGb: 32 } }), booting]),
      policy(),
      EMPTY_HISTORY,
      NOW,
    );
    expect(kinds(busy.decisions)).not.toContain("stop late");
  });

  it("holds launches at the launch rate limit and says so", () => {
    const launches = Array.from({ length: 10 }, (_, index) => ({ at: NOW - MINUTE, kind: "create" as const, server: `n${index}` }));
    const outcome = decide(
      snapshot([server("a"), stoppedServer("b")]),
      policy({ min: 2, baseline: 2 }),
      { samples: [], actions: launches },
      NOW,
    );
    expect(outcome.decisions).toEqual([]);
    expect(outcome.holds.map((hold) => hold.reason).join()).toMatch(/launch rate limit/);
  });

  it("never creates beyond the maximum", () => {
    const servers = [
      server("a", { cpu: 0.99, memory: 0.9, meetings: 9 }, { size: { cores: 8, ramGb: 32 } }),
      server("b", { cpu: 0.99, memory: 0.9, meetings: 9 }, { size: { cores: 8, ramGb: 32 } }),
    ];
    const outcome = decide(snapshot(servers), policy({ max: 3 }), EMPTY_HISTORY, NOW);
    expect(kinds(outcome.decisions)).toEqual(["create"]);
    expect(outcome.holds.map((hold) => hold.reason).join()).toMatch(/maximum of 3/);
  });

  it("takes a draining server back before starting a new one", () => {
    const servers = [
      server("a", { cpu: 0.9, memory: 0.5, meetings: 4 }, { size: { cores: 8, ramGb: 32 } }),
      server("d", { meetings: 1 }, { scalelite: { state: "cordoned", online: true, load: 20, loadMultiplier: 1 } }),
      stoppedServer("s"),
    ];
    expect(kinds(decide(snapshot(servers), policy(), EMPTY_HISTORY, NOW).decisions)[0]).toBe("enable d");
  });

  it("takes back the draining server with the most meetings, which stays up for them anyway, and lets the nearly empty one stop", () => {
    const cordoned = (load: number) => ({ scalelite: { state: "cordoned" as const, online: true, load, loadMultiplier: 1 } });
    const servers = [
      server("a", { cpu: 0.7, memory: 0.5, meetings: 4 }, { size: { cores: 8, ramGb: 32 } }),
      server("d1", { meetings: 1 }, cordoned(20)),
      server("d2", { meetings: 6 }, cordoned(120)),
      stoppedServer("s"),
    ];
    expect(kinds(decide(snapshot(servers), policy(), EMPTY_HISTORY, NOW).decisions)).toEqual(["enable d2"]);
  });

  it("scales in only after the load stayed under the down-threshold for the sustained periods", () => {
    const servers = [server("a", IDLE), server("b", IDLE)];
    expect(kinds(decide(snapshot(servers), policy(), steadyHistory(2, { cpu: 0.5, memory: 0.5 }), NOW).decisions)).toEqual([]);
    expect(kinds(decide(snapshot(servers), policy(), idleHistory, NOW).decisions)).toEqual(["drain a"]);
  });

  it("drains the least loaded server when every server has meetings, and never below the minimum", () => {
    const servers = [
      server("a", { ...IDLE, meetings: 3, participants: 40 }),
      server("b", { ...IDLE, meetings: 1, participants: 5 }),
      server("c", { ...IDLE, meetings: 2, participants: 30 }),
    ];
    expect(kinds(decide(snapshot(servers), policy({ min: 2, baseline: 2 }), idleHistory, NOW).decisions)).toEqual(["drain b"]);
  });

  it("drains the server whose youngest meeting is oldest: it empties and stops first", () => {
    const servers = [
      server("late", { ...IDLE, meetings: 1, participants: 5 }, { newestMeetingAt: NOW - 5 * MINUTE }),
      server("early", { ...IDLE, meetings: 2, participants: 40 }, { newestMeetingAt: NOW - 40 * MINUTE }),
      server("c", { ...IDLE, meetings: 2, participants: 30 }, { newestMeetingAt: NOW - 20 * MINUTE }),
    ];
    expect(kinds(decide(snapshot(servers), policy({ min: 2, baseline: 2 }), idleHistory, NOW).decisions)).toEqual(["drain early"]);
  });

  it("destroys instead of stopping on a cloud without power-off", () => {
    const servers = [server("a", IDLE, { scalelite: { state: "disabled", online: true, load: 0, loadMultiplier: 1 } }), server("b", IDLE)];
    expect(kinds(decide(snapshot(servers, { canPowerOff: false }), policy(), idleHistory, NOW).decisions)).toEqual(["destroy a"]);
  });
});

describe("policy: servers without metrics yet", () => {
  const full = { size: { cores: 4, ramGb: 16 } };
  // Growth is out of the picture: only launches add capacity.
  const fullSizeOnly = () => policy({ maxSize: { cores: 4, ramGb: 16 } });

  it("does not read a freshly enabled server without metrics as a burst of load while a few participants join", () => {
    const busy = { cpu: 0.5, memory: 0.4, meetings: 5, participants: 100 };
    const fresh = server("fresh", { meetings: 0, participants: 0 }, { ...full, bootedAt: NOW - MINUTE, cpu: missing, memory: missing });
    const servers = [server("a", busy, full), server("b", busy, full), fresh, stoppedServer("s")];
    // Before it was enabled the group carried 190, then 195 participants on a and b.
    const joining = {
      samples: [190, 195].map((participants, index) => ({
        at: NOW - (2 - index) * MINUTE,
        cpuCores: 4,
        memoryGb: 12.8,
        cpuUtilization: 0.5,
        memoryUtilization: 0.4,
        participants,
      })),
      actions: [],
    };
    const outcome = decide(snapshot(servers), fullSizeOnly(), joining, NOW);
    expect(outcome.sample.cpuCores).toBe(8);
    expect(kinds(outcome.decisions)).toEqual([]);
  });

  it("counts the meetings of a running server whose metrics are missing at what a participant costs on the others", () => {
    const servers = [
      server("measured", { cpu: 0.5, memory: 0.4, meetings: 5, participants: 100 }, full),
      server("unmeasured", { meetings: 6, participants: 150 }, { ...full, cpu: missing, memory: missing }),
      stoppedServer("s"),
    ];
    const outcome = decide(snapshot(servers), fullSizeOnly(), EMPTY_HISTORY, NOW);
    expect(kinds(outcome.decisions)).toEqual(["start s"]);
    // 2 measured cores for 100 participants: the 150 elsewhere cost 3 cores.
    expect(outcome.decisions[0]?.inputs).toMatchObject({ demandCores: 5 });
  });
});

describe("policy: vertical", () => {
  it("grows a hot server to the maximum size in one step, not just past its load", () => {
    const outcome = decide(snapshot([server("hot", { cpu: 0.95, memory: 0.5, meetings: 6 })]), policy(), EMPTY_HISTORY, NOW);
    const resize = outcome.decisions.find((decision) => decision.kind === "resize");
    expect(resize?.targetSize).toEqual({ cores: 8, ramGb: 32 });
    expect(resize?.inputs).toMatchObject({ cpu: 0.95, projectedServerCores: 1.9 });
  });

  it("caps growth at the maximum size", () => {
    const outcome = decide(
      snapshot([server("hot", { cpu: 1, memory: 0.95, meetings: 9 }, { size: { cores: 6, ramGb: 24 } })]),
      policy(),
      EMPTY_HISTORY,
      NOW,
    );
    expect(outcome.decisions.find((decision) => decision.kind === "resize")?.targetSize).toEqual({ cores: 8, ramGb: 32 });
  });

  it("keeps an idle server's size while a time window holds the fleet up: the next bell may come any minute", () => {
    const big = { size: { cores: 8, ramGb: 32 } };
    const busy = { ...IDLE, meetings: 1, participants: 4 };
    const servers = [server("idle", IDLE, big), server("b", busy, big), server("c", busy, big)];
    const history = steadyHistory(2, { ...IDLE, cores: 24, ramGb: 96 });
    const shrink = [["resize", "idle", { cores: 2, ramGb: 8 }]];
    const decisions = (overrides: Record<string, unknown>) =>
      decide(snapshot(servers), policy(overrides), history, NOW).decisions.map((decision) => [
        decision.kind,
        decision.server,
        decision.targetSize,
      ]);
    expect(decisions({ min: 3, baseline: 3 })).toEqual(shrink);
    expect(decisions({ min: 2, baseline: 2, windows: [{ days: ["tue"], from: "07:30", to: "14:00", min: 3 }] })).toEqual([]);
    // Once the window has closed the same idle server is taken out altogether.
    expect(decisions({ min: 2, baseline: 2, windows: [{ days: ["tue"], from: "07:30", to: "09:00", min: 3 }] })).toEqual([
      ["drain", "idle", undefined],
    ]);
  });

  it("shrinks only an empty oversized server, back to the default size", () => {
    const big = { size: { cores: 8, ramGb: 32 } };
    const servers = [server("empty", IDLE, big), server("busy", { ...IDLE, meetings: 1, participants: 4 }, big)];
    const outcome = decide(snapshot(servers), policy({ min: 2, baseline: 2 }), steadyHistory(2, { ...IDLE, cores: 16, ramGb: 64 }), NOW);
    expect(outcome.decisions.map((decision) => [decision.kind, decision.server, decision.targetSize])).toEqual([
      ["resize", "empty", { cores: 2, ramGb: 8 }],
    ]);
  });
});

describe("policy: controls", () => {
  it("decides nothing while paused", () => {
    const outcome = decide(snapshot([server("a"), stoppedServer("b")]), policy({ min: 2, baseline: 2, paused: true }), EMPTY_HISTORY, NOW);
    expect(outcome.decisions).toEqual([]);
    expect(outcome.holds[0]?.reason).toMatch(/paused/);
  });

  it("marks every decision in dry-run mode", () => {
    const outcome = decide(snapshot([server("a"), stoppedServer("b")]), policy({ min: 2, baseline: 2, dryRun: true }), EMPTY_HISTORY, NOW);
    expect(outcome.decisions.map((decision) => [decision.kind, decision.dryRun])).toEqual([["start", true]]);
  });

  it("records the numbers behind each decision", () => {
    const outcome = decide(snapshot([server("a", IDLE), server("b", IDLE)]), policy(), idleHistory, NOW);
    expect(outcome.decisions[0]?.inputs).toMatchObject({ cpu: 0.05, memory: 0.2, meetings: 0, activeServers: 2, minimum: 1 });
    expect(outcome.sample).toMatchObject({ cpuUtilization: 0.05, memoryUtilization: 0.2 });
  });

  it("counts a missing metric as a fully loaded server in the group's load", () => {
    const outcome = decide(
      snapshot([server("a", IDLE), server("b", {}, { cpu: missing, memory: fresh(0.2) })]),
      policy(),
      EMPTY_HISTORY,
      NOW,
    );
    expect(outcome.sample.cpuUtilization).toBeCloseTo((0.05 * 2 + 2) / 4);
  });
});
