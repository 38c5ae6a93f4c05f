import { afterAll, beforeAll } from "vitest";
import type { FleetSpec } from "../../infra/fleet.js";
import type { FleetStack } from "../../scaler/actuator/fleetStack.js";
import { Emulator, type EmulatorOptions } from "../emulator/emulator.js";
import { emulatedFleetTemplate, openEmulatedFleetStack } from "./fleetRig.js";
import { createPulumiSandbox, type PulumiSandbox } from "./pulumi.js";

type IonosPlacement = NonNullable<FleetSpec["placement"]["ionos"]>;

export interface FleetStackRig {
  emulator: Emulator;
  sandbox: PulumiSandbox;
  fleet: FleetStack;
  /** The fleet's spec with no server: each test lists the servers it wants. */
  base: FleetSpec;
}

/**
 * One emulated cloud and one fleet stack (real CLI, `file://` backend) for a file's tests, started before them and
 * stopped after. `ionos` tunes the placement's IONOS block once the emulator runs (its poll interval, its DNS endpoint).
 */
export function useEmulatedFleetStack(options: {
  emulator: EmulatorOptions;
  env: string;
  ionos: (emulator: Emulator) => Partial<IonosPlacement>;
  dnsZone?: string;
}): FleetStackRig {
  const rig = {} as FleetStackRig;
  beforeAll(async () => {
    rig.emulator = await Emulator.start(options.emulator);
    rig.sandbox = await createPulumiSandbox();
    rig.fleet = await openEmulatedFleetStack(rig.emulator, rig.sandbox, options.env);
    const template = emulatedFleetTemplate(rig.emulator, options.env, "bbb");
    const placement = {
      ...template.placement,
      ...(options.dnsZone === undefined ? {} : { dnsZone: options.dnsZone }),
      ionos: { ...template.placement.ionos!, ...options.ionos(rig.emulator) },
    };
    rig.base = { ...template, placement, servers: [] };
  });
  afterAll(async () => {
    await rig.emulator?.stop();
    await rig.sandbox?.cleanup();
  });
  return rig;
}
