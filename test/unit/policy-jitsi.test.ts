import { describe, expect, it } from "vitest";
import {
  autoscale,
  figuresPerPeriod,
  jitsiSanity,
  metricOf,
  reconcile,
  type AutoscaleInput,
  type JitsiMember,
  type MetricPoint,
} from "../../scaler/policy/jitsi.js";

const MINUTE = 60_000;
const NOW = 1_000 * MINUTE;

const bridges = (changes: Partial<AutoscaleInput> = {}): AutoscaleInput => ({
  metric: "stress",
  scaling: {
    minDesired: 1,
    maxDesired: 5,
    scaleUpQuantity: 2,
    scaleDownQuantity: 1,
    scaleUpThreshold: 0.5,
    scaleDownThreshold: 0.2,
    scaleUpPeriodsCount: 2,
    scaleDownPeriodsCount: 3,
  },
  enableAutoScale: true,
  desired: 2,
  count: 2,
  figures: [],
  graceUntil: 0,
  now: NOW,
  ...changes,
});

const recorders = (changes: Partial<AutoscaleInput> = {}): AutoscaleInput =>
  bridges({
    metric: "available",
    scaling: {
      ...bridges().scaling,
      scaleUpQuantity: 1,
      scaleUpThreshold: 1,
      scaleDownThreshold: 2,
      scaleUpPeriodsCount: 1,
      scaleDownPeriodsCount: 2,
    },
    ...changes,
  });

describe("the group's figure per period", () => {
  const point = (minutesAgo: number, instanceId: string, value: number): MetricPoint => ({
    at: NOW - minutesAgo * MINUTE,
    instanceId,
    value,
  });

  it("averages each bridge's last stress in each period, most recent period first, and knows nothing of an empty period", () => {
    const points = [point(0.9, "a", 0.9), point(0.2, "a", 0.7), point(0.5, "b", 0.3), point(1.5, "a", 0.4), point(3.5, "b", 1)];
    expect(figuresPerPeriod(points, { metric: "stress", now: NOW, periodMs: MINUTE, periods: 3 })).toEqual([0.5, 0.4, undefined]);
  });

  it("counts the recorders available (idle) in each period", () => {
    const points = [point(0.5, "j1", 0), point(0.4, "j2", 1), point(0.3, "j3", 0), point(1.5, "j1", 1), point(1.2, "j2", 1)];
    expect(figuresPerPeriod(points, { metric: "available", now: NOW, periodMs: MINUTE, periods: 2 })).toEqual([2, 0]);
  });

  it("reads Jibri types by availability and every other type by stress", () => {
    expect(["jibri", "sip-jibri", "JVB", "jigasi", "nomad"].map(metricOf)).toEqual([
      "available",
      "available",
      "stress",
      "stress",
      "stress",
    ]);
  });
});

describe("jitsi-autoscaler's autoscaling", () => {
  it("scales bridges up by scaleUpQuantity once the average stress held at or above the threshold for scaleUpPeriodsCount periods", () => {
    expect(autoscale(bridges({ figures: [0.5, 0.8, 0.1] }))).toMatchObject({
      kind: "change",
      desired: 4,
      direction: "up",
      figures: [0.5, 0.8],
    });
    expect(autoscale(bridges({ figures: [0.9, 0.4] }))).toMatchObject({ kind: "hold" });
  });

  it("never goes past maxDesired, nor below minDesired", () => {
    expect(autoscale(bridges({ desired: 4, count: 4, figures: [0.9, 0.9] }))).toMatchObject({ desired: 5 });
    expect(autoscale(bridges({ desired: 5, count: 5, figures: [0.9, 0.9] }))).toMatchObject({ kind: "hold" });
    expect(autoscale(bridges({ desired: 1, count: 1, figures: [0, 0, 0] }))).toMatchObject({ kind: "hold" });
  });

  it("scales bridges down by scaleDownQuantity only once the stress stayed below its threshold for scaleDownPeriodsCount periods", () => {
    expect(autoscale(bridges({ figures: [0.1, 0.1] }))).toMatchObject({ kind: "hold" });
    expect(autoscale(bridges({ figures: [0.1, 0.1, 0.19] }))).toMatchObject({ kind: "change", desired: 1, direction: "down" });
    expect(autoscale(bridges({ figures: [0.1, 0.1, 0.2] }))).toMatchObject({ kind: "hold" });
  });

  it("scales recorders up when fewer are available than the threshold, and down when more are", () => {
    expect(autoscale(recorders({ figures: [0] }))).toMatchObject({ kind: "change", desired: 3, direction: "up" });
    expect(autoscale(recorders({ figures: [3, 3] }))).toMatchObject({ kind: "change", desired: 1, direction: "down" });
    expect(autoscale(recorders({ figures: [2, 3] }))).toMatchObject({ kind: "hold" });
  });

  it("never moves on a period without data", () => {
    expect(autoscale(bridges({ figures: [0.9, undefined] }))).toMatchObject({ kind: "hold" });
    expect(autoscale(bridges({ figures: [0, undefined, 0] }))).toMatchObject({ kind: "hold" });
  });

  it("yields to an operator's or a scheduler's desired count for the grace period, and waits for the fleet to catch up", () => {
    expect(autoscale(bridges({ figures: [0.9, 0.9], graceUntil: NOW + 1 }))).toMatchObject({
      kind: "hold",
      reason: expect.stringContaining("desired changed"),
    });
    expect(autoscale(bridges({ figures: [0.9, 0.9], graceUntil: NOW }))).toMatchObject({ kind: "change" });
    expect(autoscale(bridges({ desired: 3, count: 2, figures: [0.9, 0.9] }))).toMatchObject({
      kind: "hold",
      reason: expect.stringContaining("waiting"),
    });
    expect(autoscale(bridges({ enableAutoScale: false, figures: [0.9, 0.9] }))).toMatchObject({ kind: "hold" });
    expect(autoscale(bridges({ desired: 0, count: 0, figures: [] }))).toMatchObject({ kind: "hold" });
  });
});

describe("bringing the fleet to the desired count", () => {
  const member = (
    name: string,
    load: number | undefined,
    changes: Partial<JitsiMember> = {},
    checkIn: Partial<NonNullable<JitsiMember["checkIn"]>> = {},
  ): JitsiMember => ({
    name,
    phase: "launched",
    since: NOW - 10 * MINUTE,
    ...(load === undefined
      ? {}
      : { checkIn: { instanceId: `id-${name}`, load, shuttingDown: false, shutdownRequested: false, ...checkIn } }),
    ...changes,
  });
  const GRACEFUL = 30 * MINUTE;

  it("launches what is missing", () => {
    expect(reconcile({ desired: 3, members: [member("a", 0.2)], now: NOW, gracefulShutdownMs: GRACEFUL })).toEqual([
      { kind: "launch", count: 2, reason: "1 in service for 3 desired" },
    ]);
  });

  it("sends the shutdown command to the lowest-loaded instances, and destroys at once one that never checked in", () => {
    const members = [member("a", 0.4), member("b", 0.1), member("c", 0.3)];
    expect(
      reconcile({ desired: 1, members, now: NOW, gracefulShutdownMs: GRACEFUL }).map((action) => [
        action.kind,
        "name" in action ? action.name : "",
      ]),
    ).toEqual([
      ["shutdown", "b"],
      ["shutdown", "c"],
    ]);
    const booting = [member("a", 0.4), member("d", undefined)];
    expect(reconcile({ desired: 1, members: booting, now: NOW, gracefulShutdownMs: GRACEFUL })).toMatchObject([
      { kind: "destroy", name: "d" },
    ]);
  });

  it("destroys an instance shutting down only once it reported its shutdown done, or after the graceful shutdown timeout", () => {
    const going = member("b", 0.1, { phase: "shutting_down", since: NOW - MINUTE }, { shutdownRequested: true, shuttingDown: true });
    expect(reconcile({ desired: 0, members: [going], now: NOW, gracefulShutdownMs: GRACEFUL })).toEqual([]);
    const done = member(
      "b",
      0.1,
      { phase: "shutting_down", since: NOW - MINUTE },
      { shutdownRequested: true, shutdownConfirmedAt: NOW - 1 },
    );
    expect(reconcile({ desired: 0, members: [done], now: NOW, gracefulShutdownMs: GRACEFUL })).toMatchObject([
      { kind: "destroy", name: "b" },
    ]);
    expect(reconcile({ desired: 0, members: [going], now: NOW - MINUTE + GRACEFUL, gracefulShutdownMs: GRACEFUL })).toMatchObject([
      { kind: "destroy", name: "b", reason: expect.stringContaining("not reported within") },
    ]);
  });

  it("replaces an instance that shuts down by itself", () => {
    const leaving = member("a", 0.3, {}, { shuttingDown: true });
    expect(reconcile({ desired: 2, members: [leaving, member("b", 0.2)], now: NOW, gracefulShutdownMs: GRACEFUL })).toMatchObject([
      { kind: "retire", name: "a" },
      { kind: "launch", count: 1 },
    ]);
  });
});

describe("sanity of a Jitsi group", () => {
  it("reports sidecars that are no machine of the fleet, and machines whose sidecar never checked in", () => {
    const findings = jitsiSanity({
      members: [
        { name: "jitsi-bridges-1", instanceId: "cloud-1", launchedAt: NOW - 20 * MINUTE, checkedIn: true },
        { name: "jitsi-bridges-2", instanceId: "cloud-2", launchedAt: NOW - 20 * MINUTE, checkedIn: false },
        { name: "jitsi-bridges-3", instanceId: "cloud-3", launchedAt: NOW - MINUTE, checkedIn: false },
      ],
      liveInstanceIds: ["cloud-1", "stray-9"],
      now: NOW,
      checkInDeadlineMs: 15 * MINUTE,
    });
    expect(findings).toEqual({ untracked: ["stray-9"], silent: ["jitsi-bridges-2"] });
  });
});
