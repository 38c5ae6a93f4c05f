import { afterAll, describe, expect, it } from "vitest";
import { fleetKeys } from "../../scaler/fleet/keys.js";
import { storeSidecarDrains } from "../../scaler/signals/checkins.js";
import { KEY_PREFIX, decision, emulatorEndpoints, openEmulatedFleet } from "../harness/fleetRig.js";
import { useEmulatedParts } from "../harness/emulatedParts.js";
import { eventually } from "../integration/scaler-fixture.js";

type Rig = Awaited<ReturnType<typeof openEmulatedFleet>>;

describe("a fleet whose state Redis lost: its running servers are adopted, drained as serving ones, an operator's cordon kept (real Redis, CLI, emulator)", () => {
  const parts = useEmulatedParts({ timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 } });
  let rig: Rig | undefined;

  afterAll(async () => {
    await rig?.close();
  });

  const open = () =>
    openEmulatedFleet({
      endpoints: emulatorEndpoints(parts.emulator),
      sandbox: parts.sandbox,
      redisUrl: parts.redis.url,
      now: () => parts.emulator.clock.now(),
      settings: { baseline: 1 },
      sidecars: true,
    });
  const record = () => rig?.actuator.currentState().servers["bbb-1"];
  const machine = () => [...parts.emulator.cloud.servers.values()].find((server) => server.name === "bbb-1")!;
  /** bbb-1's worker sidecar reporting to the store, as its check-ins do: its status, or that its drain ended. */
  const sidecarReports = (kind: "status" | "shutdown") =>
    rig!.store.checkIn({
      kind,
      details: { instanceId: "bbb-1", instanceType: "bbb", group: "bbb" },
      shuttingDown: kind === "shutdown",
      reconfigureError: false,
    });
  const sidecar = () => storeSidecarDrains(rig!.store, "bbb").of("bbb-1");
  const serving = () => eventually(async () => parts.emulator.cloud.isServing(machine()), 30_000, "bbb-1's BBB answering");
  /** One cycle applies the decisions (the `up` that boots bbb-1); once its BBB answers, the next enables it. */
  async function bringUp(decisions: Parameters<Rig["actuator"]["cycle"]>[0]): Promise<void> {
    await rig!.actuator.cycle(decisions);
    await serving();
    await rig!.actuator.cycle([]);
    expect(record()?.phase).toBe("active");
  }

  async function loseStateAndRestart(): Promise<void> {
    await rig?.close();
    // The state is gone (a Redis without persistence restarted); the fleet stack still holds the running bbb-1.
    rig = await open();
    await rig.redis.del(fleetKeys(KEY_PREFIX, "bbb").state);
    await rig.actuator.start();
  }

  it("drains an adopted server before its stop: cordoned in Scalelite, its sidecar told, held until its drain ends", async () => {
    rig = await open();
    await rig.actuator.start();
    await bringUp([]);
    const scaleliteId = record()?.scaleliteId;

    await loseStateAndRestart();
    expect(record()).toMatchObject({ phase: "booting", adopted: true, scaleliteId: null });
    await sidecarReports("status");

    // Its BBB does not answer now: it may have meetings, so it is taken out of placement and drained, not stopped.
    parts.emulator.setStuckBooting(machine().id, true);
    const stop = await rig!.actuator.cycle([decision("stop", "bbb-1")]);
    expect(stop.held.map((held) => held.reason)).toEqual([
      "adopted after Redis lost the fleet's state, it may be serving: cordoned and draining first",
    ]);
    expect(parts.emulator.scalelite.servers.get(scaleliteId ?? "")?.state).toBe("cordoned");
    expect(record()).toMatchObject({ phase: "draining", scaleliteId });
    expect(parts.emulator.serverView(machine()).vmState).toBe("RUNNING");
    expect(await sidecar()).toMatchObject({ drainRequested: true, drained: false });

    // Drained, it is not enabled again when its BBB answers; with no meeting on it, the stop waits for its sidecar.
    parts.emulator.setStuckBooting(machine().id, false);
    await serving();
    await rig!.actuator.cycle([]);
    expect(record()?.phase).toBe("draining");
    const waiting = await rig!.actuator.cycle([decision("stop", "bbb-1")]);
    expect(waiting.held.map((held) => held.reason)).toEqual(["its sidecar has not yet reported its last meeting ended"]);
    expect(parts.emulator.serverView(machine()).vmState).toBe("RUNNING");

    // Its sidecar reports the drain ended: the stop goes ahead, and no drain command is left for its next start.
    await sidecarReports("shutdown");
    const stopped = await rig!.actuator.cycle([decision("stop", "bbb-1")]);
    expect(stopped.held).toEqual([]);
    expect(parts.emulator.serverView(machine()).vmState).toBe("SHUTOFF");
    expect((await sidecar())?.drainRequested).toBe(false);
  });

  it("enables an adopted server once its BBB answers, as the one it was", async () => {
    await bringUp([decision("start", "bbb-1")]);
    const scaleliteId = record()?.scaleliteId;

    await loseStateAndRestart();
    expect(record()).toMatchObject({ phase: "booting", adopted: true });
    await rig!.actuator.cycle([]);
    expect(record()).toEqual(expect.objectContaining({ phase: "active", scaleliteId }));
    expect(record()?.adopted).toBeUndefined();
    expect(parts.emulator.scalelite.servers.get(scaleliteId ?? "")?.state).toBe("enabled");
    expect(parts.emulator.scalelite.servers.size).toBe(1);
    // Found enabled, it was no launch and no operator's panic: nothing for an operator to check.
    const audit = await rig!.store.readAudit("bbb", { instanceId: "bbb-1", limit: 5 });
    expect(audit.map((entry) => entry.kind)).toContain("registered");
    expect(audit.map((entry) => entry.kind)).not.toContain("adopted.enabled");
  });

  it("keeps an adopted server an operator had cordoned out of placement: held, not enabled when its BBB answers", async () => {
    const scaleliteId = record()?.scaleliteId ?? "";
    // A class runs on bbb-1 when the operator cordons it: Scalelite keeps it cordoned while the class goes on.
    parts.emulator.scalelite.poll();
    parts.emulator.scalelite.placeMeeting({ participants: 20, videos: 0, durationMs: 86_400_000 });
    await rig!.actuator.operate("bbb-1", "cordon", "oscar");

    await loseStateAndRestart();
    parts.emulator.scalelite.poll();
    // A stop decided from the snapshot before the cycle, where bbb-1 was still a booting launch, is refused.
    const first = await rig!.actuator.cycle([decision("stop", "bbb-1")]);
    expect(first.held.map((held) => held.reason)).toEqual(["held for an operator: out of the policy's hands until an operator enables it"]);
    expect(parts.emulator.cloud.isServing(machine())).toBe(true);
    expect(record()).toEqual(expect.objectContaining({ phase: "held", scaleliteId }));
    expect(parts.emulator.scalelite.servers.get(scaleliteId)?.state).toBe("cordoned");
    expect(rig!.actuator.heldServers()).toEqual(["bbb-1"]);
    expect(await rig!.store.readAudit("bbb", { instanceId: "bbb-1", limit: 2 })).toContainEqual(
      expect.objectContaining({
        kind: "adopted.held",
        message: expect.stringContaining("found cordoned in Scalelite after Redis lost the fleet's state"),
      }),
    );

    // The operator's enable gives it back to the policy, taking meetings again.
    await rig!.actuator.operate("bbb-1", "enable", "oscar");
    expect(record()?.phase).toBe("active");
    expect(parts.emulator.scalelite.servers.get(scaleliteId)?.state).toBe("enabled");
  });
});
