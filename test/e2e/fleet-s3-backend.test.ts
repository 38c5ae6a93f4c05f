import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Decision } from "../../scaler/policy/types.js";
import { emulatorEndpoints, openEmulatedFleet } from "../harness/fleetRig.js";
import { useEmulatedParts } from "../harness/emulatedParts.js";
import { S3Server } from "../harness/s3.js";
import { eventually } from "../integration/scaler-fixture.js";

const create: Decision = { kind: "create", reason: "test: create", inputs: {}, dryRun: false };

describe("the fleet stack on an s3:// backend (versitygw), two scalers contending for it (real Redis, CLI, emulator)", () => {
  // Creates that take seconds: an update is still in flight when the other scaler tries its own.
  const parts = useEmulatedParts({ timings: { requestQueuedMs: 20, requestRunningMs: 3_000, bootMs: 300 } });
  let s3: S3Server;
  const rigs: Awaited<ReturnType<typeof openEmulatedFleet>>[] = [];

  beforeAll(async () => {
    s3 = await S3Server.start();
  });

  afterAll(async () => {
    for (const rig of rigs) await rig.close();
    await s3?.stop();
  });

  /** A scaler's actuator with its own work directory (another container), the shared bucket and Redis. */
  async function scaler(name: string) {
    const env = { ...parts.sandbox.env, ...s3.env, PULUMI_BACKEND_URL: s3.backendUrl };
    const rig = await openEmulatedFleet({
      endpoints: emulatorEndpoints(parts.emulator),
      sandbox: { dir: join(parts.sandbox.dir, name), backendUrl: s3.backendUrl, env },
      redisUrl: parts.redis.url,
      owner: name,
      leaseTtlMs: 15_000,
    });
    rigs.push(rig);
    return rig;
  }
  const servers = () => [...parts.emulator.cloud.servers.values()].map((server) => parts.emulator.serverView(server).name).sort();
  const creates = () =>
    [...parts.emulator.cloud.requests.values()].filter((request) => request.method === "POST" && /\/servers$/.test(request.url));

  it(
    "one scaler acts at a time: the other stands by on the lease, its engine is refused the stack's lock, and it takes over the state from the bucket",
    { timeout: 420_000 },
    async () => {
      const a = await scaler("scaler-a");
      const b = await scaler("scaler-b");
      await a.actuator.start();
      let bStarted = false;
      const bStart = b.actuator.start().then((result) => {
        bStarted = true;
        return result;
      });

      const first = a.actuator.cycle([create]);
      await Promise.race([
        eventually(async () => creates().length > 0, 300_000, "scaler A's create reached the cloud"),
        first.then(() => Promise.reject(new Error("scaler A's update ended before the cloud saw its create"))),
      ]);
      // Scaler A's update is in flight, and stays so: the emulated cloud's clock stands still (A's create stays RUNNING)
      // while scaler B reads the shard stacks and starts its own engine. B's engine, run past the lease, is refused the
      // lock in the bucket.
      parts.emulator.clock.setMode({ kind: "manual" });
      const spec = a.actuator.currentState().desired;
      await expect(b.fleetStack.up(spec)).rejects.toThrow(/currently locked/);
      parts.emulator.clock.setMode({ kind: "real", scale: 1 });
      expect((await first).update?.steps.map((step) => `${step.op} ${step.name}`)).toContain("create bbb-1");
      expect(bStarted).toBe(false);

      // A steps down; B takes the lease and reads the fleet A left (Redis) and the stack (the bucket).
      await a.actuator.stop();
      expect(await bStart).toEqual({ recovered: false });
      expect(Object.keys(await b.fleetStack.preview(b.actuator.currentState().desired))).toEqual(["same"]);
      const second = await b.actuator.cycle([create]);
      expect(second.update?.steps.map((step) => `${step.op} ${step.name}`)).toContain("create bbb-2");
      expect(servers()).toEqual(["bbb-1", "bbb-2"]);
      expect(creates()).toHaveLength(2);
      expect(Object.keys(await b.fleetStack.serverAddresses()).sort()).toEqual(["bbb-1", "bbb-2"]);
    },
  );
});
