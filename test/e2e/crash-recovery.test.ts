import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Emulator } from "../emulator/emulator.js";
import { emulatorEndpoints, openEmulatedFleet } from "../harness/fleetRig.js";
import { killProcessesIn } from "../harness/process.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";
import { RedisServer } from "../harness/redis.js";
import { untilServerReachesCloud } from "../harness/cloudWait.js";

// Long enough to outlast the event-loop pauses of the in-process Pulumi program on a loaded machine.
const LEASE_TTL_MS = 15_000;
const tsx = fileURLToPath(new URL("../../node_modules/.bin/tsx", import.meta.url));
const child = fileURLToPath(new URL("../harness/actuatorProcess.ts", import.meta.url));

describe("a scaler killed during an up, and restarted (real Redis, CLI, emulator)", () => {
  let emulator: Emulator;
  let redisServer: RedisServer;
  let sandbox: PulumiSandbox;

  beforeAll(async () => {
    // Slow cloud requests keep the update in flight long enough to kill it in the middle.
    emulator = await Emulator.start({ timings: { requestQueuedMs: 200, requestRunningMs: 4_000, bootMs: 500 } });
    redisServer = await RedisServer.start();
    sandbox = await createPulumiSandbox();
  });

  afterAll(async () => {
    await emulator?.stop();
    await redisServer?.stop();
    await sandbox?.cleanup();
  });

  const servers = () => [...emulator.cloud.servers.values()].map((server) => emulator.serverView(server));

  it("recovers on restart: the stale lock goes, nothing is created twice, nothing is orphaned", { timeout: 600_000 }, async () => {
    const options = {
      endpoints: emulatorEndpoints(emulator),
      sandbox: { dir: sandbox.dir, backendUrl: sandbox.backendUrl, env: sandbox.env },
      redisUrl: redisServer.url,
      baseline: 3,
      leaseTtlMs: LEASE_TTL_MS,
    };
    // Its own process group: killing it takes the engine and the provider host along, as a container's death would.
    const scaler = spawn(tsx, [child, JSON.stringify(options)], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    scaler.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    scaler.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(scaler, "exit");

    await untilServerReachesCloud(emulator.cloud, { exited, output: () => output });
    process.kill(-scaler.pid!, "SIGKILL");
    await exited;
    // The engine's plugin hosts run in groups of their own; a dead container would have taken them along too.
    await killProcessesIn(sandbox.dir);
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
      expect([...emulator.scalelite.servers.values()].filter((entry) => entry.state === "enabled")).toHaveLength(3);
      const audit = await rig.store.readAudit("bbb");
      expect(audit.find((entry) => entry.kind === "recovered")?.details).toMatchObject({ pendingOperations: expect.any(Number) });
    } finally {
      await rig.close();
    }
  });
});
