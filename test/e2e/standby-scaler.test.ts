import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { emulatedFleetAddresses, emulatedFleetSecrets, emulatedFleetTemplate } from "../harness/fleetRig.js";
import { freeLoopbackPort } from "../harness/ports.js";
import { killProcessesIn } from "../harness/process.js";
import { useEmulatedParts } from "../harness/emulatedParts.js";
import { ScalerProcess } from "../harness/scalerProcess.js";
import { ScalerStore } from "../../scaler/store/store.js";
import { KeyServer, call, eventually, signSidecarToken } from "../integration/scaler-fixture.js";
import { Redis } from "ioredis";

// Long enough to outlast the event-loop pauses of the in-process Pulumi program on a loaded machine.
const LEASE_TTL_SECONDS = 15;
const BASELINE = 3;

describe("a standby scaler takes over from a leader killed during an up (real scalers, Redis, CLI, emulator)", () => {
  // Slow cloud requests keep the leader's update in flight long enough to kill it in the middle.
  const parts = useEmulatedParts({ timings: { requestQueuedMs: 200, requestRunningMs: 4_000, bootMs: 500 } });
  let keys: KeyServer;
  let sidecarToken: string;
  let admin: Redis;
  let store: ScalerStore;
  const scalers: ScalerProcess[] = [];

  beforeAll(async () => {
    keys = await KeyServer.start();
    sidecarToken = await signSidecarToken(await keys.newKey("standby-test"));
    admin = new Redis(parts.redis.url);
    store = new ScalerStore(admin, {
      keyPrefix: "confscale:",
      instanceTtl: { provisioningSeconds: 900, idleSeconds: 300, shuttingDownSeconds: 600 },
      retention: { stressPoints: 100, stressSeconds: 3600, auditEntries: 1000, instanceAuditSeconds: 3600, commandSeconds: 3600 },
    });
  });

  afterAll(async () => {
    for (const scaler of scalers) await scaler.kill();
    await killProcessesIn(parts.sandbox.dir);
    await keys?.stop();
    admin?.disconnect();
  });

  /** A scaler as its container runs it: its own settings file, port and fleet work directory; the shared backend. */
  async function startScaler(name: string): Promise<{ scaler: ScalerProcess; url: string; workDir: string }> {
    const port = await freeLoopbackPort();
    const workDir = join(parts.sandbox.dir, name);
    await mkdir(workDir, { recursive: true });
    const configFile = join(parts.sandbox.dir, `${name}.yaml`);
    const size = { cores: 2, ramGb: 8 };
    await writeFile(
      configFile,
      stringify({
        listen: { host: "127.0.0.1", port },
        redis: { url: parts.redis.url },
        sidecar: { keyBaseUrl: keys.baseUrl },
        fleet: {
          template: emulatedFleetTemplate(parts.emulator, "e2e", "bbb"),
          image: "ubuntu:22.04",
          // Nothing for the policy to change: the fleet is its baseline, whatever the (absent) metrics say.
          policy: { min: BASELINE, max: BASELINE, baseline: BASELINE, defaultSize: size, maxSize: size },
          intervalSeconds: 1,
          workDir,
          ...emulatedFleetAddresses(parts.emulator),
          prometheusUrl: `${parts.emulator.url}/no-prometheus`,
          leaseTtlSeconds: LEASE_TTL_SECONDS,
        },
      }),
    );
    const scaler = ScalerProcess.start({
      ...parts.sandbox.env,
      PATH: `${parts.sandbox.env.PATH}:${process.env.PATH ?? ""}`,
      SCALER_CONFIG: configFile,
      ...emulatedFleetSecrets(parts.emulator),
    });
    scalers.push(scaler);
    await scaler.event("listening");
    return { scaler, url: `http://127.0.0.1:${port}`, workDir };
  }

  const checkIn = (url: string, instanceId: string) =>
    call(url, "POST", "/sidecar/poll", { token: sidecarToken, body: { instanceId, instanceType: "bbb", group: "bbb" } });
  const servers = () => [...parts.emulator.cloud.servers.values()].map((server) => parts.emulator.serverView(server));
  const creates = () =>
    [...parts.emulator.cloud.requests.values()].filter((request) => request.method === "POST" && /\/servers$/.test(request.url));

  it(
    "the standby serves check-ins while it waits, takes the lease within its TTL, recovers the update and creates no server twice",
    { timeout: 600_000 },
    async () => {
      // The kill switch holds the leader's first update until the standby has stood by past any fixed deadline.
      await store.setGlobalPause(true, "test");
      const leader = await startScaler("leader");
      await leader.scaler.event("fleet.lease_acquired");
      await leader.scaler.event("fleet.paused");
      const standby = await startScaler("standby");
      await standby.scaler.event("fleet.lease_wait");

      // Both serve check-ins: the standby's store is the same Redis.
      expect((await checkIn(leader.url, "sidecar-1")).status).toBe(200);
      expect((await checkIn(standby.url, "sidecar-2")).status).toBe(200);
      const standbyStatus = (await (await fetch(`${standby.url}/fleets/bbb`)).json()) as { starting: boolean };
      expect(standbyStatus.starting).toBe(true);

      // Two lease lives: a standby that gave up after a fixed wait would have exited by now.
      await new Promise((resolve) => setTimeout(resolve, 2 * LEASE_TTL_SECONDS * 1000 + 1_000));
      expect(standby.scaler.child.exitCode).toBeNull();
      await store.setGlobalPause(false, "test");

      // The leader's first update is creating the baseline: kill it (and its engine) once the cloud has a server.
      await eventually(async () => servers().length > 0, 300_000, "the leader's update reached the cloud");
      const killedAt = Date.now();
      await leader.scaler.kill();
      await killProcessesIn(leader.workDir);
      expect(leader.scaler.entries.some((entry) => entry.event === "fleet.started")).toBe(true);
      const createdBeforeKill = servers().length;
      expect(createdBeforeKill).toBeLessThan(BASELINE + 1);

      const acquired = await standby.scaler.event("fleet.lease_acquired");
      // A dead leader's lease ends at most a TTL after its last renewal, which came before the kill; the second is for
      // the standby's timer on a loaded machine.
      expect(Date.parse(acquired.time) - killedAt).toBeLessThan(LEASE_TTL_SECONDS * 1000 + 1_000);
      const recovered = await standby.scaler.event("fleet.recovered");
      expect(recovered.pendingOperations).toBeGreaterThan(0);

      await eventually(
        async () => {
          const response = await fetch(`${standby.url}/fleets/bbb`);
          const status = (await response.json()) as { servers: { phase: string }[] };
          return status.servers.length === BASELINE && status.servers.every((server) => server.phase === "active");
        },
        300_000,
        "the standby brought the fleet to its baseline",
      );
      const names = servers()
        .map((server) => server.name)
        .sort();
      expect(names).toEqual(["bbb-1", "bbb-2", "bbb-3"]);
      expect(servers().every((server) => server.vmState === "RUNNING" && server.labels["confscale:fleet"] === "bbb")).toBe(true);
      // Every server was asked of the cloud once: what the dead leader's creates left was adopted, not made again.
      expect(creates()).toHaveLength(BASELINE);
      expect([...parts.emulator.scalelite.servers.values()].filter((entry) => entry.state === "enabled")).toHaveLength(BASELINE);
      expect((await checkIn(standby.url, "sidecar-2")).status).toBe(200);

      expect(await standby.scaler.stop()).toEqual([0, null]);
    },
  );
});
