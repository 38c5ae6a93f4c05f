import { describe, expect, it } from "vitest";
import { commandOf } from "../../scaler/policy/commands.js";
import { decide } from "../../scaler/policy/decide.js";
import type { Decision, ForecastPoint, PolicyHistory, ServerSnapshot } from "../../scaler/policy/types.js";
import { EMPTY_HISTORY, MINUTE, NOW, missing, policy, server, snapshot, steadyHistory, stoppedServer } from "./policy-fixtures.js";

const IDLE = { cpu: 0.05, memory: 0.2 };
const BUSY = { cpu: 0.6, memory: 0.5, meetings: 4, participants: 80 };
const kinds = (decisions: readonly Decision[]) =>
  decisions.map(
    (decision) => `${decision.kind}${decision.server === undefined ? "" : ` ${decision.server}`}${decision.warm ? " warm" : ""}`,
  );
const onImage = (base: ServerSnapshot, image: string): ServerSnapshot => ({ ...base, image });
const warming = (id: string): ServerSnapshot => ({ ...stoppedServer(id), power: "booting", bootedAt: null, warm: true });

describe("policy: the warm pool", () => {
  const pooled = policy({ warmPool: { min: 2, share: 0.5 } });

  it("creates installed-then-stopped servers up to its target, and none when the pool is off", () => {
    const fleet = [server("a", BUSY), server("b", BUSY)];
    expect(kinds(decide(snapshot(fleet), policy(), EMPTY_HISTORY, NOW).decisions)).toEqual([]);

    const outcome = decide(snapshot(fleet), pooled, EMPTY_HISTORY, NOW);
    expect(kinds(outcome.decisions)).toEqual(["create warm", "create warm"]);
    expect(outcome.decisions[0]?.targetSize).toEqual({ cores: 2, ramGb: 8 });
    expect(commandOf(outcome.decisions[0] as Decision)).toMatchObject({ kind: "create", warm: true });
  });

  it("sizes the pool from the servers taking meetings and counts stopped and still-installing servers as in it", () => {
    const six = ["a", "b", "c", "d", "e", "f"].map((id) => server(id, BUSY));
    // Half of six taking meetings: three, two of them already there.
    expect(kinds(decide(snapshot([...six, stoppedServer("g"), warming("h")]), pooled, EMPTY_HISTORY, NOW).decisions)).toEqual([
      "create warm",
    ]);
    expect(decide(snapshot([...six, stoppedServer("g"), warming("h"), stoppedServer("i")]), pooled, EMPTY_HISTORY, NOW).decisions).toEqual(
      [],
    );
  });

  it("never counts a server being installed for the pool as capacity: short, the policy still starts one", () => {
    const hot = [server("a", { cpu: 0.9, memory: 0.5, meetings: 6, participants: 150 }), warming("w"), stoppedServer("s")];
    const history = steadyHistory(3, { cpu: 0.9, memory: 0.5, cores: 2, ramGb: 8 });
    const outcome = decide(snapshot(hot), { ...pooled, maxSize: { cores: 2, ramGb: 8 } }, history, NOW);
    expect(kinds(outcome.decisions)).toEqual(["start s"]);
    expect(outcome.decisions.some((decision) => decision.server === "w")).toBe(false);
  });

  it("starts a pooled server for load instead of creating one, and fills the pool only in a period that launched nothing", () => {
    const hot = [server("a", { cpu: 0.9, memory: 0.5, meetings: 6, participants: 150 }), stoppedServer("s")];
    const history = steadyHistory(3, { cpu: 0.9, memory: 0.5, cores: 2, ramGb: 8 });
    const outcome = decide(snapshot(hot), policy({ warmPool: { min: 2, share: 0.5 }, maxSize: { cores: 2, ramGb: 8 } }), history, NOW);
    expect(kinds(outcome.decisions)).toEqual(["start s"]);
  });

  it("keeps a bigger pool on a day that runs far above last week's load", () => {
    const fleet = ["a", "b", "c", "d"].map((id) => server(id, BUSY));
    const history: PolicyHistory = {
      ...steadyHistory(10, { cpu: 0.6, memory: 0.5, cores: 8, ramGb: 32 }),
      // Last week these minutes were calm: 1 core in use.
      forecast: Array.from({ length: 10 }, (_, index): ForecastPoint => ({ at: NOW - index * MINUTE, cpuCores: 1, memoryGb: 10 })),
    };
    const calm = decide(
      snapshot(fleet),
      policy({ warmPool: { min: 0, share: 0.25 } }),
      steadyHistory(10, { cpu: 0.6, memory: 0.5, cores: 8, ramGb: 32 }),
      NOW,
    );
    const surge = decide(snapshot(fleet), policy({ warmPool: { min: 0, share: 0.25 } }), history, NOW);
    const warmCreates = (decisions: readonly Decision[]) => decisions.filter((decision) => decision.warm === true).length;
    expect(warmCreates(calm.decisions)).toBe(1);
    expect(warmCreates(surge.decisions)).toBeGreaterThan(1);
  });

  it("does not hold a scale-in back for the cooldown after a warm-pool create: it added no capacity", () => {
    const idle = [server("a", IDLE), server("b", IDLE), server("c", IDLE), stoppedServer("s1"), stoppedServer("s2")];
    const history = steadyHistory(3, { ...IDLE, cores: 6, ramGb: 24 }, [{ at: NOW - 2 * MINUTE, kind: "create", warm: true }]);
    expect(kinds(decide(snapshot(idle), pooled, history, NOW).decisions)).toContain("drain a");
    const scaledOut = steadyHistory(3, { ...IDLE, cores: 6, ramGb: 24 }, [{ at: NOW - 2 * MINUTE, kind: "create" }]);
    expect(kinds(decide(snapshot(idle), pooled, scaledOut, NOW).decisions)).not.toContain("drain a");
  });
});

describe("policy: baked images and their renewal", () => {
  const renewing = policy({ warmPool: { min: 0, share: 0 } });
  const withImage = { ...renewing, image: "bbb-3.0-r2" };

  it("destroys stopped servers of an old image and starts new-image ones first", () => {
    const fleet = [
      onImage(server("a", { cpu: 0.9, memory: 0.5, meetings: 6, participants: 150 }), "bbb-3.0-r2"),
      onImage(stoppedServer("old"), "bbb-3.0-r1"),
      onImage(stoppedServer("new"), "bbb-3.0-r2"),
    ];
    const history = steadyHistory(3, { cpu: 0.9, memory: 0.5, cores: 2, ramGb: 8 });
    const outcome = decide(snapshot(fleet), { ...withImage, maxSize: { cores: 2, ramGb: 8 } }, history, NOW);
    expect(kinds(outcome.decisions)).toEqual(["start new", "destroy old"]);
    // Without an image to compare with (an actuator that does not say), nothing is renewed.
    expect(kinds(decide(snapshot(fleet), { ...renewing, maxSize: { cores: 2, ramGb: 8 } }, history, NOW).decisions)).not.toContain(
      "destroy old",
    );
  });

  it("drains one old-image server a period while a new-image server stands by and the rest hold the load", () => {
    const fleet = [
      onImage(server("a", { ...IDLE, meetings: 1, participants: 10 }), "bbb-3.0-r1"),
      onImage(server("b", { ...IDLE, meetings: 2, participants: 20 }), "bbb-3.0-r1"),
      onImage(server("c", IDLE), "bbb-3.0-r2"),
      onImage(stoppedServer("spare"), "bbb-3.0-r2"),
    ];
    const busyEnough = steadyHistory(3, { cpu: 0.3, memory: 0.3, cores: 6, ramGb: 24 });
    const outcome = decide(snapshot(fleet), withImage, busyEnough, NOW);
    expect(kinds(outcome.decisions)).toEqual(["drain a"]);
    expect(outcome.decisions[0]?.reason).toContain("old image");
  });

  it("holds the renewal when no new-image server stands by or the rest would not hold the load", () => {
    const fleet = [onImage(server("a", IDLE), "bbb-3.0-r1"), onImage(server("b", IDLE), "bbb-3.0-r2")];
    const history = steadyHistory(3, { cpu: 0.3, memory: 0.3, cores: 4, ramGb: 16 });
    const noSpare = decide(snapshot(fleet), withImage, history, NOW);
    expect(noSpare.decisions).toEqual([]);
    expect(noSpare.holds.map((hold) => hold.reason)).toContain(
      "image renewal held: no new-image server stands by, or the rest would not hold the load",
    );

    const loaded = [
      onImage(server("a", { cpu: 0.6, memory: 0.5, meetings: 4, participants: 80 }), "bbb-3.0-r1"),
      onImage(server("b", { cpu: 0.6, memory: 0.5, meetings: 4, participants: 80 }), "bbb-3.0-r2"),
      onImage(stoppedServer("spare"), "bbb-3.0-r2"),
    ];
    const busy = steadyHistory(3, { cpu: 0.6, memory: 0.5, cores: 4, ramGb: 16 });
    expect(kinds(decide(snapshot(loaded), withImage, busy, NOW).decisions)).not.toContain("drain a");
  });
});

describe("policy: last week's forecast against today's load", () => {
  const fleet = [server("a", IDLE), server("b", IDLE), stoppedServer("c"), stoppedServer("d")];
  const bell: ForecastPoint = { at: NOW + 2 * MINUTE, cpuCores: 10, memoryGb: 20 };
  const lastWeek = (cores: number) =>
    Array.from({ length: 10 }, (_, index): ForecastPoint => ({ at: NOW - index * MINUTE, cpuCores: cores, memoryGb: 10 }));
  const today = steadyHistory(10, { cpu: 0.05, memory: 0.2, cores: 4, ramGb: 16 });

  it("prepares for last week's bell when the minutes just past matched last week's", () => {
    const outcome = decide(snapshot(fleet), policy(), { ...today, forecast: [...lastWeek(0.2), bell] }, NOW);
    expect(kinds(outcome.decisions)).toEqual(["start c"]);
  });

  it("does not on a day far quieter than last week (a holiday): the forecast is scaled down by the comparison", () => {
    const outcome = decide(snapshot(fleet), policy(), { ...today, forecast: [...lastWeek(12), bell] }, NOW);
    expect(outcome.decisions).toEqual([]);
    expect(outcome.holds).toEqual([]);
  });
});

describe("policy: a window's minimum on a day far quieter than last week", () => {
  const window = policy({ windows: [{ days: ["tue"], from: "09:00", to: "11:00", min: 3 }] });
  const fleet = [server("big", IDLE, { size: { cores: 8, ramGb: 32 } }), server("b", IDLE), server("c", IDLE)];
  const idle = steadyHistory(3, { ...IDLE, cores: 12, ramGb: 48 });
  const lastWeek = Array.from({ length: 10 }, (_, index): ForecastPoint => ({ at: NOW - index * MINUTE, cpuCores: 12, memoryGb: 30 }));

  it("keeps an oversized empty server large through the window on an ordinary day, and shrinks it on a holiday", () => {
    expect(decide(snapshot(fleet), window, idle, NOW).decisions).toEqual([]);
    const holiday = decide(snapshot(fleet), window, { ...idle, forecast: lastWeek }, NOW);
    expect(kinds(holiday.decisions)).toEqual(["resize big"]);
    expect(holiday.decisions[0]?.targetSize).toEqual({ cores: 2, ramGb: 8 });
  });
});

describe("policy: a window's breaks between lessons with last week's load on record", () => {
  const window = policy({ windows: [{ days: ["tue"], from: "09:00", to: "11:00", min: 3 }], resizeLeadSeconds: 240 });
  const idle = steadyHistory(3, { ...IDLE, cores: 12, ramGb: 48 });
  // Last week's minutes just past and the coming ones: a break, the same few cores as today.
  const breakAt = (from: number, to: number, cpuCores: number) =>
    Array.from({ length: to - from + 1 }, (_, index): ForecastPoint => ({ at: NOW + (from + index) * MINUTE, cpuCores, memoryGb: 9 }));

  it("shrinks an oversized empty server in a break the record shows quiet", () => {
    const fleet = [server("big", IDLE, { size: { cores: 8, ramGb: 32 } }), server("b", IDLE), server("c", IDLE)];
    const outcome = decide(snapshot(fleet), window, { ...idle, forecast: breakAt(-10, 6, 0.6) }, NOW);
    expect(kinds(outcome.decisions)).toEqual(["resize big"]);
    expect(outcome.decisions[0]?.targetSize).toEqual({ cores: 2, ramGb: 8 });
  });

  it("grows servers in place before the bell the record shows within the resize lead, busiest first, as many as it needs", () => {
    const fleet = [
      server("a", { cpu: 0.05, memory: 0.3 }),
      server("b", { cpu: 0.1, memory: 0.3 }),
      server("c", { cpu: 0.05, memory: 0.3 }),
    ];
    // Three minutes from now last week's bell: 6 cores, where 3 servers of 2 cores keep the headroom free for 3.5.
    const bell = [...breakAt(-10, 2, 0.6), ...breakAt(3, 6, 6)];
    const outcome = decide(snapshot(fleet), window, { ...idle, forecast: bell }, NOW);
    expect(kinds(outcome.decisions)).toEqual(["resize b"]);
    expect(outcome.decisions[0]?.targetSize).toEqual({ cores: 8, ramGb: 32 });
    expect(outcome.decisions[0]?.reason).toMatch(/last week's load within the resize lead/);
    // A booting server may land after the bell's first meetings: it does not count as room for them.
    const booting = server("d", {}, { power: "booting", size: { cores: 8, ramGb: 32 }, bootedAt: null, cpu: missing, memory: missing });
    const withBooting = decide(snapshot([...fleet, booting]), window, { ...idle, forecast: bell }, NOW);
    expect(kinds(withBooting.decisions.filter((decision) => decision.kind === "resize"))).toEqual(["resize b"]);
    // The same bell beyond the resize lead waits for the next periods.
    const later = [...breakAt(-10, 4, 0.6), ...breakAt(5, 6, 6)];
    expect(decide(snapshot(fleet), window, { ...idle, forecast: later }, NOW).decisions).toEqual([]);
  });
});
