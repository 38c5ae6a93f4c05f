// A scaler killed while a Jitsi group's `up` is in flight, and restarted: the group's fleet recovers the interrupted
// update through the same path as the BBB fleet (scaler/actuator/fleetStack.ts recover).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Emulator } from "../emulator/emulator.js";
import { emulatorEndpoints } from "../harness/fleetRig.js";
import { openEmulatedJitsiFleet, openJitsiStore } from "../harness/jitsiRig.js";
import { killProcessesIn } from "../harness/process.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";
import { RedisServer } from "../harness/redis.js";
import { untilServerReachesCloud } from "../harness/cloudWait.js";

// Long enough to outlast the event-loop pauses of the in-process Pulumi program on a loaded machine.
const LEASE_TTL_MS = 15_000;
const tsx = fileURLToPath(new URL("../../node_modules/.bin/tsx", import.meta.url));
const child = fileURLToPath(new URL("../harness/jitsiFleetProcess.ts", import.meta.url));
const GROUP = {
  name: "bridges",
  type: "JVB",
  size: { cores: 2, ramGb: 4 },
  scaling: { minDesired: 0, maxDesired: 5, desiredCount: 3, scaleUpThreshold: 0.7, scaleDownThreshold: 0.3 },
} as const;

describe("a scaler killed during a Jitsi group's up, and restarted (real Redis, CLI, emulator)", () => {
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

  it("recovers on restart: the stale lock goes, no bridge is created twice, none is orphaned", { timeout: 600_000 }, async () => {
    const options = {
      endpoints: emulatorEndpoints(emulator),
      sandbox: { dir: sandbox.dir, backendUrl: sandbox.backendUrl, env: sandbox.env },
      redisUrl: redisServer.url,
      leaseTtlMs: LEASE_TTL_MS,
      group: GROUP,
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
    await killProcessesIn(sandbox.dir);
    expect(output).not.toContain("cycled");
    expect(servers().length).toBeGreaterThan(0);

    const { redis, store } = openJitsiStore(redisServer.url);
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
