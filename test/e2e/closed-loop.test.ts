import { afterAll, describe, expect, it } from "vitest";
import { useClosedLoop } from "../harness/closedLoopRig.js";
import { closedLoopPolicy } from "../harness/fleetRig.js";
import { startWebhookReceiver } from "../harness/webhookReceiver.js";

// One emulated minute passes per wall-clock second: boots, grace periods and cooldowns take seconds here,
// while Prometheus scrapes in real time (the CPU query is a ratio of counters, so it does not care).
const CLOCK_SCALE = 60;
const MINUTE = 60_000;

const policy = closedLoopPolicy({ thresholds: { cpu: { up: 0.65, down: 0.25 }, memory: { up: 0.8, down: 0.4 } } });

describe("closed loop: load rises, the fleet grows through Pulumi; load falls, servers drain and stop (real Redis, Prometheus, CLI, emulator)", () => {
  let peakRunning = 0;
  let alerts: Awaited<ReturnType<typeof startWebhookReceiver>>;
  const rig = useClosedLoop({
    emulator: {
      clock: { kind: "real", scale: CLOCK_SCALE },
      timings: { requestQueuedMs: 1_000, requestRunningMs: 5_000, bootMs: 2 * MINUTE },
    },
    loop: async () => {
      alerts = await startWebhookReceiver(0);
      return { policy, alerts: { webhookUrl: alerts.url } };
    },
  });
  afterAll(async () => alerts?.stop());

  const running = () =>
    [...rig.emulator.cloud.servers.values()]
      .map((server) => rig.emulator.serverView(server))
      .filter((server) => server.vmState === "RUNNING");
  const enabled = () => [...rig.emulator.scalelite.servers.values()].filter((entry) => entry.state === "enabled");

  function placeMeetings(count: number, participants: number, videos: number, durationMs: number): void {
    for (let index = 0; index < count; index += 1) rig.emulator.scalelite.placeMeeting({ participants, videos, durationMs });
  }

  it("brings the fleet to its baseline: one server, enabled in Scalelite", async () => {
    await rig.loop.actuator.start();
    await rig.periodsUntil("baseline registered", () => enabled().length === 1);
    expect(running()).toHaveLength(1);
    const status = (await (await fetch(`http://127.0.0.1:${rig.scalerPort}/fleets/bbb`)).json()) as {
      servers: { name: string; phase: string }[];
    };
    expect(status.servers).toEqual([expect.objectContaining({ name: "bbb-1", phase: "active", power: "running" })]);
  });

  it("grows the fleet when the load rises, and new meetings land on the new servers", async () => {
    placeMeetings(8, 30, 6, 90 * MINUTE);
    await rig.periodsUntil("a second server taking meetings", () => enabled().length >= 2);
    const scaleOut = rig.loop.periods
      .flatMap((period) => period.cycle.applied)
      .filter((decision) => decision.kind === "create" || decision.kind === "start" || decision.kind === "resize");
    expect(scaleOut.map((decision) => decision.kind)).toContain("create");
    for (const decision of scaleOut) expect(decision.inputs).toHaveProperty("cpuUtilization");
    peakRunning = running().length;
    // The server that took the load stayed above the up-threshold for the sustain periods: the webhook heard of it.
    await rig.loop.alerter.settled();
    expect(alerts.bodies).toContainEqual(expect.objectContaining({ kind: "overload", fleet: "bbb", server: "bbb-1" }));

    const first = rig.emulator.scalelite.servers.values().next().value?.id;
    const placed = Array.from({ length: 4 }, () =>
      rig.emulator.scalelite.placeMeeting({ participants: 5, videos: 0, durationMs: 20 * MINUTE }),
    );
    expect(placed.some((meeting) => meeting.server.id !== first)).toBe(true);
    // Each period's load is kept by slot of the week, for next week's forecast.
    expect(await rig.loop.store.redis.hlen(rig.loop.store.keys.loadProfile("bbb"))).toBeGreaterThan(0);
  });

  it("drains and stops servers when the load falls, cutting no meeting, and leaves a stack with nothing to change", async () => {
    for (const server of [...rig.emulator.cloud.servers.values()]) {
      for (const meetingId of [...server.meetings.keys()]) rig.emulator.cloud.endMeeting(server, meetingId);
    }
    await rig.periodsUntil("scaled in to the minimum", () => running().length === policy.min, 40);
    expect(peakRunning).toBeGreaterThanOrEqual(2);

    const audit = await rig.loop.store.readAudit("bbb", { limit: 1000 });
    const kinds = new Set(audit.map((entry) => entry.kind));
    expect(kinds).toContain("fleet.up");
    expect(kinds).toContain("act.drain");
    expect(kinds).toContain("act.stop");
    expect(rig.emulator.cloud.meetingsCut).toBe(0);

    const preview = await rig.loop.controller.preview();
    expect(Object.keys(preview)).toEqual(["same"]);
  });
});
