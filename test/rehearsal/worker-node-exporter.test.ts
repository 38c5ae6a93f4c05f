import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { workerFirewallRules } from "../../infra/firewall.js";
import { NODE_EXPORTER_RELEASE, nodeExporterPasswordHash, renderWorkerUserData } from "../../infra/templates.js";
import { bootFromUserData, CloudInitError, type BootRecord } from "./cloud-init.js";
import { applyCloudFirewall } from "./firewall.js";
import { Lab, type Machine } from "./lab.js";
import { workerCredentials } from "../../infra/workerCredentials.js";
import { serverLoad } from "../emulator/load-model.js";
import { MachineProc, type CpuSeconds } from "./machine-proc.js";

/** The sidecar key a worker's user data carries, as the fleet program derives it. */
function workerSidecarKey(fleet: string, server: string) {
  const { keyId, signingKeyPem } = workerCredentials("sidecar-test-master-secret-0123456789abcdef", fleet, server);
  return { sidecarKeyId: keyId, sidecarSigningKey: signingKeyPem };
}

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
      controlNodeIp: control.address,
      nodeExporterPasswordHash: nodeExporterPasswordHash(password),
      bbbSecret: randomBytes(24).toString("hex"),
      ...workerSidecarKey("bbb", name),
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

  it("runs the node_exporter its install script put in place, with the flags of its unit and the rendered environment file", async () => {
    const exporter = boot.services.get("prometheus-node-exporter");
    expect(exporter?.command).toBe(
      "/usr/local/bin/node_exporter --web.listen-address=:9100 --web.config.file=/etc/prometheus/node-exporter-web.yml",
    );
    expect(boot.commands).toContainEqual({ command: "bash /usr/local/sbin/confscale-install-node-exporter", outcome: "ran" });
    const installed = await worker.exec("/usr/local/bin/node_exporter", ["--version"]);
    expect(installed.stdout + installed.stderr).toMatch(/^node_exporter, version /m);
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

  it("reports the CPU and memory of the load on its own /proc (the load model's, not the host's), with the unit's flags unchanged", async () => {
    const sample = (body: string, name: string) =>
      body
        .split("\n")
        .filter((line) => line.startsWith(name))
        .map((line) => ({ labels: line.slice(name.length, line.lastIndexOf(" ")), value: Number(line.slice(line.lastIndexOf(" ") + 1)) }));
    const cpus: CpuSeconds[] = Array.from({ length: 4 }, () => ({ user: 100, system: 20, softirq: 5, idle: 1000 }));
    let load = serverLoad(4, 8192, [{ participants: 150, videos: 10 }]);
    const proc = await MachineProc.attach(worker, () => ({ cpus, load, bootedAt: Date.parse("2026-12-03T07:00:00Z") }));
    const first = (await scrape(`https://${HOSTNAME}:9100/metrics`, `prometheus:${password}`)).body;
    const cpuSeconds = sample(first, "node_cpu_seconds_total{");
    expect(new Set(cpuSeconds.map((entry) => /cpu="(\d+)"/.exec(entry.labels)?.[1])).size).toBe(4);
    expect(cpuSeconds.find((entry) => entry.labels.includes('cpu="3"') && entry.labels.includes('mode="idle"'))?.value).toBe(1000);
    expect(sample(first, "node_memory_MemTotal_bytes")[0]?.value).toBe(8192 * 2 ** 20);
    const available = sample(first, "node_memory_MemAvailable_bytes")[0]?.value ?? 0;
    expect(Math.abs(available - (load.memoryTotalBytes - load.memoryUsedBytes))).toBeLessThan(1024);
    // More meetings, and time passes: the counters grow and memory fills, read through the same mount.
    for (const cpu of cpus) cpu.user += 30;
    load = serverLoad(4, 8192, [{ participants: 300, videos: 20 }]);
    await proc.write();
    const second = (await scrape(`https://${HOSTNAME}:9100/metrics`, `prometheus:${password}`)).body;
    expect(sample(second, 'node_cpu_seconds_total{cpu="0",mode="user"}')[0]?.value).toBe(130);
    expect(sample(second, "node_memory_MemAvailable_bytes")[0]?.value).toBeLessThan(available);
    expect(sample(second, "node_boot_time_seconds")[0]?.value).toBe(Date.parse("2026-12-03T07:00:00Z") / 1000);
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

  it("does not install node-exporter when the install script expects another checksum than the pinned one", async () => {
    const tampered = await lab.machine("worker-3", { hostnames: [`worker-3.${DOMAIN}`] });
    const userData = workerUserData("worker-3");
    const wrong = Object.values(NODE_EXPORTER_RELEASE.sha256).reduce((text, sha256) => text.replaceAll(sha256, "0".repeat(64)), userData);
    expect(wrong).not.toBe(userData);
    const failure = bootFromUserData(lab, tampered, wrong);
    await expect(failure).rejects.toThrow(CloudInitError);
    await expect(failure).rejects.toThrow(/runcmd bash \/usr\/local\/sbin\/confscale-install-node-exporter failed/);
    await expect(tampered.exec("test", ["-e", "/usr/local/bin/node_exporter"])).rejects.toThrow();
  });
});
