import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Emulator } from "../emulator/emulator.js";
import { closedLoopPolicy, openClosedLoop } from "../harness/fleetRig.js";
import { freeLoopbackPort } from "../harness/ports.js";
import { PrometheusServer } from "../harness/prometheus.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";
import { RedisServer } from "../harness/redis.js";
import { startWebhookReceiver } from "../harness/webhookReceiver.js";

// One emulated minute passes per wall-clock second: boots, grace periods and cooldowns take seconds here,
// while Prometheus scrapes in real time (the CPU query is a ratio of counters, so it does not care).
const CLOCK_SCALE = 60;
const MINUTE = 60_000;

const policy = closedLoopPolicy({ thresholds: { cpu: { up: 0.65, down: 0.25 }, memory: { up: 0.8, down: 0.4 } } });

describe("closed loop: load rises, the fleet grows through Pulumi; load falls, servers drain and stop (real Redis, Prometheus, CLI, emulator)", () => {
  let emulator: Emulator;
  let redisServer: RedisServer;
  let prometheus: PrometheusServer;
  let sandbox: PulumiSandbox;
  let loop: Awaited<ReturnType<typeof openClosedLoop>>;
  let scalerPort: number;
  let peakRunning = 0;
  let alerts: Awaited<ReturnType<typeof startWebhookReceiver>>;

  beforeAll(async () => {
    emulator = await Emulator.start({
      clock: { kind: "real", scale: CLOCK_SCALE },
      timings: { requestQueuedMs: 1_000, requestRunningMs: 5_000, bootMs: 2 * MINUTE },
    });
    redisServer = await RedisServer.start();
    // Prometheus finds the workers through the scaler's own http_sd endpoint, as on the control node.
    scalerPort = await freeLoopbackPort();
    prometheus = await PrometheusServer.start([
      { job_name: "workers", http_sd_configs: [{ url: `http://127.0.0.1:${scalerPort}/fleets/bbb/targets`, refresh_interval: "1s" }] },
    ]);
    sandbox = await createPulumiSandbox();
    alerts = await startWebhookReceiver(0);
    loop = await openClosedLoop({
      emulator,
      sandbox,
      redisUrl: redisServer.url,
      prometheusUrl: prometheus.url,
      policy,
      scalerPort,
      alerts: { webhookUrl: alerts.url },
    });
  });

  afterAll(async () => {
    await loop?.controller.stop();
    await loop?.close();
    await alerts?.stop();
    await prometheus?.stop();
    await emulator?.stop();
    await redisServer?.stop();
    await sandbox?.cleanup();
  });

  const running = () =>
    [...emulator.cloud.servers.values()].map((server) => emulator.serverView(server)).filter((server) => server.vmState === "RUNNING");
  const enabled = () => [...emulator.scalelite.servers.values()].filter((entry) => entry.state === "enabled");

  /** Periods until `done` holds; each period waits for Prometheus to have scraped what changed. */
  async function periodsUntil(what: string, done: () => boolean, limit = 25): Promise<void> {
    for (let count = 0; count < limit; count += 1) {
      if (done()) return;
      await loop.period();
      emulator.scalelite.poll();
    }
    if (!done())
      throw new Error(`${what}: not reached after ${limit} periods; last: ${JSON.stringify(loop.periods.at(-1)?.outcome.holds ?? [])}`);
  }

  function placeMeetings(count: number, participants: number, videos: number, durationMs: number): void {
    for (let index = 0; index < count; index += 1) emulator.scalelite.placeMeeting({ participants, videos, durationMs });
  }

  it("brings the fleet to its baseline: one server, enabled in Scalelite", async () => {
    await loop.actuator.start();
    await periodsUntil("baseline registered", () => enabled().length === 1);
    expect(running()).toHaveLength(1);
    const status = (await (await fetch(`http://127.0.0.1:${scalerPort}/fleets/bbb`)).json()) as {
      servers: { name: string; phase: string }[];
    };
    expect(status.servers).toEqual([expect.objectContaining({ name: "bbb-1", phase: "active", power: "running" })]);
  });

  it("grows the fleet when the load rises, and new meetings land on the new servers", async () => {
    placeMeetings(8, 30, 6, 90 * MINUTE);
    await periodsUntil("a second server taking meetings", () => enabled().length >= 2);
    const scaleOut = loop.periods
      .flatMap((period) => period.cycle.applied)
      .filter((decision) => decision.kind === "create" || decision.kind === "start" || decision.kind === "resize");
    expect(scaleOut.map((decision) => decision.kind)).toContain("create");
    for (const decision of scaleOut) expect(decision.inputs).toHaveProperty("cpuUtilization");
    peakRunning = running().length;
    // The server that took the load stayed above the up-threshold for the sustain periods: the webhook heard of it.
    await loop.alerter.settled();
    expect(alerts.bodies).toContainEqual(expect.objectContaining({ kind: "overload", fleet: "bbb", server: "bbb-1" }));

    const first = emulator.scalelite.servers.values().next().value?.id;
    const placed = Array.from({ length: 4 }, () =>
      emulator.scalelite.placeMeeting({ participants: 5, videos: 0, durationMs: 20 * MINUTE }),
    );
    expect(placed.some((meeting) => meeting.server.id !== first)).toBe(true);
    // Each period's load is kept by slot of the week, for next week's forecast.
    expect(await loop.store.redis.hlen(loop.store.keys.loadProfile("bbb"))).toBeGreaterThan(0);
  });

  it("drains and stops servers when the load falls, cutting no meeting, and leaves a stack with nothing to change", async () => {
    for (const server of [...emulator.cloud.servers.values()]) {
      for (const meetingId of [...server.meetings.keys()]) emulator.cloud.endMeeting(server, meetingId);
    }
    await periodsUntil("scaled in to the minimum", () => running().length === policy.min, 40);
    expect(peakRunning).toBeGreaterThanOrEqual(2);

    const audit = await loop.store.readAudit("bbb", { limit: 1000 });
    const kinds = new Set(audit.map((entry) => entry.kind));
    expect(kinds).toContain("fleet.up");
    expect(kinds).toContain("act.drain");
    expect(kinds).toContain("act.stop");
    expect(emulator.cloud.meetingsCut).toBe(0);

    const preview = await loop.controller.preview();
    expect(Object.keys(preview)).toEqual(["same"]);
  });
});
