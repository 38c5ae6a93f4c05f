import { Redis } from "ioredis";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Keys } from "../../scaler/store/keys.js";
import { Emulator } from "../emulator/emulator.js";
import { emulatedFleetAddresses, emulatedFleetSecrets, emulatedFleetTemplate } from "../harness/fleetRig.js";
import { freeLoopbackPort } from "../harness/ports.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";
import { ScalerProcess } from "../harness/scalerProcess.js";
import { SentinelGroup } from "../harness/sentinel.js";
import { KeyServer, call, eventually, signSidecarToken } from "../integration/scaler-fixture.js";

const SENDERS = 8;
/** The load's bound: it stops by itself after this many check-ins, whatever happens. */
const MAX_CHECK_INS = 20_000;
const keys = new Keys("confscale:");

describe("Redis Sentinel: failovers under check-in load lose no acknowledged check-in (real redis-sentinel, scaler, CLI)", () => {
  let sentinels: SentinelGroup;
  let emulator: Emulator;
  let sandbox: PulumiSandbox;
  let keyServer: KeyServer;
  let scaler: ScalerProcess | undefined;

  beforeAll(async () => {
    sentinels = await SentinelGroup.start();
    emulator = await Emulator.start({ timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 } });
    sandbox = await createPulumiSandbox();
    keyServer = await KeyServer.start();
  });

  afterAll(async () => {
    await scaler?.kill();
    await keyServer?.stop();
    await emulator?.stop();
    await sentinels?.stop();
    await sandbox?.cleanup();
  });

  it(
    "answers 2xx only for check-ins a replica holds, through two failovers; the scaler and its fleet lease follow the primary without a restart",
    { timeout: 300_000 },
    async () => {
      const token = await signSidecarToken(await keyServer.newKey("sentinel-test"));
      const port = await freeLoopbackPort();
      const url = `http://127.0.0.1:${port}`;
      const workDir = join(sandbox.dir, "fleet");
      await mkdir(workDir, { recursive: true });
      const configFile = join(sandbox.dir, "scaler.yaml");
      const size = { cores: 2, ramGb: 8 };
      await writeFile(
        configFile,
        stringify({
          listen: { host: "127.0.0.1", port },
          // With sentinels, the URL's host is not used: they name the primary.
          redis: { url: "redis://127.0.0.1", commandTimeoutMs: 1_000 },
          sidecar: { keyBaseUrl: keyServer.baseUrl },
          fleet: {
            template: emulatedFleetTemplate(emulator, "e2e", "bbb"),
            image: "ubuntu:22.04",
            policy: { min: 0, max: 1, baseline: 0, defaultSize: size, maxSize: size },
            intervalSeconds: 1,
            workDir,
            ...emulatedFleetAddresses(emulator),
            prometheusUrl: `${emulator.url}/no-prometheus`,
            leaseTtlSeconds: 15,
          },
        }),
      );
      const acknowledged: string[] = [];
      let refused = 0;
      let sent = 0;
      scaler = ScalerProcess.start({
        ...sandbox.env,
        PATH: `${sandbox.env.PATH}:${process.env.PATH ?? ""}`,
        SCALER_CONFIG: configFile,
        SCALER_REDIS_SENTINELS: sentinels.sentinelList,
        ...emulatedFleetSecrets(emulator),
      });
      await scaler.event("fleet.lease_acquired");
      await scaler.event("fleet.started");

      // Sidecars checking in without pause, each check-in as a new instance: an acknowledged one must exist afterwards.
      let running = true;
      const waiters: { count: number; resolve: () => void }[] = [];
      const acknowledgedReach = (count: number) =>
        new Promise<void>((resolve) => {
          if (acknowledged.length >= count) resolve();
          else waiters.push({ count, resolve });
        });
      const sender = async (index: number) => {
        while (running && sent < MAX_CHECK_INS) {
          sent += 1;
          const instanceId = `sidecar-${index}-${sent}`;
          const response = await call(url, "POST", "/sidecar/status", {
            token,
            body: { instance: { instanceId, instanceType: "bbb", group: "bbb" }, stats: { stress_level: 0.1 }, timestamp: Date.now() },
          }).catch(() => ({ status: 0, body: {} }));
          if (response.status >= 200 && response.status < 300) {
            acknowledged.push(instanceId);
            for (const waiter of waiters.filter((candidate) => acknowledged.length >= candidate.count)) waiter.resolve();
          } else {
            refused += 1;
            // Paced while Redis is away: the 503s come at once.
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        }
      };
      const senders = Array.from({ length: SENDERS }, (_, index) => sender(index));

      await acknowledgedReach(300);
      const oldPrimary = await sentinels.primaryPort();
      const watch = await sentinels.onSwitch();
      await sentinels.kill(oldPrimary);
      const acknowledgedBeforeFailover = acknowledged.length;
      const newPrimary = await watch.switched;
      watch.close();
      expect(newPrimary).not.toBe(oldPrimary);
      // The old primary's machine comes back with its append-only file, and at once, before it can have copied the new
      // primary's data, the new primary stalls: the sentinels fail over again, to the node that just came back. It
      // holds what it had acknowledged before the first failover; every check-in acknowledged since waited for it.
      const secondWatch = await sentinels.onSwitch();
      await sentinels.restart(oldPrimary);
      const stall = sentinels.stall(newPrimary);
      const secondPrimary = await secondWatch.switched;
      stall.resume();
      secondWatch.close();
      const secondSwitchAt = Date.now();
      expect(secondPrimary).toBe(oldPrimary);
      // The stalled node runs again and is made the replica: the check-ins that WAIT for one are acknowledged again.
      await acknowledgedReach(acknowledged.length + 300);
      running = false;
      await Promise.all(senders);

      expect(await sentinels.primaryPort()).toBe(secondPrimary);
      const primary = new Redis({ host: "127.0.0.1", port: secondPrimary });
      try {
        const present = await Promise.all(acknowledged.map((id) => primary.exists(keys.instance("bbb", id))));
        const lost = acknowledged.filter((_, index) => present[index] !== 1);
        expect({ acknowledged: acknowledged.length, lost: lost.length }).toEqual({ acknowledged: acknowledged.length, lost: 0 });
        expect(acknowledgedBeforeFailover).toBeGreaterThanOrEqual(300);
        expect(refused).toBeGreaterThan(0);

        // The same process holds the fleet lease on the primary in force and its periods go on.
        expect(await primary.get("confscale:fleet:bbb:lock")).toMatch(new RegExp(`^\\d+ .+:${scaler.child.pid}$`));
        await eventually(
          async () => {
            const status = (await (await fetch(`${url}/fleets/bbb`)).json()) as { lastPeriod: { at: string } | null };
            return status.lastPeriod !== null && Date.parse(status.lastPeriod.at) > secondSwitchAt;
          },
          60_000,
          "a fleet period after the second failover",
        );
      } finally {
        primary.disconnect();
      }
      expect(scaler.child.exitCode).toBeNull();
      expect(await scaler.stop()).toEqual([0, null]);
    },
  );
});
