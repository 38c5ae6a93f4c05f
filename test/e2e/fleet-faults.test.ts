import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FleetServer, FleetSpec } from "../../infra/fleet.js";
import type { FleetStack } from "../../scaler/actuator/fleetStack.js";
import { Emulator } from "../emulator/emulator.js";
import { emulatedFleetTemplate, openEmulatedFleetStack } from "../harness/fleetRig.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";

const worker = (name: string): FleetServer => ({ name, size: { cores: 2, ramGb: 8 }, power: "running", image: "ubuntu:22.04" });
const OURS = { "confscale:env": "e2e", "confscale:fleet": "bbb", "confscale:role": "worker" };
// Each case runs one or two real updates with retries and back-off; others share this box's two cores.
const UPDATE_DEADLINE = { timeout: 300_000 };

describe("the fleet stack survives IONOS API faults without duplicates or orphans (real CLI, emulated cloud)", () => {
  let emulator: Emulator;
  let sandbox: PulumiSandbox;
  let fleet: FleetStack;
  let base: FleetSpec;

  beforeAll(async () => {
    emulator = await Emulator.start({ timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 } });
    sandbox = await createPulumiSandbox();
    fleet = await openEmulatedFleetStack(emulator, sandbox);
    const template = emulatedFleetTemplate(emulator, "e2e", "bbb");
    base = { ...template, placement: { ...template.placement, ionos: { ...template.placement.ionos!, pollIntervalMs: 20 } }, servers: [] };
  });

  afterAll(async () => {
    await emulator?.stop();
    await sandbox?.cleanup();
  });

  const namedInCloud = (name: string) =>
    [...emulator.cloud.servers.values()].filter((server) => server.name === name).map((server) => emulator.serverView(server));

  it(
    "adopts the server of a create that answered 500 but happened: one machine, in the stack, and nothing left to change",
    UPDATE_DEADLINE,
    async () => {
      const spec: FleetSpec = { ...base, servers: [worker("bbb-1")] };
      emulator.cloud.faults.add({ kind: "createFailsButHappens", count: 1 });

      await fleet.up(spec);

      expect(emulator.cloud.faults.pending()).toEqual([]);
      const [server, ...duplicates] = namedInCloud("bbb-1");
      expect(duplicates).toEqual([]);
      expect(server).toMatchObject({ vmState: "RUNNING", cores: 2, ram: 8192, labels: OURS });
      expect((await fleet.serverAddresses())["bbb-1"]?.id).toBe(server?.id);
      expect(await fleet.preview(spec)).toEqual({ same: 2 });
    },
  );

  it(
    "after a crash cut a create short, recovery and the next up adopt the unlabelled machine instead of making a second",
    UPDATE_DEADLINE,
    async () => {
      // What a scaler that died mid-create leaves: the machine exists, its labels were never written, the stack
      // does not know it.
      const leftOver = emulator.addRunningServer({ datacenterId: emulator.defaultDatacenterId, name: "bbb-2", cores: 2, ram: 8192 });
      const spec: FleetSpec = { ...base, servers: [worker("bbb-1"), worker("bbb-2")] };

      await fleet.recover();
      const report = await fleet.up(spec);

      expect(report.summary.create).toBe(1);
      const [server, ...duplicates] = namedInCloud("bbb-2");
      expect(duplicates).toEqual([]);
      expect(server?.id).toBe(leftOver.id);
      expect(server?.labels).toEqual(OURS);
      expect((await fleet.serverAddresses())["bbb-2"]?.id).toBe(leftOver.id);
      expect(await fleet.preview(spec)).toEqual({ same: 3 });
    },
  );

  it("refuses to take over a same-named machine of another environment, and leaves it as it was", UPDATE_DEADLINE, async () => {
    const foreign = emulator.addRunningServer({ datacenterId: emulator.defaultDatacenterId, name: "bbb-3", cores: 4, ram: 16384 });
    foreign.labels.set("confscale:env", "staging");
    foreign.labels.set("confscale:role", "worker");

    const failure = await fleet.up({ ...base, servers: [worker("bbb-1"), worker("bbb-2"), worker("bbb-3")] }).then(
      () => undefined,
      (error: unknown) => error as Error,
    );

    expect(failure?.message).toMatch(/create server bbb-3 refused: data center \S+ already holds a server named bbb-3 \(/);
    expect(namedInCloud("bbb-3")).toEqual([
      expect.objectContaining({ id: foreign.id, cores: 4, labels: { "confscale:env": "staging", "confscale:role": "worker" } }),
    ]);
    expect(Object.keys(await fleet.serverAddresses()).sort()).toEqual(["bbb-1", "bbb-2"]);
  });

  it("rides out 500s and 429s during an up: retried, one machine created", UPDATE_DEADLINE, async () => {
    const spec: FleetSpec = { ...base, servers: [worker("bbb-1"), worker("bbb-2"), worker("bbb-4")] };
    emulator.cloud.faults.add({ kind: "error500", count: 3 });
    emulator.cloud.faults.add({ kind: "throttle429", count: 2, retryAfterSeconds: 0 });

    const report = await fleet.up(spec);

    expect(report.summary.create).toBe(1);
    expect(emulator.cloud.faults.pending()).toEqual([]);
    expect(namedInCloud("bbb-4")).toEqual([expect.objectContaining({ vmState: "RUNNING", labels: OURS })]);
    expect(await fleet.preview(spec)).toEqual({ same: 4 });
  });

  it("rides out connections reset on reads during an up: the reads are repeated, one machine created", UPDATE_DEADLINE, async () => {
    const spec: FleetSpec = { ...base, servers: [worker("bbb-1"), worker("bbb-2"), worker("bbb-4"), worker("bbb-5")] };
    // The create's look for a namesake and its polls are reads: safe to repeat after a broken connection.
    emulator.cloud.faults.add({ kind: "connectionReset", count: 3, methods: ["GET"] });

    const report = await fleet.up(spec);

    expect(report.summary.create).toBe(1);
    expect(emulator.cloud.faults.pending()).toEqual([]);
    expect(namedInCloud("bbb-5")).toEqual([expect.objectContaining({ vmState: "RUNNING", labels: OURS })]);
    expect(await fleet.preview(spec)).toEqual({ same: 5 });
  });
});
