import { describe, expect, it } from "vitest";
import type { FleetServer, FleetSpec } from "../../infra/fleet.js";
import { useEmulatedFleetStack } from "../harness/fleetStackRig.js";

const worker = (name: string): FleetServer => ({ name, size: { cores: 2, ramGb: 8 }, power: "running", image: "ubuntu:22.04" });
const OURS = { "confscale:env": "e2e", "confscale:fleet": "bbb", "confscale:role": "worker" };
// Each case runs one or two real updates with retries and back-off; others share this box's two cores.
const UPDATE_DEADLINE = { timeout: 300_000 };

describe("the fleet stack survives IONOS API faults without duplicates or orphans (real CLI, emulated cloud)", () => {
  const rig = useEmulatedFleetStack({
    emulator: { timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 } },
    env: "e2e",
    ionos: () => ({ pollIntervalMs: 20 }),
  });

  const namedInCloud = (name: string) =>
    [...rig.emulator.cloud.servers.values()].filter((server) => server.name === name).map((server) => rig.emulator.serverView(server));

  it(
    "adopts the server of a create that answered 500 but happened: one machine, in the stack, and nothing left to change",
    UPDATE_DEADLINE,
    async () => {
      const spec: FleetSpec = { ...rig.base, servers: [worker("bbb-1")] };
      rig.emulator.cloud.faults.add({ kind: "createFailsButHappens", count: 1 });

      await rig.fleet.up(spec);

      expect(rig.emulator.cloud.faults.pending()).toEqual([]);
      const [server, ...duplicates] = namedInCloud("bbb-1");
      expect(duplicates).toEqual([]);
      expect(server).toMatchObject({ vmState: "RUNNING", cores: 2, ram: 8192, labels: OURS });
      expect((await rig.fleet.serverAddresses())["bbb-1"]?.id).toBe(server?.id);
      expect(await rig.fleet.preview(spec)).toEqual({ same: 2 });
    },
  );

  it(
    "after a crash cut a create short, recovery and the next up adopt the unlabelled machine instead of making a second",
    UPDATE_DEADLINE,
    async () => {
      // What a scaler that died mid-create leaves: the machine exists, its labels were never written, the stack
      // does not know it.
      const leftOver = rig.emulator.addRunningServer({
        datacenterId: rig.emulator.defaultDatacenterId,
        name: "bbb-2",
        cores: 2,
        ram: 8192,
      });
      const spec: FleetSpec = { ...rig.base, servers: [worker("bbb-1"), worker("bbb-2")] };

      await rig.fleet.recover();
      const report = await rig.fleet.up(spec);

      expect(report.summary.create).toBe(1);
      const [server, ...duplicates] = namedInCloud("bbb-2");
      expect(duplicates).toEqual([]);
      expect(server?.id).toBe(leftOver.id);
      expect(server?.labels).toEqual(OURS);
      expect((await rig.fleet.serverAddresses())["bbb-2"]?.id).toBe(leftOver.id);
      expect(await rig.fleet.preview(spec)).toEqual({ same: 3 });
    },
  );

  it("refuses to take over a same-named machine of another environment, and leaves it as it was", UPDATE_DEADLINE, async () => {
    const foreign = rig.emulator.addRunningServer({ datacenterId: rig.emulator.defaultDatacenterId, name: "bbb-3", cores: 4, ram: 16384 });
    foreign.labels.set("confscale:env", "staging");
    foreign.labels.set("confscale:role", "worker");

    const failure = await rig.fleet.up({ ...rig.base, servers: [worker("bbb-1"), worker("bbb-2"), worker("bbb-3")] }).then(
      () => undefined,
      (error: unknown) => error as Error,
    );

    expect(failure?.message).toMatch(/create server bbb-3 refused: data center \S+ already holds a server named bbb-3 \(/);
    expect(namedInCloud("bbb-3")).toEqual([
      expect.objectContaining({ id: foreign.id, cores: 4, labels: { "confscale:env": "staging", "confscale:role": "worker" } }),
    ]);
    expect(Object.keys(await rig.fleet.serverAddresses()).sort()).toEqual(["bbb-1", "bbb-2"]);
  });

  it("rides out 500s and 429s during an up: retried, one machine created", UPDATE_DEADLINE, async () => {
    const spec: FleetSpec = { ...rig.base, servers: [worker("bbb-1"), worker("bbb-2"), worker("bbb-4")] };
    rig.emulator.cloud.faults.add({ kind: "error500", count: 3 });
    rig.emulator.cloud.faults.add({ kind: "throttle429", count: 2, retryAfterSeconds: 0 });

    const report = await rig.fleet.up(spec);

    expect(report.summary.create).toBe(1);
    expect(rig.emulator.cloud.faults.pending()).toEqual([]);
    expect(namedInCloud("bbb-4")).toEqual([expect.objectContaining({ vmState: "RUNNING", labels: OURS })]);
    expect(await rig.fleet.preview(spec)).toEqual({ same: 4 });
  });

  it("rides out connections reset on reads during an up: the reads are repeated, one machine created", UPDATE_DEADLINE, async () => {
    const spec: FleetSpec = { ...rig.base, servers: [worker("bbb-1"), worker("bbb-2"), worker("bbb-4"), worker("bbb-5")] };
    // The create's look for a namesake and its polls are reads: safe to repeat after a broken connection.
    rig.emulator.cloud.faults.add({ kind: "connectionReset", count: 3, methods: ["GET"] });

    const report = await rig.fleet.up(spec);

    expect(report.summary.create).toBe(1);
    expect(rig.emulator.cloud.faults.pending()).toEqual([]);
    expect(namedInCloud("bbb-5")).toEqual([expect.objectContaining({ vmState: "RUNNING", labels: OURS })]);
    expect(await rig.fleet.preview(spec)).toEqual({ same: 5 });
  });
});
