import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { emulatorEndpoints, openEmulatedFleet } from "../harness/fleetRig.js";
import { killScalerMidUpdate } from "../harness/crashRig.js";
import { useEmulatedParts } from "../harness/emulatedParts.js";

// Long enough to outlast the event-loop pauses of the in-process Pulumi program on a loaded machine.
const LEASE_TTL_MS = 15_000;
const child = fileURLToPath(new URL("../harness/actuatorProcess.ts", import.meta.url));

describe("a scaler killed during an up, and restarted (real Redis, CLI, emulator)", () => {
  // Slow cloud requests keep the update in flight long enough to kill it in the middle.
  const engine = useEmulatedParts({ timings: { requestQueuedMs: 200, requestRunningMs: 4_000, bootMs: 500 } });

  const servers = () => [...engine.emulator.cloud.servers.values()].map((server) => engine.emulator.serverView(server));

  it("recovers on restart: the stale lock goes, nothing is created twice, nothing is orphaned", { timeout: 600_000 }, async () => {
    const options = {
      endpoints: emulatorEndpoints(engine.emulator),
      sandbox: { dir: engine.sandbox.dir, backendUrl: engine.sandbox.backendUrl, env: engine.sandbox.env },
      redisUrl: engine.redis.url,
      baseline: 3,
      leaseTtlMs: LEASE_TTL_MS,
    };
    const output = await killScalerMidUpdate(engine, child, options);
    expect(output).not.toContain("cycled");
    const createdBeforeCrash = servers().length;
    expect(createdBeforeCrash).toBeGreaterThan(0);

    const rig = await openEmulatedFleet({ ...options, owner: "restarted" });
    try {
      const { recovered } = await rig.actuator.start();
      expect(recovered).toBe(true);
      for (
        let count = 0;
        count < 30 && Object.values(rig.actuator.currentState().servers).some((record) => record.phase !== "active");
        count += 1
      ) {
        await rig.actuator.cycle([]);
      }
      const names = servers()
        .map((server) => server.name)
        .sort();
      expect(names).toEqual(["bbb-1", "bbb-2", "bbb-3"]);
      expect(servers().every((server) => server.vmState === "RUNNING" && server.labels["confscale:fleet"] === "bbb")).toBe(true);
      expect((await rig.fleetStack.appliedSpec())?.servers.map((server) => server.name).sort()).toEqual(names);
      expect(Object.keys(await rig.fleetStack.preview(rig.actuator.currentState().desired))).toEqual(["same"]);
      expect([...engine.emulator.scalelite.servers.values()].filter((entry) => entry.state === "enabled")).toHaveLength(3);
      const audit = await rig.store.readAudit("bbb");
      expect(audit.find((entry) => entry.kind === "recovered")?.details).toMatchObject({ pendingOperations: expect.any(Number) });
    } finally {
      await rig.close();
    }
  });
});
