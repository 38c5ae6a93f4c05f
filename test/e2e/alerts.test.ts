import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fleetKeys } from "../../scaler/fleet/keys.js";
import { Emulator } from "../emulator/emulator.js";
import { KEY_PREFIX, closedLoopPolicy, openClosedLoop } from "../harness/fleetRig.js";
import { PrometheusServer } from "../harness/prometheus.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";
import { RedisServer } from "../harness/redis.js";
import { startWebhookReceiver as startReceiver } from "../harness/webhookReceiver.js";

/** A fresh emulator (fast timings), Redis, Prometheus and Pulumi sandbox per describe block; each test opens its loop. */
function freshParts(): { emulator: Emulator; redis: RedisServer; prometheus: PrometheusServer; sandbox: PulumiSandbox } {
  const parts = {} as ReturnType<typeof freshParts>;
  beforeAll(async () => {
    parts.emulator = await Emulator.start({ timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 } });
    parts.redis = await RedisServer.start();
    parts.prometheus = await PrometheusServer.start([]);
    parts.sandbox = await createPulumiSandbox();
  });
  afterAll(async () => {
    await parts.prometheus?.stop();
    await parts.emulator?.stop();
    await parts.redis?.stop();
    await parts.sandbox?.cleanup();
  });
  return parts;
}

type Parts = ReturnType<typeof freshParts>;
type Loop = Awaited<ReturnType<typeof openClosedLoop>>;

/** A closed loop on the describe block's parts whose alerts go to `webhookUrl`, retried after 50 ms. */
function openAlertingLoop(parts: Parts, webhookUrl: string, extra: { drainTimeoutSeconds?: number } = {}): Promise<Loop> {
  return openClosedLoop({
    emulator: parts.emulator,
    sandbox: parts.sandbox,
    redisUrl: parts.redis.url,
    prometheusUrl: parts.prometheus.url,
    policy: closedLoopPolicy(),
    alerts: { webhookUrl, retryDelayMs: 50 },
    ...extra,
  });
}

/** bbb-1's registration in the emulated Scalelite: the fleet's baseline is its only server. */
function bbb1Registration(parts: Parts) {
  return [...parts.emulator.scalelite.servers.values()][0];
}

/** Starts the loop and runs periods until bbb-1, the fleet's baseline, is enabled in Scalelite; then a class starts on it. */
async function bbb1WithAClass(parts: Parts, loop: Loop): Promise<void> {
  await loop.actuator.start();
  for (let count = 0; bbb1Registration(parts)?.state !== "enabled"; count += 1) {
    if (count === 25) throw new Error("bbb-1 was not enabled in Scalelite after 25 periods");
    await loop.period();
  }
  parts.emulator.scalelite.poll();
  parts.emulator.scalelite.placeMeeting({ participants: 12, videos: 0, durationMs: 86_400_000 });
}

/** The scaler restarts after Redis lost the fleet's state (a Redis without its volume): the fleet stack still has bbb-1. */
async function restartWithStateLost(parts: Parts, loop: Loop, webhookUrl: string): Promise<Loop> {
  await loop.close();
  const restarted = await openAlertingLoop(parts, webhookUrl);
  await restarted.redis.del(fleetKeys(KEY_PREFIX, "bbb").state);
  await restarted.actuator.start();
  return restarted;
}

describe("alerts to a webhook (real Pulumi CLI, Redis, Prometheus, emulated cloud)", () => {
  const parts = freshParts();

  it(
    "posts one up.failed alert when an up fails, after retrying the receiver, audited; a second failure is rate-limited",
    { timeout: 300_000 },
    async () => {
      const receiver = await startReceiver(1);
      // Another environment's machine holds the name the fleet's first server needs: the provider refuses the create.
      const foreign = parts.emulator.addRunningServer({
        datacenterId: parts.emulator.defaultDatacenterId,
        name: "bbb-1",
        cores: 4,
        ram: 16384,
      });
      foreign.labels.set("confscale:env", "staging");
      foreign.labels.set("confscale:role", "worker");
      const loop = await openAlertingLoop(parts, receiver.url);
      try {
        await loop.actuator.start();
        await expect(loop.controller.period()).rejects.toThrow(/create server bbb-1 refused/);
        await loop.alerter.settled();
        expect(receiver.posts()).toBe(2);
        expect(receiver.bodies).toEqual([
          {
            kind: "up.failed",
            fleet: "bbb",
            message: expect.stringMatching(/up of fleet stack .* failed: .*create server bbb-1 refused/s),
            at: expect.any(String),
          },
        ]);
        const at = Date.parse((receiver.bodies[0] as { at: string }).at);
        expect(Math.abs(at - parts.emulator.clock.now())).toBeLessThan(60_000);
        const sent = (await loop.store.readAudit("bbb")).find((entry) => entry.kind === "alert.sent");
        expect(sent).toMatchObject({ actor: "alerts", details: { alert: "up.failed", attempts: 2 } });
        expect(JSON.stringify(sent)).not.toContain(receiver.url);

        await expect(loop.controller.period()).rejects.toThrow(/refused/);
        await loop.alerter.settled();
        expect(receiver.posts()).toBe(2);
      } finally {
        await loop.close();
        await receiver.stop();
      }
    },
  );
});

describe("a drain that outlasts its timeout in a running loop: taken back, and the webhook told", () => {
  const parts = freshParts();

  it("posts drain.timeout naming the server, and re-enables it in Scalelite with its meeting kept", { timeout: 300_000 }, async () => {
    const receiver = await startReceiver(0);
    const loop = await openAlertingLoop(parts, receiver.url, { drainTimeoutSeconds: 600 });
    try {
      await bbb1WithAClass(parts, loop);
      const drain = await loop.actuator.cycle([
        { kind: "drain", server: "bbb-1", reason: "the test drains bbb-1", inputs: {}, dryRun: false },
      ]);
      expect(drain.applied.map((applied) => applied.kind)).toEqual(["drain"]);
      expect(bbb1Registration(parts)?.state).toBe("cordoned");

      // Ten minutes pass on the cloud's clock with the meeting still on: the next cycle times the drain out.
      parts.emulator.clock.advance(601_000);
      const cycle = await loop.actuator.cycle([]);
      expect(cycle.drainTimeouts).toEqual(["bbb-1"]);
      await loop.alerter.settled();
      expect(receiver.bodies).toEqual([
        {
          kind: "drain.timeout",
          fleet: "bbb",
          server: "bbb-1",
          message: "drain timed out with meetings still running: server taken back, meetings kept",
          at: expect.any(String),
        },
      ]);
      expect(bbb1Registration(parts)?.state).toBe("enabled");
      expect(parts.emulator.cloud.meetingsCut).toBe(0);
      const sent = (await loop.store.readAudit("bbb")).find((entry) => entry.kind === "alert.sent");
      expect(sent).toMatchObject({ details: { alert: "drain.timeout" } });
    } finally {
      await loop.close();
      await receiver.stop();
    }
  });
});

describe("a server an operator cordoned, adopted after Redis lost the fleet's state: held, and the webhook told how to give it back", () => {
  const parts = freshParts();

  it("posts adopted.held naming the server and the command that enables it", { timeout: 300_000 }, async () => {
    const receiver = await startReceiver(0);
    let loop = await openAlertingLoop(parts, receiver.url);
    try {
      // A class runs on bbb-1 when an operator cordons it; then Redis loses the fleet's state and the scaler restarts.
      await bbb1WithAClass(parts, loop);
      await loop.actuator.operate("bbb-1", "cordon", "oscar");
      loop = await restartWithStateLost(parts, loop, receiver.url);
      parts.emulator.scalelite.poll();

      await loop.actuator.cycle([]);
      expect(loop.actuator.heldServers()).toEqual(["bbb-1"]);
      await loop.alerter.settled();
      expect(receiver.bodies).toEqual([
        {
          kind: "adopted.held",
          fleet: "bbb",
          server: "bbb-1",
          message: expect.stringContaining("held until an operator enables it (`confscale servers enable bbb-1 --fleet bbb`)"),
          at: expect.any(String),
        },
      ]);
      expect(bbb1Registration(parts)?.state).toBe("cordoned");
    } finally {
      await loop.close();
      await receiver.stop();
    }
  });
});

describe("a server an operator panicked, adopted after Redis lost the fleet's state: enabled, and the webhook told", () => {
  const parts = freshParts();

  it("posts adopted.enabled naming the server and the command that cordons it again", { timeout: 300_000 }, async () => {
    const receiver = await startReceiver(0);
    let loop = await openAlertingLoop(parts, receiver.url);
    try {
      // An operator panics bbb-1 (its class ended, disabled in Scalelite); then Redis loses the fleet's state.
      await bbb1WithAClass(parts, loop);
      await loop.actuator.operate("bbb-1", "panic", "oscar");
      expect(bbb1Registration(parts)?.state).toBe("disabled");
      loop = await restartWithStateLost(parts, loop, receiver.url);

      // Its BBB answers: enabled as a launch would be, since nothing tells the panic apart now.
      await loop.actuator.cycle([]);
      expect(bbb1Registration(parts)?.state).toBe("enabled");
      await loop.alerter.settled();
      expect(receiver.bodies).toEqual([
        {
          kind: "adopted.enabled",
          fleet: "bbb",
          server: "bbb-1",
          message: expect.stringContaining("cordon it again (`confscale servers cordon bbb-1 --fleet bbb`)"),
          at: expect.any(String),
        },
      ]);
    } finally {
      await loop.close();
      await receiver.stop();
    }
  });
});
