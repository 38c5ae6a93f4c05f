import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fleetKeys } from "../../scaler/fleet/keys.js";
import { Emulator } from "../emulator/emulator.js";
import { KEY_PREFIX, decision, emulatorEndpoints, openEmulatedFleet } from "../harness/fleetRig.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";
import { RedisServer } from "../harness/redis.js";
import { eventually } from "../integration/scaler-fixture.js";

type Rig = Awaited<ReturnType<typeof openEmulatedFleet>>;

describe("a fleet whose state Redis lost: its running servers are adopted and drained as serving ones (real Redis, CLI, emulator)", () => {
  let emulator: Emulator;
  let redisServer: RedisServer;
  let sandbox: PulumiSandbox;
  let rig: Rig | undefined;

  beforeAll(async () => {
    emulator = await Emulator.start({ timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 } });
    redisServer = await RedisServer.start();
    sandbox = await createPulumiSandbox();
  });

  afterAll(async () => {
    await rig?.close();
    await emulator?.stop();
    await redisServer?.stop();
    await sandbox?.cleanup();
  });

  const open = () =>
    openEmulatedFleet({
      endpoints: emulatorEndpoints(emulator),
      sandbox,
      redisUrl: redisServer.url,
      now: () => emulator.clock.now(),
      settings: { baseline: 1 },
    });
  const record = () => rig?.actuator.currentState().servers["bbb-1"];
  const machine = () => [...emulator.cloud.servers.values()].find((server) => server.name === "bbb-1")!;
  async function cycleUntilActive(): Promise<void> {
    for (let attempt = 0; record()?.phase !== "active"; attempt += 1) {
      if (attempt === 40) throw new Error(`bbb-1 not enabled: ${JSON.stringify(record())}`);
      await rig?.actuator.cycle([]);
    }
  }

  it("holds the stop of an adopted server whose BBB does not answer, and enables it once BBB answers", async () => {
    rig = await open();
    await rig.actuator.start();
    await cycleUntilActive();
    await rig.close();

    // The state is gone (a Redis without persistence restarted); the fleet stack still holds the running bbb-1.
    rig = await open();
    await rig.redis.del(fleetKeys(KEY_PREFIX, "bbb").state);
    await rig.actuator.start();
    expect(record()).toMatchObject({ phase: "booting", adopted: true });

    // Its BBB does not answer now: it may still have meetings, so the stop waits, as for any serving server.
    emulator.setStuckBooting(machine().id, true);
    const stop = await rig.actuator.cycle([decision("stop", "bbb-1")]);
    expect(stop.held.map((held) => held.reason)).toEqual(["BBB getMeetings did not answer"]);
    expect(emulator.serverView(machine()).vmState).toBe("RUNNING");

    emulator.setStuckBooting(machine().id, false);
    await eventually(async () => emulator.cloud.isServing(machine()), 30_000, "bbb-1's BBB answering");
    await rig.actuator.cycle([]);
    expect(record()?.phase).toBe("active");
    expect(record()?.adopted).toBeUndefined();
  });
});
