import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { workerFirewallRules } from "../../infra/firewall.js";
import { nodeExporterPasswordHash, renderWorkerUserData } from "../../infra/templates.js";
import { bootFromUserData, type BootRecord } from "./cloud-init.js";
import { applyCloudFirewall } from "./firewall.js";
import { Lab, type Machine } from "./lab.js";

const DOMAIN = "bbb.rehearsal.example";
const HOSTNAME = `worker-1.${DOMAIN}`;

describe("a worker booted from its rendered cloud-init serves node-exporter over TLS with basic auth", () => {
  let lab: Lab;
  let control: Machine;
  let worker: Machine;
  let boot: BootRecord;
  const password = randomBytes(18).toString("base64url");

  /** curl from the control node; the password reaches curl in its config on stdin, never in its arguments. */
  async function scrape(url: string, user?: string): Promise<{ status: string; body: string }> {
    const config = user === undefined ? "" : `user = "${user}"\n`;
    const { stdout } = await control.exec("curl", ["-sS", "-K", "-", "-w", "\n%{http_code}", url], { input: config });
    const at = stdout.lastIndexOf("\n");
    return { status: stdout.slice(at + 1), body: stdout.slice(0, at) };
  }

  function workerUserData(name: string): string {
    return renderWorkerUserData({
      env: "rehearsal",
      fleet: "bbb",
      name,
      domain: DOMAIN,
      scalerUrl: `https://${DOMAIN}/scaler`,
      nodeExporterPasswordHash: nodeExporterPasswordHash(password),
      bbbSecret: randomBytes(24).toString("hex"),
    });
  }

  beforeAll(async () => {
    const usable = await Lab.available();
    if (!usable.ok) throw new Error(usable.reason);
    lab = await Lab.start();
    control = await lab.machine("control", { address: "198.18.0.2", hostnames: [DOMAIN] });
    worker = await lab.machine("worker-1", { hostnames: [HOSTNAME] });
    await applyCloudFirewall(worker, workerFirewallRules([], control.address));
    boot = await bootFromUserData(lab, worker, workerUserData("worker-1"));
    await boot.services.waitUntilListening("prometheus-node-exporter", 9100);
  });

  afterAll(async () => {
    await lab?.stop();
  });

  it("runs the real prometheus-node-exporter with the flags of its unit and the rendered environment file", async () => {
    const exporter = boot.services.get("prometheus-node-exporter");
    expect(exporter?.command).toBe("/usr/bin/prometheus-node-exporter --web.config.file=/etc/prometheus/node-exporter-web.yml");
    // The rendered deploy hook installed the certificate and asked systemd to restart the exporter.
    expect(await worker.readFile("/etc/prometheus/node-exporter-tls/fullchain.pem")).toContain("BEGIN CERTIFICATE");
    expect(boot.commands).toContainEqual({ command: "bash /etc/letsencrypt/renewal-hooks/deploy/node-exporter-tls.sh", outcome: "ran" });
    expect(
      boot.commands
        .filter((entry) => entry.outcome === "emulated")
        .map((entry) => entry.command)
        .join("\n"),
    ).toMatch(/bbb-install/);
    expect((await worker.exec("hostname")).stdout.trim()).toBe(HOSTNAME);
  });

  it("answers the control node over TLS, verified for the worker's host name, with the password", async () => {
    const { status, body } = await scrape(`https://${HOSTNAME}:9100/metrics`, `prometheus:${password}`);
    expect(status).toBe("200");
    expect(body).toMatch(/^node_exporter_build_info\{/m);
  });

  it("answers 401 without the password or with a wrong one, and does not speak plain HTTP", async () => {
    expect((await scrape(`https://${HOSTNAME}:9100/metrics`)).status).toBe("401");
    expect((await scrape(`https://${HOSTNAME}:9100/metrics`, "prometheus:not-the-password")).status).toBe("401");
    expect((await scrape(`http://${HOSTNAME}:9100/metrics`, `prometheus:${password}`)).status).toBe("400");
  });

  it("fails when the rendered flags and the program disagree (a deliberately broken variant)", async () => {
    const broken = await lab.machine("worker-2", { hostnames: [`worker-2.${DOMAIN}`] });
    const userData = workerUserData("worker-2");
    const renamed = userData.replace("--web.config.file=", "--web.config=");
    expect(renamed).not.toBe(userData);
    const brokenBoot = await bootFromUserData(lab, broken, renamed);
    await expect(brokenBoot.services.waitUntilListening("prometheus-node-exporter", 9100)).rejects.toThrow(
      /unknown long flag '--web.config'/,
    );
  });
});
