import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";
import type { EnvironmentConfig } from "../../infra/config.js";
import type { Emulator } from "../emulator/emulator.js";
import { NoServerAvailableError } from "../emulator/scalelite.js";
import { ControlNode, type ControlNodeDelivery } from "./control-node.js";
import type { LabCloud } from "./lab-cloud.js";
import { LabError, waitFor, type Lab, type Machine } from "./lab.js";
import { ENV, startLocalEnvironment, type LocalEnvironment } from "./local-environment.js";

const Targets = z.object({
  data: z.object({
    activeTargets: z.array(
      z.object({ labels: z.record(z.string(), z.string()), health: z.string(), lastError: z.string(), scrapeUrl: z.string() }),
    ),
  }),
});

/**
 * The control node of the local environment runs its rendered compose project in the lab: the scaler (a Node process
 * of the machine, its environment from the env file and the compose service's `environment:` as compose-go reads
 * them, its settings from the delivered scaler.yaml), Redis and Prometheus with the compose commands and the rendered
 * prometheus.yml, and the emulated Scalelite at scalelite-api:3000. The cloud API emulator stays outside.
 */
describe("the control node runs what its compose file says (rehearsal lab)", () => {
  let environment: LocalEnvironment;
  let emulator: Emulator;
  let lab: Lab;
  let control: Machine;
  let node: ControlNode;
  let config: EnvironmentConfig;
  let delivery: ControlNodeDelivery;
  let userData: string;
  let labCloud: LabCloud;
  let baseline: string[] = [];

  const curl = (url: string) => environment.curl(url);

  beforeAll(async () => {
    environment = await startLocalEnvironment();
    ({ emulator, lab, control, node, config, delivery, userData, labCloud } = environment);
  }, 240_000);

  afterAll(async () => {
    await environment?.stop();
  });

  it("is the control server the environment's own pulumi up created, booted from its boot volume, placing the fleet where the up says", async () => {
    const [datacenter, ...others] = [...emulator.cloud.datacenters.values()];
    expect(others).toEqual([]);
    expect(datacenter?.name).toBe(`confscale-${ENV}`);
    const servers = [...emulator.cloud.servers.values()].filter((server) => server.labels.get("confscale:role") === "control");
    expect(servers.map((server) => server.name)).toEqual([`${ENV}-control`]);
    const server = servers[0]!;
    expect(control.address).toBe(emulator.serverView(server).ips[0]);
    expect(environment.outputs.controlNodeAddress).toBe(control.address);
    const volume = datacenter!.volumes.get(server.volumeIds[0] ?? "");
    expect(Buffer.from(String(volume?.properties.userData), "base64").toString("utf8")).toBe(userData);
    // Behind the rules on its NIC: 22 only from the stack's admin range, so not from the internet (the gateway).
    expect(await control.readFile("/etc/nftables.d/cloud-firewall.json")).toContain("127.0.0.0");
    const template = z
      .object({ fleet: z.object({ template: z.object({ controlNodeIp: z.string(), placement: z.unknown() }) }) })
      .parse(parse(delivery.scalerSettings)).fleet.template;
    expect(template.controlNodeIp).toBe(control.address);
    expect(template.placement).toEqual(environment.outputs.workerPlacement);
    expect(environment.outputs.workerPlacement.ionos.datacenterId).toBe(datacenter?.id);
  });

  it("starts the scaler with the compose environment and scaler.yaml: ready on Redis by its compose name, keys under the env's prefix", async () => {
    expect((await curl("http://scaler:8080/readyz")).status).toBe("200");
    const fleet = await curl("http://scaler:8080/fleets/bbb");
    expect(fleet.status).toBe("200");
    // SCALER_REDIS_URL names database 1 and SCALER_KEY_PREFIX the environment: the scaler's keys are there.
    const keys = await waitFor("the scaler's keys in Redis", async () => {
      const { stdout } = await control.exec("redis-cli", ["-h", "redis", "-n", "1", "--scan"]);
      const found = stdout.split("\n").filter((key) => key !== "");
      return found.length > 0 ? found : undefined;
    });
    for (const key of keys) expect(key).toMatch(/^confscale:local:/);
    const { stdout: inDbZero } = await control.exec("redis-cli", ["-h", "redis", "-n", "0", "--scan"]);
    expect(inDbZero.trim()).toBe("");
  });

  it("serves the scaler behind Caddy with the rendered Caddyfile: the public key and sidecar routes answer, the operations routes do not", async () => {
    const sidecar = await curl(`https://${config.domain}/scaler/dist/confscale-sidecar.mjs`);
    expect(sidecar.status).toBe("200");
    // Check-ins reach the check-in workers' port: without a token they are refused there, not by Caddy.
    const checkIn = await control.exec("curl", [
      "-sS",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "-X",
      "POST",
      `https://${config.domain}/scaler/sidecar/poll`,
    ]);
    expect(checkIn.stdout).toBe("401");
    expect((await curl(`https://${config.domain}/scaler/fleets/bbb/targets`)).status).toBe("404");
  });

  it("runs Prometheus from the rendered prometheus.yml, which scrapes the scaler by its compose service name", async () => {
    const scaler = await waitFor(
      "Prometheus to scrape the scaler",
      async () => {
        const { body } = await curl("http://prometheus:9090/api/v1/targets?state=active");
        const target = Targets.parse(JSON.parse(body)).data.activeTargets.find((entry) => entry.labels.job === "confscale-scaler");
        return target?.health === "up" ? target : undefined;
      },
      60_000,
    );
    expect(scaler.labels.instance).toBe("scaler:8080");
  });

  it("brings the empty fleet to its baseline through the emulated cloud's API, outside the lab", async () => {
    // The first period's `up` brings the fleet to its minimum now (the baseline, or a school-day window's higher one).
    const status = await environment.firstFleetUp(110_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\nscaler: ${node.service("scaler").process.stdout.slice(-3000)}`);
    });
    const servers = [...emulator.cloud.servers.values()].filter((server) => server.labels.get("confscale:fleet") === "bbb");
    baseline = servers.map((server) => server.name).sort();
    expect(baseline.length).toBeGreaterThanOrEqual(config.workers!.baseline);
    expect(baseline).toEqual(status.servers.map((server) => server.name).sort());
    expect(baseline).toEqual(Array.from({ length: baseline.length }, (_, index) => `bbb-${index + 1}`).sort());
    for (const server of servers) expect(server.labels.get("confscale:env")).toBe(ENV);
  }, 120_000);

  it("makes each server a lab machine at the address the cloud reports, booted from its rendered user data", async () => {
    await labCloud.settled();
    expect(labCloud.errors.map((error) => `${error.message} ${String((error as { cause?: unknown }).cause ?? "")}`)).toEqual([]);
    // The scaler may already have stopped a launch it no longer needs: a stopped server's machine runs nothing.
    const stopped = baseline.filter((name) => labCloud.byName(name)?.server.vmState !== "RUNNING");
    for (const name of stopped) expect(await labCloud.byName(name)!.machine.processes(), name).toEqual([]);
    baseline = baseline.filter((name) => !stopped.includes(name));
    expect(baseline.length).toBeGreaterThanOrEqual(config.workers!.min);
    for (const name of baseline) {
      const entry = labCloud.byName(name);
      expect(entry, name).toBeDefined();
      expect(entry!.machine.address).toBe(emulator.serverView(entry!.server).ips[0]);
      await entry!.boot!.services.waitUntilListening("prometheus-node-exporter", 9100);
      // Its own user data: the host name and the certificate are this server's.
      expect((await entry!.machine.exec("hostname")).stdout.trim()).toBe(`${name}.${config.domain}`);
      const subject = await entry!.machine.exec("openssl", [
        "x509",
        "-noout",
        "-subject",
        "-in",
        "/etc/prometheus/node-exporter-tls/fullchain.pem",
      ]);
      expect(subject.stdout).toContain(`${name}.${config.domain}`);
      const hosts = await control.readFile("/etc/hosts");
      expect(hosts, hosts).toContain(`${entry!.machine.address} ${name}.${config.domain}\n`);
    }
  });

  it("scrapes each worker's real node-exporter with the real Prometheus, found through the scaler's http_sd, over TLS with basic auth", async () => {
    const workers = await waitFor(
      "Prometheus to scrape every worker",
      async () => {
        const { body } = await curl("http://prometheus:9090/api/v1/targets?state=active");
        const nodes = Targets.parse(JSON.parse(body)).data.activeTargets.filter((entry) => entry.labels.job === "node-exporter");
        const down = nodes.find((entry) => entry.health === "down");
        if (down !== undefined) throw new Error(`scrape of ${down.labels.instance} failed: ${down.lastError}`);
        return nodes.length === baseline.length && nodes.every((entry) => entry.health === "up") ? nodes : undefined;
      },
      90_000,
    );
    expect(workers.map((entry) => entry.scrapeUrl).sort()).toEqual(baseline.map((name) => `https://${name}.${config.domain}:9100/metrics`));
  }, 100_000);

  it("hears each worker's sidecar check in with its own key", async () => {
    const instances = await waitFor(
      "every worker's sidecar to check in",
      async () => {
        const report = z
          .object({ instances: z.array(z.object({ instanceId: z.string() })) })
          .safeParse(await environment.api("/groups/bbb/report"));
        const ids = report.success ? report.data.instances.map((instance) => instance.instanceId).sort() : [];
        // A launch the scaler stopped may have checked in before: it stays listed until its TTL ends.
        return baseline.every((name) => ids.includes(name)) ? ids : undefined;
      },
      60_000,
    ).catch((error: unknown) => {
      const logs = baseline.map((name) => {
        const services = labCloud.byName(name)?.boot?.services;
        const sidecar = services?.get("confscale-sidecar");
        return `${name}: ${services?.failed.get("confscale-sidecar.service") ?? `${sidecar?.stdout.slice(-1500)}${sidecar?.stderr.slice(-500)}`}`;
      });
      throw new Error(`${String(error)}\n${logs.join("\n")}`);
    });
    expect(instances).toEqual(expect.arrayContaining(baseline));
  }, 70_000);

  it("notices a crashed worker: no scrape, offline in Scalelite and given no new meeting, never scaled in as idle", async () => {
    const Status = z.object({
      lastPeriod: z
        .object({ at: z.string(), decisions: z.array(z.object({ kind: z.string(), server: z.string().nullable() })) })
        .nullable(),
    });
    const registered = () => [...emulator.scalelite.servers.values()].filter((entry) => entry.state === "enabled" && entry.online);
    // Registered through the worker's own BBB API, at its host name over TLS.
    await waitFor(
      "every worker enabled and online in Scalelite",
      async () => (registered().length === baseline.length ? true : undefined),
      60_000,
    );
    const victim = labCloud.byName(baseline[0] ?? "")!;
    const crashedAt = Date.now();
    emulator.crashServer(victim.server.id);
    await labCloud.settled();
    expect(await victim.machine.processes()).toEqual([]);

    await waitFor(
      "Prometheus to fail scraping the crashed worker",
      async () => {
        const { body } = await curl("http://prometheus:9090/api/v1/targets?state=active");
        const target = Targets.parse(JSON.parse(body)).data.activeTargets.find((entry) =>
          entry.scrapeUrl.includes(`//${victim.hostname}:`),
        );
        return target?.health === "down" ? true : undefined;
      },
      60_000,
    );
    await waitFor("Scalelite to mark it offline", async () =>
      registered().some((entry) => entry.url.includes(victim.hostname)) ? undefined : true,
    );
    // New meetings go to the other servers, or find none when it was the only one; never to the crashed one.
    for (let count = 0; count < 6; count++) {
      try {
        const { server } = emulator.scalelite.placeMeeting({ participants: 3, videos: 0, durationMs: 60_000 });
        expect(server.url).not.toContain(victim.hostname);
      } catch (error) {
        if (!(error instanceof NoServerAvailableError)) throw error;
      }
    }
    // The next period reads no metrics and no check-in from it: silence is not idleness.
    const period = await waitFor(
      "a fleet period after the crash",
      async () => {
        const { lastPeriod } = Status.parse(JSON.parse((await curl("http://scaler:8080/fleets/bbb")).body));
        return lastPeriod !== null && Date.parse(lastPeriod.at) > crashedAt ? lastPeriod : undefined;
      },
      100_000,
    );
    const scaleIn = period.decisions.filter((decision) => ["drain", "stop", "destroy"].includes(decision.kind));
    expect(scaleIn.filter((decision) => decision.server === victim.server.name)).toEqual([]);
    expect(emulator.cloud.servers.has(victim.server.id)).toBe(true);
  }, 200_000);

  it("fails to start the scaler when the compose file renames one of its variables (a deliberately broken variant)", async () => {
    const broken = await lab.machine("control-broken", { address: "198.18.0.3" });
    const renamed = userData.replace("SCALER_REDIS_URL:", "SCALER_REDIS_ADDRESS:");
    expect(renamed).not.toBe(userData);
    const boot = ControlNode.boot(broken, {
      userData: renamed,
      delivery,
      scalelitePort: Number(new URL(emulator.url).port),
      only: ["scaler"],
    });
    await expect(boot).rejects.toThrow(LabError);
    await expect(boot).rejects.toThrow(/compose service scaler exited[\s\S]*redis\.url: required/);
  }, 60_000);
});
