// A scaler killed while a Jitsi group's `up` is in flight, and restarted: the group's fleet recovers the interrupted
// update through the same path as the BBB fleet (scaler/actuator/fleetStack.ts recover).
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { emulatorEndpoints } from "../harness/fleetRig.js";
import { openEmulatedJitsiFleet, openJitsiStore } from "../harness/jitsiRig.js";
import { killScalerMidUpdate } from "../harness/crashRig.js";
import { useEmulatedParts } from "../harness/emulatedParts.js";

// Long enough to outlast the event-loop pauses of the in-process Pulumi program on a loaded machine.
const LEASE_TTL_MS = 15_000;
const child = fileURLToPath(new URL("../harness/jitsiFleetProcess.ts", import.meta.url));
const GROUP = {
  name: "bridges",
  type: "JVB",
  size: { cores: 2, ramGb: 4 },
  scaling: { minDesired: 0, maxDesired: 5, desiredCount: 3, scaleUpThreshold: 0.7, scaleDownThreshold: 0.3 },
} as const;

describe("a scaler killed during a Jitsi group's up, and restarted (real Redis, CLI, emulator)", () => {
  // Slow cloud requests keep the update in flight long enough to kill it in the middle.
  const engine = useEmulatedParts({ timings: { requestQueuedMs: 200, requestRunningMs: 4_000, bootMs: 500 } });

  const servers = () => [...engine.emulator.cloud.servers.values()].map((server) => engine.emulator.serverView(server));

  it("recovers on restart: the stale lock goes, no bridge is created twice, none is orphaned", { timeout: 600_000 }, async () => {
    const options = {
      endpoints: emulatorEndpoints(engine.emulator),
      sandbox: { dir: engine.sandbox.dir, backendUrl: engine.sandbox.backendUrl, env: engine.sandbox.env },
      redisUrl: engine.redis.url,
      leaseTtlMs: LEASE_TTL_MS,
      group: GROUP,
    };
    const output = await killScalerMidUpdate(engine, child, options);
    expect(output).not.toContain("cycled");
    expect(servers().length).toBeGreaterThan(0);

    const { redis, store } = openJitsiStore(engine.redis.url);
    const { fleet } = await openEmulatedJitsiFleet({ ...options, redis, store, owner: "restarted" });
    try {
      const { recovered } = await fleet.start();
      expect(recovered).toBe(true);
      for (let count = 0; count < 5 && fleet.machines().some((machine) => machine.id === undefined); count += 1) await fleet.period();
      const names = servers()
        .map((server) => server.name)
        .sort();
      expect(names).toEqual(["jitsi-bridges-1", "jitsi-bridges-2", "jitsi-bridges-3"]);
      expect(servers().every((server) => server.labels["confscale:fleet"] === "jitsi-bridges")).toBe(true);
      expect(
        fleet
          .machines()
          .map((machine) => machine.name)
          .sort(),
      ).toEqual(names);
      const audit = await store.readAudit("bridges");
      expect(audit.find((entry) => entry.kind === "recovered")?.details).toMatchObject({
        fleet: "jitsi-bridges",
        pendingOperations: expect.any(Number),
      });
    } finally {
      await fleet.stop();
      redis.disconnect();
    }
  });
});
