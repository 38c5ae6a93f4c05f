import { LocalWorkspace } from "@pulumi/pulumi/automation/index.js";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { fleetWorkspaceOptions } from "../../scaler/actuator/fleetStack.js";
import { ShardUpError } from "../../scaler/actuator/shards.js";
import {
  decision,
  emulatedFleetTemplate,
  emulatorEndpoints,
  openEmulatedFleet,
  openEmulatedFleetStack,
  openEmulatedShardedFleetStack,
} from "../harness/fleetRig.js";
import { killScalerMidUpdate } from "../harness/crashRig.js";
import { useEmulatedParts } from "../harness/emulatedParts.js";

// Two servers per shard: four servers fill shards 0 and 1, the fifth opens shard 2.
const SHARD_SIZE = 2;
const LEASE_TTL_MS = 15_000;
const child = fileURLToPath(new URL("../harness/actuatorProcess.ts", import.meta.url));

describe("a fleet in shard stacks: a change runs only its shard's up, and a crash in one shard's up recovers (real Redis, CLI, emulator)", () => {
  const engine = useEmulatedParts({ timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 } });

  const options = () => ({
    endpoints: emulatorEndpoints(engine.emulator),
    sandbox: { dir: engine.sandbox.dir, backendUrl: engine.sandbox.backendUrl, env: engine.sandbox.env },
    redisUrl: engine.redis.url,
    leaseTtlMs: LEASE_TTL_MS,
    shardSize: SHARD_SIZE,
  });
  const servers = () => [...engine.emulator.cloud.servers.values()].map((server) => engine.emulator.serverView(server));

  /** The fleet's stacks in the backend as `pulumi stack ls` lists them: name, last update and resource count. */
  async function stacks(env = "e2e"): Promise<Map<string, { lastUpdate?: string; resourceCount?: number }>> {
    const workspace = await LocalWorkspace.create(
      await fleetWorkspaceOptions({
        env,
        workDir: engine.sandbox.dir,
        backendUrl: engine.sandbox.backendUrl,
        passphrase: engine.sandbox.env.PULUMI_CONFIG_PASSPHRASE!,
        nodeExporterPassword: "unused",
        masterSecret: "unused",
        providerEnv: engine.sandbox.env,
      }),
    );
    const listed = await workspace.listStacks();
    return new Map(listed.map((summary) => [summary.name.slice(summary.name.lastIndexOf("/") + 1), summary]));
  }

  async function cycleUntilActive(rig: Awaited<ReturnType<typeof openEmulatedFleet>>) {
    for (let count = 0; count < 40; count += 1) {
      if (Object.values(rig.actuator.currentState().servers).every((record) => record.phase === "active")) return;
      await rig.actuator.cycle([]);
    }
    throw new Error(`not all active: ${JSON.stringify(rig.actuator.currentState().servers)}`);
  }

  it("spreads the fleet over shard stacks and resizes one server with an up of its shard alone", { timeout: 600_000 }, async () => {
    const rig = await openEmulatedFleet({ ...options(), settings: { baseline: 4 } });
    try {
      await rig.actuator.start();
      const first = await rig.actuator.cycle([]);
      expect([...((first.update as { stacks?: string[] } | null)?.stacks ?? [])].sort()).toEqual(["e2e-fleet-0", "e2e-fleet-1"]);
      await cycleUntilActive(rig);
      const before = await stacks();
      expect([...before.keys()].sort()).toEqual(["e2e-fleet-0", "e2e-fleet-1"]);

      const resized = await rig.actuator.cycle([decision("resize", "bbb-3", { targetSize: { cores: 4, ramGb: 16 } })]);
      expect((resized.update as { stacks?: string[] } | null)?.stacks).toEqual(["e2e-fleet-1"]);
      expect(resized.update?.summary).toMatchObject({ update: 1 });
      expect(resized.update?.summary.same).toBeLessThanOrEqual(SHARD_SIZE);
      expect(servers().find((server) => server.name === "bbb-3")?.cores).toBe(4);

      const after = await stacks();
      // `pulumi stack ls`: the other shard's stack saw no update at all.
      expect(after.get("e2e-fleet-0")?.lastUpdate).toBe(before.get("e2e-fleet-0")?.lastUpdate);
      expect(after.get("e2e-fleet-1")?.lastUpdate).not.toBe(before.get("e2e-fleet-1")?.lastUpdate);
      expect((await rig.fleetStack.appliedSpec())?.servers.map((server) => server.name)).toEqual(["bbb-1", "bbb-2", "bbb-3", "bbb-4"]);
    } finally {
      await rig.close();
    }
  });

  it(
    "recovers a scaler killed during one shard's up: only that shard is recovered, nothing created twice",
    { timeout: 600_000 },
    async () => {
      // Slow cloud requests keep the new shard's update in flight long enough to kill it in the middle.
      Object.assign(engine.emulator.cloud.timings, { requestQueuedMs: 200, requestRunningMs: 4_000, bootMs: 500 });
      const quietBefore = (await stacks()).get("e2e-fleet-0")?.lastUpdate;
      const crashing = { ...options(), baseline: 0, decisions: [decision("create")] };
      const output = await killScalerMidUpdate(engine, child, crashing, (server) => server.name === "bbb-5");
      expect(output).not.toContain("cycled");

      const rig = await openEmulatedFleet({ ...options(), owner: "restarted" });
      try {
        const { recovered } = await rig.actuator.start();
        expect(recovered).toBe(true);
        const audit = await rig.store.readAudit("bbb");
        expect(audit.find((entry) => entry.kind === "recovered")?.details).toMatchObject({ stacks: ["e2e-fleet-2"] });
        await cycleUntilActive(rig);
        const names = servers()
          .map((server) => server.name)
          .sort();
        expect(names).toEqual(["bbb-1", "bbb-2", "bbb-3", "bbb-4", "bbb-5"]);
        expect((await rig.fleetStack.appliedSpec())?.servers.map((server) => server.name)).toEqual(names);
        expect(Object.keys(await rig.fleetStack.preview(rig.actuator.currentState().desired))).toEqual(["same"]);
        expect([...engine.emulator.scalelite.servers.values()].filter((entry) => entry.state === "enabled")).toHaveLength(5);
        // Shard 0 was neither in the interrupted update nor in its recovery.
        expect((await stacks()).get("e2e-fleet-0")?.lastUpdate).toBe(quietBefore);
      } finally {
        await rig.close();
      }
    },
  );

  it("moves a fleet from its single stack into shards without touching a machine", { timeout: 600_000 }, async () => {
    Object.assign(engine.emulator.cloud.timings, { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 });
    const server = (name: string) => ({ name, size: { cores: 2, ramGb: 8 }, power: "running" as const, image: "ubuntu:22.04" });
    const spec = { ...emulatedFleetTemplate(engine.emulator, "old", "bbb"), servers: ["old-1", "old-2", "old-3"].map(server) };
    // The fleet as the scaler ran it before shards: every server in `old-fleet`.
    await (await openEmulatedFleetStack(engine.emulator, engine.sandbox, "old")).up(spec);
    const ours = () => servers().filter((view) => view.labels["confscale:env"] === "old");
    const ids = new Map(ours().map((view) => [view.name, view.id]));
    const requests = engine.emulator.cloud.requests.size;

    const fleet = await openEmulatedShardedFleetStack(engine.emulator, engine.sandbox, "old", { shardSize: SHARD_SIZE });
    // As the actuator does once it holds the lease.
    await fleet.load();
    expect([...(await stacks("old")).keys()].filter((name) => name.startsWith("old-")).sort()).toEqual(["old-fleet-0", "old-fleet-1"]);
    expect((await fleet.appliedSpec())?.servers.map((entry) => entry.name)).toEqual(["old-1", "old-2", "old-3"]);
    expect(await fleet.serverAddresses()).toMatchObject(Object.fromEntries([...ids].map(([name, id]) => [name, { id }])));
    // No cloud write: the machines stayed as they were, and the shards hold them as they are.
    expect(engine.emulator.cloud.requests.size).toBe(requests);
    expect(new Map(ours().map((view) => [view.name, view.id]))).toEqual(ids);
    expect(await fleet.preview(spec)).toEqual({ same: 3 + 2 });
    expect((await fleet.up(spec)).stacks).toEqual([]);

    const grown = await fleet.up({
      ...spec,
      servers: [server("old-1"), server("old-2"), { ...server("old-3"), size: { cores: 4, ramGb: 16 } }],
    });
    expect(grown.stacks).toEqual(["old-fleet-1"]);
    expect(ours().find((view) => view.name === "old-3")?.cores).toBe(4);
    expect(ours()).toHaveLength(3);
  });
  it(
    "a cloud fault in one shard's up fails that shard's stack alone: the other shards are applied, the failure names its stack",
    { timeout: 600_000 },
    async () => {
      Object.assign(engine.emulator.cloud.timings, { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 });
      const server = (name: string) => ({ name, size: { cores: 2, ramGb: 8 }, power: "running" as const, image: "ubuntu:22.04" });
      // Six servers in shards 0, 1 and 2, whose ups run at once.
      const spec = {
        ...emulatedFleetTemplate(engine.emulator, "fault", "bbb"),
        servers: ["f-1", "f-2", "f-3", "f-4", "f-5", "f-6"].map(server),
      };
      const fleet = await openEmulatedShardedFleetStack(engine.emulator, engine.sandbox, "fault", { shardSize: SHARD_SIZE, parallel: 3 });
      const handlers = process.listenerCount("uncaughtException") + process.listenerCount("unhandledRejection");
      try {
        engine.emulator.cloud.faults.add({ kind: "requestFails", count: 1, message: "injected: no capacity for f-3", server: "f-3" });
        const failure = await fleet.up(spec).then(
          () => undefined,
          (error: unknown) => error,
        );
        expect(failure).toBeInstanceOf(ShardUpError);
        const { stackName, failures, applied, message } = failure as ShardUpError;
        expect(stackName).toBe("fault-fleet-1");
        expect(failures.map((entry) => entry.stackName)).toEqual(["fault-fleet-1"]);
        expect(message).toContain("injected: no capacity for f-3");
        expect([...applied].sort()).toEqual(["fault-fleet-0", "fault-fleet-2"]);
        // The other shards' servers are up and held by their stacks. Shard 1's f-4 was created too, but a failed up
        // publishes no outputs: the shard's servers are known once its next up succeeds.
        const ours = () => servers().filter((view) => view.labels["confscale:env"] === "fault");
        expect(
          ours()
            .filter((view) => view.name !== "f-3")
            .map((view) => view.name)
            .sort(),
        ).toEqual(["f-1", "f-2", "f-4", "f-5", "f-6"]);
        expect(Object.keys(await fleet.serverAddresses()).sort()).toEqual(["f-1", "f-2", "f-5", "f-6"]);
        const listed = await stacks("fault");
        expect(listed.get("fault-fleet-0")?.resourceCount).toBeGreaterThan(2);
        expect(listed.get("fault-fleet-2")?.resourceCount).toBeGreaterThan(2);
        // The shards' programs ran in processes of their own: none left a handler in this one.
        expect(process.listenerCount("uncaughtException") + process.listenerCount("unhandledRejection")).toBe(handlers);

        // The next up runs the failed shard alone and completes the fleet, each server once.
        expect(fleet.stacksToUpdate(spec)).toEqual(["fault-fleet-1"]);
        const retried = await fleet.up(spec);
        expect(retried.stacks).toEqual(["fault-fleet-1"]);
        expect(
          ours()
            .map((view) => view.name)
            .sort(),
        ).toEqual(["f-1", "f-2", "f-3", "f-4", "f-5", "f-6"]);
        expect(Object.keys(await fleet.serverAddresses()).sort()).toEqual(["f-1", "f-2", "f-3", "f-4", "f-5", "f-6"]);
      } finally {
        fleet.close();
      }
    },
  );
});
