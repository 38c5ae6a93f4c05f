import { describe, expect, it } from "vitest";
import { decide } from "../../scaler/policy/decide.js";
import { placementChanges, sizeLoadMultiplier } from "../../scaler/policy/placement.js";
import type { ServerSnapshot } from "../../scaler/policy/types.js";
import { MINUTE, NOW, missing, policy, server, snapshot, stale, steadyHistory } from "./policy-fixtures.js";

/** A server with `participants` in Scalelite's count at its present multiplier, and the given CPU. */
function placed(id: string, participants: number, cpu: number, overrides: Partial<ServerSnapshot> = {}, multiplier = 1): ServerSnapshot {
  return server(
    id,
    { cpu, memory: 0.3, meetings: Math.ceil(participants / 25), participants },
    { scalelite: { state: "enabled", online: true, load: participants * multiplier, loadMultiplier: multiplier }, ...overrides },
  );
}

const byServer = (changes: ReturnType<typeof placementChanges>) =>
  Object.fromEntries(changes.map((change) => [change.server, change.loadMultiplier]));

describe("placement steering", () => {
  it("gives a server that cameras make busier than its head count a larger multiplier, so Scalelite sends the next class elsewhere", () => {
    // Same participants, but `cams` burns twice the CPU of the others.
    const servers = [placed("cams", 100, 0.6), placed("ears-1", 100, 0.3), placed("ears-2", 100, 0.3)];
    const changes = placementChanges(servers, policy(), NOW);
    const multipliers = byServer(changes);
    expect(multipliers["cams"]).toBeGreaterThan(1.4);
    expect(multipliers["ears-1"]).toBeLessThan(0.8);
    expect(multipliers["ears-1"]).toBe(multipliers["ears-2"]);
    // Scalelite's order now follows the CPU: the busy server looks busiest.
    expect(100 * (multipliers["cams"] ?? 0)).toBeGreaterThan(100 * (multipliers["ears-1"] ?? 0) * 1.9);
    const cams = changes.find((change) => change.server === "cams");
    expect(cams?.reason).toMatch(/busier by CPU or memory/);
    expect(cams?.inputs).toMatchObject({ cpu: 0.6, participants: 100, currentMultiplier: 1, sizeShare: 1 });
  });

  it("leaves a balanced group alone: no multiplier moves for noise within the tolerance", () => {
    const servers = [placed("a", 100, 0.5), placed("b", 100, 0.52), placed("c", 90, 0.45)];
    expect(placementChanges(servers, policy(), NOW)).toEqual([]);
  });

  it("weighs each server by its size's share: a balanced 8-core server keeps a quarter of the multiplier of a 2-core one", () => {
    const big = placed(
      "big",
      400,
      0.5,
      { size: { cores: 8, ramGb: 32 } },
      sizeLoadMultiplier({ cores: 2, ramGb: 8 }, { cores: 8, ramGb: 32 }),
    );
    const servers = [big, placed("small", 100, 0.5)];
    expect(sizeLoadMultiplier({ cores: 2, ramGb: 8 }, { cores: 8, ramGb: 32 })).toBe(0.25);
    expect(placementChanges(servers, policy(), NOW)).toEqual([]);
  });

  it("never makes a server past the headroom line look lighter than its size, however cheap its participants", () => {
    // `crowded` carries many listeners cheaply, but at 0.6 CPU it is past the headroom line (0.65 x 0.9): the next
    // bell's meetings must not be invited onto it.
    const servers = [placed("crowded", 200, 0.6), placed("light", 50, 0.3)];
    const multipliers = byServer(placementChanges(servers, policy(), NOW));
    expect(multipliers["light"]).toBeGreaterThan(1);
    expect(multipliers["crowded"] ?? 1).toBeGreaterThanOrEqual(1);
    // Below the line, the same cheap participants still draw meetings.
    const cooler = byServer(placementChanges([placed("crowded", 200, 0.5), placed("light", 50, 0.3)], policy(), NOW));
    expect(cooler["crowded"]).toBeLessThan(1);
  });

  it("never moves a multiplier more than twice its size's share either way", () => {
    const servers = [placed("hot", 20, 0.9), placed("cool-1", 200, 0.2), placed("cool-2", 200, 0.2)];
    const multipliers = byServer(placementChanges(servers, policy(), NOW));
    expect(multipliers["hot"]).toBe(2);
    expect(multipliers["cool-1"]).toBeGreaterThanOrEqual(0.5);
  });

  it.each([
    ["no meetings left", placed("x", 0, 0.05, {}, 2)],
    ["just resized", placed("x", 100, 0.5, { resizedAt: NOW - MINUTE }, 2)],
    ["just booted", placed("x", 100, 0.5, { bootedAt: NOW - MINUTE }, 2)],
  ])("puts a steered server with %s back to its size's share", (_case, steered) => {
    const changes = placementChanges([steered, placed("other", 100, 0.4)], policy(), NOW);
    expect(changes.find((change) => change.server === "x")).toMatchObject({
      loadMultiplier: 1,
      reason: expect.stringMatching(/back to its size's share/),
    });
  });

  it.each([
    ["metrics not fresh", placed("x", 100, 0.5, { cpu: stale(0.5) }, 2)],
    ["metrics missing", placed("x", 100, 0.5, { cpu: missing, memory: missing }, 2)],
    ["participants unknown", placed("x", 100, 0.5, { participants: missing }, 2)],
  ])("keeps the multiplier of a server with %s until its readings are fresh again", (_case, steered) => {
    const changes = placementChanges([steered, placed("other", 100, 0.4), placed("third", 100, 0.2)], policy(), NOW);
    expect(changes.map((change) => change.server)).not.toContain("x");
    expect(changes.length).toBeGreaterThan(0);
  });

  it("does not touch servers that take no meetings or whose Scalelite view is not fresh", () => {
    const servers = [
      placed("cordoned", 100, 0.9, { scalelite: { state: "cordoned", online: true, load: 100, loadMultiplier: 3 } }),
      placed("unread", 100, 0.9, { scaleliteStatus: "stale" }, 3),
      placed("a", 100, 0.3),
    ];
    expect(placementChanges(servers, policy(), NOW).map((change) => change.server)).not.toContain("cordoned");
    expect(placementChanges(servers, policy(), NOW).map((change) => change.server)).not.toContain("unread");
  });

  it("comes out of decide(): marked dry-run in dry-run, none at all while paused", () => {
    const servers = [placed("cams", 100, 0.6), placed("ears", 100, 0.3)];
    const history = steadyHistory(3, { cpu: 0.45, memory: 0.3 });
    expect(decide(snapshot(servers), policy(), history, NOW).placement.map((change) => change.dryRun)).toEqual([false, false]);
    expect(decide(snapshot(servers), policy({ dryRun: true }), history, NOW).placement.map((change) => change.dryRun)).toEqual([
      true,
      true,
    ]);
    expect(decide(snapshot(servers), policy({ paused: true }), history, NOW).placement).toEqual([]);
  });
});

describe("placement steering: a server above the up-threshold", () => {
  // Default thresholds: CPU up 0.65, headroom 0.1, so it cools below 0.585.
  it("looks as full as steering allows while above the up-threshold, even when its head count matches the group's", () => {
    // Cameras on `hot` cost 0.7 of its CPU; its ratio to the group alone would steer it less than the top of the range.
    const servers = [placed("hot", 120, 0.7), placed("warm-1", 100, 0.5), placed("warm-2", 100, 0.5)];
    const changes = placementChanges(servers, policy(), NOW);
    expect(byServer(changes)["hot"]).toBe(2);
    expect(changes.find((change) => change.server === "hot")?.reason).toBe(
      "above the up-threshold: looks full to Scalelite until it cools",
    );
  });

  it("stays out of new placements until it cools below the headroom line, then goes back to what its load shows", () => {
    const stillWarm = [placed("hot", 120, 0.6, {}, 2), placed("b", 100, 0.5), placed("c", 100, 0.5)];
    expect(byServer(placementChanges(stillWarm, policy(), NOW))["hot"]).toBeUndefined();

    const cooled = [placed("hot", 120, 0.4, {}, 2), placed("b", 100, 0.5), placed("c", 100, 0.5)];
    expect(byServer(placementChanges(cooled, policy(), NOW))["hot"]).toBeLessThan(1.2);
  });
});
