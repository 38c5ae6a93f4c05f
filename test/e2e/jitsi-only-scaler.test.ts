// A scaler without a BBB fleet (scaler/main.ts with scaler.yaml's `jitsi` and `jitsiFleet`, as a Jitsi-only
// environment's control node renders it): no Scalelite, no LOADBALANCER_SECRET; it launches a videobridge group's
// bridges on their own stack, and a bridge's stress makes it launch another. Real Redis, CLI and scaler process.
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { stringify } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { emulatedFleetTemplate, emulatorEndpoints } from "../harness/fleetRig.js";
import { freeLoopbackPort } from "../harness/ports.js";
import { killProcessesIn } from "../harness/process.js";
import { useEmulatedParts } from "../harness/emulatedParts.js";
import { ScalerProcess } from "../harness/scalerProcess.js";
import { call, eventually } from "../integration/scaler-fixture.js";

const HOUR = 3_600_000;
const VIEWER_TOKEN = "viewer-token-of-the-jitsi-only-scaler-test";
const OPERATOR_TOKEN = "operator-token-of-the-jitsi-only-scaler-test";

describe("a Jitsi-only scaler (scaler/main.ts without a BBB fleet; real Redis, CLI, emulated cloud and sidecars)", () => {
  const parts = useEmulatedParts({ timings: { requestQueuedMs: 50, requestRunningMs: 200, bootMs: 300 } });
  let scaler: ScalerProcess | undefined;
  let url: string;

  afterAll(async () => {
    await scaler?.stop();
    await killProcessesIn(parts.sandbox.dir);
  });

  const servers = () => [...parts.emulator.cloud.servers.values()].map((server) => parts.emulator.serverView(server));

  it(
    "launches the group's bridges, shows them under /fleets/jitsi-bridges, and launches another when their stress holds",
    { timeout: 600_000 },
    async () => {
      const port = await freeLoopbackPort();
      const configFile = join(parts.sandbox.dir, "scaler.yaml");
      const workDir = join(parts.sandbox.dir, "fleet");
      await mkdir(workDir, { recursive: true });
      const { fleet: _bbb, ...template } = emulatedFleetTemplate(parts.emulator, "e2e", "unused");
      await writeFile(
        configFile,
        stringify({
          listen: { host: "127.0.0.1", port },
          redis: { url: parts.redis.url },
          sidecar: { keyBaseUrl: parts.emulator.keyBaseUrl },
          apiTokens: [
            { name: "viewer", role: "viewer", token: VIEWER_TOKEN },
            { name: "ops", role: "operator", token: OPERATOR_TOKEN },
          ],
          jitsi: {
            signaling: { xmppDomain: "meet.confscale.test", xmppHost: "127.0.0.1" },
            groups: [
              {
                name: "bridges",
                type: "JVB",
                size: { cores: 2, ramGb: 4 },
                image: "ubuntu:22.04",
                gracePeriodTTLSec: 0,
                scaling: {
                  minDesired: 1,
                  // No grace after a change (gracePeriodTTLSec 0): a launched bridge counts at once, so the cap holds it at 2.
                  maxDesired: 2,
                  desiredCount: 1,
                  scaleUpThreshold: 0.5,
                  scaleDownThreshold: 0.1,
                  scalePeriod: 10,
                  scaleUpPeriodsCount: 1,
                  scaleDownPeriodsCount: 60,
                },
              },
            ],
          },
          jitsiFleet: { template, image: "ubuntu:22.04", intervalSeconds: 1, workDir },
        }),
      );
      const endpoints = emulatorEndpoints(parts.emulator);
      // The BBB fleet's LOADBALANCER_SECRET is not among them: a Jitsi-only scaler talks to no Scalelite.
      scaler = ScalerProcess.start({
        ...parts.sandbox.env,
        PATH: `${parts.sandbox.env.PATH}:${process.env.PATH ?? ""}`,
        SCALER_CONFIG: configFile,
        CONFSCALE_NODE_EXPORTER_PASSWORD: "node-exporter-password",
        CONFSCALE_BBB_SECRET: endpoints.bbbSecret,
        CONFSCALE_JITSI_JVB_PASSWORD: "jvb-xmpp-password",
        IONOS_USERNAME: endpoints.username,
        IONOS_PASSWORD: endpoints.password,
      });
      url = `http://127.0.0.1:${port}`;
      await scaler.event("jitsi.started");
      expect(scaler.entries.some((entry) => entry.event === "fleet.started")).toBe(false);

      // The first period launches the group's desiredCount.
      await scaler.next((entry) => entry.event === "jitsi.period" && entry.desired === 1, "the first bridge's launch");
      await eventually(async () => servers().some((server) => server.name === "jitsi-bridges-1"), 60_000, "jitsi-bridges-1 created");
      const first = servers().find((server) => server.name === "jitsi-bridges-1")!;
      expect(first.labels["confscale:fleet"]).toBe("jitsi-bridges");

      // The operator's view: the Jitsi fleet beside no BBB fleet, its machine and its Prometheus targets.
      const fleets = await call(url, "GET", "/fleets");
      expect((fleets.body as unknown as { fleet: string }[]).map((fleet) => fleet.fleet)).toEqual(["jitsi-bridges"]);
      await eventually(
        async () => ((await call(url, "GET", "/fleets/jitsi-bridges/targets")).body as unknown as unknown[]).length === 1,
        30_000,
        "the bridge's scrape target",
      );
      expect((await call(url, "GET", "/fleets/jitsi-bridges/targets")).body).toEqual([
        {
          targets: ["jitsi-bridges-1.bbb.confscale.test:9100"],
          labels: { instance: expect.stringMatching(/:9100$/), server: "jitsi-bridges-1" },
        },
      ]);

      // Its sidecar checks in; a conference puts the bridge at 0.6 stress, above the group's threshold.
      await eventually(
        async () => parts.emulator.cloud.isServing(parts.emulator.cloud.servers.get(first.id)!),
        30_000,
        "jitsi-bridges-1 booting",
      );
      parts.emulator.startSidecar(first.id, { scalerUrl: url, group: "bridges", instanceType: "JVB", intervalMs: 200 });
      parts.emulator.startConference(first.id, { participants: 60, durationMs: HOUR });
      await scaler.next((entry) => entry.event === "jitsi.period" && entry.desired === 2, "the autoscaler's launch of a second bridge");
      await eventually(async () => servers().some((server) => server.name === "jitsi-bridges-2"), 60_000, "jitsi-bridges-2 created");

      const status = await call(url, "GET", "/api/v1/fleets/jitsi-bridges", { token: VIEWER_TOKEN });
      expect(status.status).toBe(200);
      expect(status.body).toMatchObject({
        fleet: "jitsi-bridges",
        group: "bridges",
        component: "JVB",
        servers: [{ name: "jitsi-bridges-1", id: first.id, phase: "active", sidecar: { state: "running" } }, { name: "jitsi-bridges-2" }],
      });
      // Scalelite's server actions are no way out of a Jitsi group: its machines leave through the sidecar's shutdown.
      const cordon = await call(url, "POST", "/api/v1/fleets/jitsi-bridges/servers/jitsi-bridges-1/cordon", { token: OPERATOR_TOKEN });
      expect(cordon.status).toBe(409);
      expect(cordon.body.issues).toEqual([{ field: "server", message: expect.stringMatching(/graceful shutdown/) }]);
      // The operator's CLI reads the Jitsi fleet beside (here: instead of) the BBB fleet.
      const repo = fileURLToPath(new URL("../..", import.meta.url));
      const cli = await promisify(execFile)(process.execPath, ["--import", "tsx", join(repo, "scaler/cli.ts"), "status"], {
        cwd: repo,
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", CONFSCALE_URL: url, CONFSCALE_TOKEN: VIEWER_TOKEN },
        timeout: 60_000,
      });
      expect(cli.stdout).toMatch(/^fleet jitsi-bridges \(Jitsi group bridges, JVB\): 2 machines$/m);
      expect(cli.stdout).toMatch(/^jitsi-bridges-1 +2 cores \/ 4 GB +active +running +0\.60$/m);
      const audit = await call(url, "GET", "/api/v1/groups/bridges/audit", { token: VIEWER_TOKEN });
      expect(JSON.stringify(audit.body)).toContain("autoscale.up");
      // Its metrics under the fleet's names: desired, machines by phase, the group's figure.
      const metrics = await fetch(`${url}/metrics`).then((response) => response.text());
      expect(metrics).toMatch(/^confscale_fleet_servers_desired\{fleet="jitsi-bridges"\} 2$/m);
      expect(metrics).toMatch(/^confscale_jitsi_group_figure\{fleet="jitsi-bridges",metric="stress"\} 0\.6$/m);
      expect(metrics).toMatch(/^confscale_fleet_servers_bound\{fleet="jitsi-bridges",bound="max"\} 2$/m);
    },
  );
});
