import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";
import { workerFirewallRules } from "../../infra/firewall.js";
import { CONTROL_NODE_FLEET, controlNodeProjectFiles, nodeExporterPasswordHash, renderWorkerUserData } from "../../infra/templates.js";
import { fleetSettingsSchema } from "../../scaler/settings.js";
import { bootFromUserData } from "./cloud-init.js";
import { applyCloudFirewall } from "./firewall.js";
import { Lab, waitFor, type LabProcess, type Machine } from "./lab.js";

const DOMAIN = "bbb.rehearsal.example";

const Compose = z.object({
  services: z.object({
    prometheus: z.object({ command: z.array(z.string()), volumes: z.array(z.string()) }),
  }),
});

const Targets = z.object({
  data: z.object({
    activeTargets: z.array(
      z.object({ labels: z.record(z.string(), z.string()), health: z.string(), lastError: z.string(), scrapeUrl: z.string() }),
    ),
  }),
});

/**
 * The real Prometheus on the control node, started with the compose service's command and the rendered prometheus.yml
 * at the path its volume gives it, scrapes a worker's real node-exporter over TLS with the password file. The scaler's
 * http_sd is stood in for by a server of the test process at `scaler:8080`, listing the worker as the scaler's
 * settings say (scrapeAddressTemplate).
 */
describe("the control node's Prometheus scrapes a worker's node-exporter in the rehearsal lab", () => {
  let lab: Lab;
  let control: Machine;
  let worker: Machine;
  let prometheus: LabProcess;
  let discovery: Server;
  const password = randomBytes(18).toString("base64url");

  beforeAll(async () => {
    const usable = await Lab.available();
    if (!usable.ok) throw new Error(usable.reason);
    lab = await Lab.start();
    control = await lab.machine("control", { address: "198.18.0.2", hostnames: [DOMAIN] });
    worker = await lab.machine("worker-1", { hostnames: [`worker-1.${DOMAIN}`] });
    await applyCloudFirewall(worker, workerFirewallRules([], control.address));
    const boot = await bootFromUserData(
      lab,
      worker,
      renderWorkerUserData({
        env: "rehearsal",
        fleet: CONTROL_NODE_FLEET,
        name: "worker-1",
        domain: DOMAIN,
        scalerUrl: `https://${DOMAIN}/scaler`,
        nodeExporterPasswordHash: nodeExporterPasswordHash(password),
        bbbSecret: randomBytes(24).toString("hex"),
      }),
    );
    await boot.services.waitUntilListening("prometheus-node-exporter", 9100);

    const scrapeAddress = fleetSettingsSchema.shape.scrapeAddressTemplate.parse(undefined);
    const target = scrapeAddress.replace("{name}", "worker-1").replace("{domain}", DOMAIN);
    discovery = createServer((request, response) => {
      if (request.url !== `/fleets/${CONTROL_NODE_FLEET}/targets`) return void response.writeHead(404).end();
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify([{ targets: [target], labels: { instance: `${worker.address}:9100`, server: "worker-1" } }]));
    });
    await new Promise<void>((resolve) => discovery.listen(0, "127.0.0.1", resolve));
    const discoveryAddress = discovery.address();
    if (discoveryAddress === null || typeof discoveryAddress === "string") throw new Error("no port");
    // On the control node, compose service names resolve on its own network; here every service shares its namespace.
    await control.addHosts({ scaler: "127.0.0.1", prometheus: "127.0.0.1" });
    await control.serveFromOutside({ port: discoveryAddress.port }, { host: "127.0.0.1", port: 8080 });

    const files = controlNodeProjectFiles({ env: "rehearsal", domain: DOMAIN, fleetStack: "rehearsal-fleet" });
    const compose = Compose.parse(parse(files["docker-compose.yml"] ?? ""));
    // Each `./file:/path` volume of the service puts a project file at its path in the machine.
    const mounts = compose.services.prometheus.volumes.map((volume) => volume.split(":")).filter(([source]) => source?.startsWith("./"));
    for (const [source = "", path = ""] of mounts) {
      const name = source.slice(2);
      const content = name === "secrets/node-exporter-password" ? password : files[name];
      if (content === undefined) throw new Error(`no rendered file for the prometheus volume ${source}`);
      await control.writeFile(path, content, name.startsWith("secrets/") ? 0o600 : 0o644);
    }
    await control.mkdir("/var/lib/prometheus");
    // The image's working directory is its data volume; its entrypoint is the prometheus binary.
    prometheus = control.run("prometheus", compose.services.prometheus.command, { cwd: "/var/lib/prometheus" });
    await control.waitForPort(9090, 60_000);
  });

  afterAll(async () => {
    await lab?.stop();
    await new Promise((resolve) => discovery?.close(resolve));
  });

  it("finds the worker through http_sd and scrapes it over verified TLS with basic auth", async () => {
    const up = await waitFor(
      "Prometheus to scrape worker-1",
      async () => {
        const { stdout } = await control.exec("curl", ["-sS", "http://prometheus:9090/api/v1/targets?state=active"]);
        const node = Targets.parse(JSON.parse(stdout)).data.activeTargets.find((target) => target.labels.job === "node-exporter");
        if (node?.health === "down") throw new Error(`scrape of ${node.scrapeUrl} failed: ${node.lastError}`);
        return node?.health === "up" ? node : undefined;
      },
      60_000,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\nprometheus: ${prometheus.stderr.slice(-2000)}`);
    });
    expect(up.scrapeUrl).toBe(`https://worker-1.${DOMAIN}:9100/metrics`);
    expect(up.labels).toMatchObject({ instance: `${worker.address}:9100`, server: "worker-1" });
  });
});
