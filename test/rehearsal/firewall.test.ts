import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { workerFirewallRules } from "../../infra/firewall.js";
import { applyCloudFirewall } from "./firewall.js";
import { Lab, type Machine } from "./lab.js";
import { probe, startListener } from "./probes.js";

const ADMIN_CIDR = "198.18.200.0/24";

describe("the worker's cloud firewall, enforced in the rehearsal lab", () => {
  let lab: Lab;
  let control: Machine;
  let worker: Machine;
  let admin: Machine;
  let stranger: Machine;

  beforeAll(async () => {
    const usable = await Lab.available();
    if (!usable.ok) throw new Error(usable.reason);
    lab = await Lab.start();
    control = await lab.machine("control", { address: "198.18.0.2" });
    worker = await lab.machine("worker-1");
    admin = await lab.machine("admin", { address: "198.18.200.9" });
    stranger = await lab.machine("stranger");
    // Stand-ins for node-exporter, sshd and the BBB front; what matters here is who may connect.
    for (const port of [9100, 22, 443]) await startListener(worker, port);
  });

  afterAll(async () => {
    await lab?.stop();
  });

  it("refuses node-exporter's port to everyone but the control node, which the open lab let in before", async () => {
    expect(await probe(stranger, worker.address, 9100)).toMatchObject({ kind: "answered" });

    await applyCloudFirewall(worker, workerFirewallRules([ADMIN_CIDR], control.address));

    expect(await probe(stranger, worker.address, 9100)).toEqual({ kind: "refused" });
    expect(await probe(admin, worker.address, 9100)).toEqual({ kind: "refused" });
    expect(await probe(lab, worker.address, 9100)).toEqual({ kind: "refused" });
    expect(await probe(control, worker.address, 9100)).toEqual({ kind: "answered", from: "worker-1", caller: control.address });
  });

  it("lets SSH in only from an admin address, and HTTPS from anywhere", async () => {
    await applyCloudFirewall(worker, workerFirewallRules([ADMIN_CIDR], control.address));

    expect(await probe(admin, worker.address, 22)).toEqual({ kind: "answered", from: "worker-1", caller: admin.address });
    expect(await probe(stranger, worker.address, 22)).toEqual({ kind: "refused" });
    expect(await probe(control, worker.address, 22)).toEqual({ kind: "refused" });
    expect(await probe(stranger, worker.address, 443)).toMatchObject({ kind: "answered" });
    // Stateful like a cloud firewall: the worker's own outgoing connections get their replies.
    await startListener(stranger, 8080);
    expect(await probe(worker, stranger.address, 8080)).toMatchObject({ kind: "answered" });
  });

  it("opens SSH to no one when the stack has no admin CIDRs", async () => {
    await applyCloudFirewall(worker, workerFirewallRules([], control.address));

    expect(await probe(admin, worker.address, 22)).toEqual({ kind: "refused" });
    expect(await probe(control, worker.address, 9100)).toMatchObject({ kind: "answered" });
  });
});
