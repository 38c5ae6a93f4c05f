import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FleetSpec } from "../../infra/fleet.js";
import { workerCredentials } from "../../infra/workerCredentials.js";
import { FleetStack } from "../../scaler/actuator/fleetStack.js";
import { Emulator } from "../emulator/emulator.js";
import { emulatedFleetTemplate, emulatedStackSettings, emulatorEndpoints } from "../harness/fleetRig.js";
import type { ManagedProcess } from "../harness/process.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";
import { RedisServer } from "../harness/redis.js";
import { startWorkerSidecar } from "../harness/workerSidecar.js";
import { KeyServer, TOKENS, call, eventually, groupBody, startScaler } from "../integration/scaler-fixture.js";

/** Every process command line seen while `watch` is on, sampled from /proc as fast as the event loop allows. */
class CommandLineWatch {
  readonly seen = new Set<string>();
  private running = true;
  private readonly done: Promise<void>;

  constructor() {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      for (const pid of readdirSync("/proc")) {
        if (!/^\d+$/.test(pid)) continue;
        try {
          const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
          if (cmdline !== "") this.seen.add(cmdline);
        } catch {
          // The process ended between the listing and the read.
        }
      }
      // Let the engine's events through between two samples.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async stop(): Promise<string[]> {
    this.running = false;
    await this.done;
    return [...this.seen];
  }
}

describe("the fleet's secrets during an up of the fleet stack (real CLI)", () => {
  const masterSecret = randomBytes(24).toString("hex");
  const nodeExporterPassword = `nep-${randomBytes(12).toString("hex")}`;
  let emulator: Emulator;
  let sandbox: PulumiSandbox;

  beforeAll(async () => {
    emulator = await Emulator.start({ bbbSecret: masterSecret, timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 200 } });
    sandbox = await createPulumiSandbox();
  });

  afterAll(async () => {
    await emulator?.stop();
    await sandbox?.cleanup();
  });

  it("never puts a secret on a command line, and gives each worker only its own BBB secret and sidecar key", async () => {
    const endpoints = emulatorEndpoints(emulator);
    const watch = new CommandLineWatch();
    let commandLines: string[];
    try {
      const fleet = await FleetStack.open({ ...emulatedStackSettings(endpoints, sandbox, "e2e"), nodeExporterPassword, masterSecret });
      const spec: FleetSpec = {
        ...emulatedFleetTemplate(emulator, "e2e", "bbb"),
        servers: [
          { name: "bbb-1", size: { cores: 2, ramGb: 8 }, power: "running", image: "ubuntu:22.04" },
          { name: "bbb-2", size: { cores: 2, ramGb: 8 }, power: "running", image: "ubuntu:22.04" },
        ],
      };
      await fleet.up(spec);
    } finally {
      commandLines = await watch.stop();
    }
    const one = workerCredentials(masterSecret, "bbb", "bbb-1");
    const two = workerCredentials(masterSecret, "bbb", "bbb-2");
    // The sampling saw the engine at work, so an empty result means something.
    expect(commandLines.some((line) => /pulumi\S* .*\bup\b/.test(line))).toBe(true);
    const secrets = { masterSecret, nodeExporterPassword, bbb1: one.bbbSecret, bbb2: two.bbbSecret };
    for (const [name, secret] of Object.entries(secrets)) {
      expect(
        commandLines.filter((line) => line.includes(secret)),
        name,
      ).toEqual([]);
    }

    const userDataOf = (name: string) => {
      const server = [...emulator.cloud.servers.values()].find((candidate) => candidate.name === name)!;
      const volume = emulator.cloud.datacenters.get(server.datacenterId)!.volumes.get(server.volumeIds[0]!)!;
      return Buffer.from(String(volume.properties.userData), "base64").toString("utf8");
    };
    const first = userDataOf("bbb-1");
    const files = (parse(first) as { write_files: { path: string; content: string; permissions: string }[] }).write_files;
    expect(files.find((file) => file.path === "/etc/confscale/bbb-secret")).toMatchObject({ content: one.bbbSecret, permissions: "0600" });
    expect(files.find((file) => file.path === "/etc/confscale/sidecar-key.pem")).toMatchObject({
      content: one.signingKeyPem,
      permissions: "0600",
    });
    expect(files.find((file) => file.path === "/etc/confscale/sidecar.env")?.content).toContain(`CONFSCALE_KEY_ID=${one.keyId}`);
    // Neither the fleet's master secret nor another worker's secrets are in this worker's metadata.
    expect(first).not.toContain(masterSecret);
    expect(first).not.toContain(two.bbbSecret);
    expect(first).not.toContain(two.signingKeyPem.split("\n")[1]);

    // The worker's sidecar, from nothing but this user data, checks in with its own key.
    process.env.CONFSCALE_BBB_SECRET = masterSecret;
    const redis = await RedisServer.start();
    const keys = await KeyServer.start();
    const scaler = await startScaler(redis, keys.baseUrl, { keyPrefix: "fleet-secrets:" });
    let sidecar: ManagedProcess | undefined;
    try {
      await call(scaler.url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody("bbb", "bbb") });
      sidecar = await startWorkerSidecar({
        emulator,
        serverName: "bbb-1",
        dir: sandbox.dir,
        scalerUrl: scaler.url,
        extraEnv: { CONFSCALE_STATS_INTERVAL_MS: "300", CONFSCALE_POLL_INTERVAL_MS: "300" },
      });
      await eventually(
        async () =>
          (await scaler.store.listInstances("bbb")).some((instance) => instance.instanceId === "bbb-1" && instance.stats !== null),
        30_000,
        "bbb-1's check-in",
      );
    } finally {
      await sidecar?.stop();
      await scaler.stop();
      await keys.stop();
      await redis.stop();
    }
  });
});
