import { createServer, type Server } from "node:http";
import { connect } from "node:net";
import { access } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab, LAB_NETWORK, type Machine } from "./lab.js";
import { probe, startListener } from "./probes.js";

async function requireLab(): Promise<Lab> {
  const usable = await Lab.available();
  // No skipping: a host without namespaces fails here with the reason and the remedy.
  if (!usable.ok) throw new Error(usable.reason);
  return Lab.start();
}

describe("the rehearsal lab", () => {
  let lab: Lab;
  let alpha: Machine;
  let beta: Machine;
  let outside: Server;
  const callers: string[] = [];

  beforeAll(async () => {
    lab = await requireLab();
    alpha = await lab.machine("alpha", { hostnames: ["alpha.lab.example"] });
    beta = await lab.machine("beta", { address: "198.18.3.7" });
    outside = createServer((request, response) => {
      callers.push(request.headers["x-from"] as string);
      response.end("cloud api\n");
    });
    await new Promise<void>((resolve) => outside.listen(0, "127.0.0.1", resolve));
  });

  afterAll(async () => {
    await lab?.stop();
    await new Promise((resolve) => outside?.close(resolve));
  });

  it("gives every machine its own address, host name and hosts file, and machines reach each other by name", async () => {
    expect(alpha.address).toMatch(/^198\.1[89]\./);
    expect(beta.address).toBe("198.18.3.7");
    expect((await alpha.exec("hostname")).stdout.trim()).toBe("alpha");
    const listener = await startListener(alpha, 7000);
    const byName = await probe(beta, "alpha.lab.example", 7000);
    expect(byName).toEqual({ kind: "answered", from: "alpha", caller: "198.18.3.7" });
    // The port listens in alpha's network only: beta has nothing there.
    expect(await probe(alpha, beta.address, 7000)).toEqual({ kind: "refused" });
    await listener.kill();
  });

  it("keeps the test process outside: a machine reaches an exposed server at the gateway, the test reaches a machine by a forward", async () => {
    const address = outside.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    const exposed = await lab.expose({ port: address.port });
    expect(exposed.host).toBe(LAB_NETWORK.gateway);
    const { stdout } = await beta.exec("curl", ["-sS", "-H", "x-from: beta", exposed.url]);
    expect(stdout).toBe("cloud api\n");
    expect(callers).toContain("beta");

    const listener = await startListener(beta, 7001);
    const forward = await lab.forward(beta.address, 7001);
    const answer = await new Promise<string>((resolve, reject) => {
      let data = "";
      const socket = connect(forward.port, "127.0.0.1");
      socket.on("data", (chunk) => (data += chunk.toString()));
      socket.on("end", () => resolve(data));
      socket.on("error", reject);
    });
    // The machine sees the caller as the lab's gateway, like traffic from the internet.
    expect(answer.trim()).toBe(`beta ${LAB_NETWORK.gateway}`);
    await listener.kill();
  });

  it("lets a server of the test process answer inside a machine, over TLS for the machine's host name", async () => {
    const address = outside.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    const certificate = await lab.issueCertificate({ dns: ["alpha.lab.example"] });
    await alpha.writeFile("/etc/ssl/alpha/cert.pem", certificate.certificatePem);
    await alpha.writeFile("/etc/ssl/alpha/key.pem", certificate.privateKeyPem, 0o600);
    const relay = await alpha.serveFromOutside(
      { port: address.port },
      { port: 443, tls: { certificatePath: "/etc/ssl/alpha/cert.pem", keyPath: "/etc/ssl/alpha/key.pem" } },
    );
    // beta verifies the certificate with its own trust store, which holds the lab CA.
    const { stdout } = await beta.exec("curl", ["-sS", "-H", "x-from: beta via alpha", "https://alpha.lab.example/"]);
    expect(stdout).toBe("cloud api\n");
    expect(callers).toContain("beta via alpha");
    await relay.kill();
  });

  it("stop ends a machine's processes and keeps its address; crash removes its namespaces", async () => {
    const gamma = await lab.machine("gamma");
    await startListener(gamma, 7002);
    expect((await gamma.processes()).length).toBeGreaterThan(0);
    await gamma.stop();
    expect(await gamma.processes()).toEqual([]);
    // Stopped, not gone: its address still answers, with a refusal.
    expect(await probe(alpha, gamma.address, 7002)).toEqual({ kind: "refused" });

    await gamma.crash();
    await expect(access(`/proc/${gamma.pid}`)).rejects.toThrow();
    expect(() => gamma.run("true")).toThrow(/gamma is gone/);
  });

  it("stop leaves nothing of the lab running and removes its files", async () => {
    const other = await requireLab();
    const machine = await other.machine("delta");
    await startListener(machine, 7003);
    const pids = [other.pid, machine.pid, ...(await machine.processes())];
    await other.stop();
    for (const pid of pids) await expect(access(`/proc/${pid}`)).rejects.toThrow();
    await expect(access(other.dir)).rejects.toThrow();
  });
});
