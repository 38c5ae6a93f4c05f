import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FleetSpec } from "../../infra/fleet.js";
import type { FleetStack } from "../../scaler/actuator/fleetStack.js";
import { Emulator } from "../emulator/emulator.js";
import { emulatedFleetTemplate, openEmulatedFleetStack } from "../harness/fleetRig.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";

describe("each worker's DNS name through the fleet stack against the emulated IONOS Cloud DNS (real CLI)", () => {
  let emulator: Emulator;
  let sandbox: PulumiSandbox;
  let fleet: FleetStack;
  let base: FleetSpec;

  beforeAll(async () => {
    emulator = await Emulator.start({ timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 200 }, dnsZones: ["confscale.test"] });
    sandbox = await createPulumiSandbox();
    fleet = await openEmulatedFleetStack(emulator, sandbox);
    const template = emulatedFleetTemplate(emulator, "dns", "bbb");
    base = {
      ...template,
      placement: {
        ...template.placement,
        dnsZone: "confscale.test",
        ionos: { ...template.placement.ionos!, dnsEndpoint: emulator.dnsApiUrl, pollIntervalMs: 50 },
      },
      servers: [],
    };
  });

  afterAll(async () => {
    await emulator?.stop();
    await sandbox?.cleanup();
  });

  const addressOf = (name: string) =>
    [...emulator.cloud.servers.values()].map((server) => emulator.serverView(server)).find((view) => view.name === name)?.ips[0];

  it("creates an A record per worker in the stack's zone and removes it with the worker", async () => {
    const two: FleetSpec = {
      ...base,
      servers: [
        { name: "bbb-1", size: { cores: 4, ramGb: 8 }, power: "running", image: "ubuntu:22.04" },
        { name: "bbb-2", size: { cores: 4, ramGb: 8 }, power: "running", image: "ubuntu:22.04" },
      ],
    };
    await fleet.up(two);
    expect(emulator.dns.lookup()).toEqual({
      "bbb-1.bbb.confscale.test A": addressOf("bbb-1"),
      "bbb-2.bbb.confscale.test A": addressOf("bbb-2"),
    });
    expect(await fleet.preview(two)).toEqual({ same: 2 * 2 + 1 });

    await fleet.up({ ...two, servers: two.servers.slice(0, 1) });
    expect(emulator.dns.lookup()).toEqual({ "bbb-1.bbb.confscale.test A": addressOf("bbb-1") });

    await fleet.up(base);
    expect(emulator.dns.lookup()).toEqual({});
    expect(emulator.dns.records.size).toBe(0);
  });
});
