import { describe, expect, it } from "vitest";
import type { FleetSpec } from "../../infra/fleet.js";
import { useEmulatedFleetStack } from "../harness/fleetStackRig.js";

describe("each worker's DNS name through the fleet stack against the emulated IONOS Cloud DNS (real CLI)", () => {
  const rig = useEmulatedFleetStack({
    emulator: { timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 200 }, dnsZones: ["confscale.test"] },
    env: "dns",
    dnsZone: "confscale.test",
    ionos: (emulator) => ({ dnsEndpoint: emulator.dnsApiUrl, pollIntervalMs: 50 }),
  });

  const addressOf = (name: string) =>
    [...rig.emulator.cloud.servers.values()].map((server) => rig.emulator.serverView(server)).find((view) => view.name === name)?.ips[0];

  it("creates an A record per worker in the stack's zone and removes it with the worker", async () => {
    const two: FleetSpec = {
      ...rig.base,
      servers: [
        { name: "bbb-1", size: { cores: 4, ramGb: 8 }, power: "running", image: "ubuntu:22.04" },
        { name: "bbb-2", size: { cores: 4, ramGb: 8 }, power: "running", image: "ubuntu:22.04" },
      ],
    };
    await rig.fleet.up(two);
    expect(rig.emulator.dns.lookup()).toEqual({
      "bbb-1.bbb.confscale.test A": addressOf("bbb-1"),
      "bbb-2.bbb.confscale.test A": addressOf("bbb-2"),
    });
    expect(await rig.fleet.preview(two)).toEqual({ same: 2 * 2 + 1 });

    await rig.fleet.up({ ...two, servers: two.servers.slice(0, 1) });
    expect(rig.emulator.dns.lookup()).toEqual({ "bbb-1.bbb.confscale.test A": addressOf("bbb-1") });

    await rig.fleet.up(rig.base);
    expect(rig.emulator.dns.lookup()).toEqual({});
    expect(rig.emulator.dns.records.size).toBe(0);
  });
});
