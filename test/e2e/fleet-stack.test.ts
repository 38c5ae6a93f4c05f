import { describe, expect, it } from "vitest";
import type { FleetSpec } from "../../infra/fleet.js";
import { useEmulatedFleetStack } from "../harness/fleetStackRig.js";

describe("the fleet stack through the Automation API against the emulated IONOS cloud (real CLI)", () => {
  const rig = useEmulatedFleetStack({
    emulator: { timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 200 } },
    env: "e2e",
    ionos: () => ({ pollIntervalMs: 100 }),
  });

  const serversByName = () =>
    new Map([...rig.emulator.cloud.servers.values()].map((server) => rig.emulator.serverView(server)).map((view) => [view.name, view]));

  it("creates, resizes in place, stops and destroys workers, and a repeated spec changes nothing", async () => {
    const two: FleetSpec = {
      ...rig.base,
      servers: [
        { name: "bbb-1", size: { cores: 2, ramGb: 8 }, power: "running", image: "ubuntu:22.04" },
        { name: "bbb-2", size: { cores: 2, ramGb: 8 }, power: "running", image: "ubuntu:22.04" },
      ],
    };
    const created = await rig.fleet.up(two);
    expect(
      created.steps
        .filter((step) => step.op === "create")
        .map((step) => step.name)
        .sort(),
    ).toEqual(["bbb-1", "bbb-2"]);
    expect([...serversByName().keys()].sort()).toEqual(["bbb-1", "bbb-2"]);
    expect(serversByName().get("bbb-1")?.vmState).toBe("RUNNING");
    expect(serversByName().get("bbb-1")?.labels).toMatchObject({
      "confscale:env": "e2e",
      "confscale:fleet": "bbb",
      "confscale:role": "worker",
    });
    expect(await rig.fleet.appliedSpec()).toEqual(two);

    const resizedAndStopped: FleetSpec = {
      ...two,
      servers: [
        { name: "bbb-1", size: { cores: 4, ramGb: 16 }, power: "running", image: "ubuntu:22.04" },
        { name: "bbb-2", size: { cores: 2, ramGb: 8 }, power: "stopped", image: "ubuntu:22.04" },
      ],
    };
    const idBefore = serversByName().get("bbb-1")?.id;
    const changed = await rig.fleet.up(resizedAndStopped);
    expect(changed.summary.update).toBe(2);
    expect(changed.summary.create ?? 0).toBe(0);
    const after = serversByName();
    expect(after.get("bbb-1")?.id).toBe(idBefore);
    expect(after.get("bbb-1")?.cores).toBe(4);
    expect(after.get("bbb-1")?.ram).toBe(16 * 1024);
    expect(after.get("bbb-2")?.vmState).toBe("SHUTOFF");

    expect(await rig.fleet.preview(resizedAndStopped)).toEqual({ same: 2 + 1 });

    await rig.fleet.up({ ...rig.base, servers: [] });
    expect(serversByName().size).toBe(0);
  });
});
