/**
 * The emulated cloud's servers as lab machines. The cloud API emulator stays outside the lab (a real cloud's API is
 * on the internet); what it creates becomes a machine: a server's public IP is a lab address the emulator reports,
 * powering it on boots the machine from the user data on its boot volume (cloud-init.ts) behind the firewall rules on
 * its NIC (firewall.ts), powering it off stops its processes, a crash kills them at once, deleting it removes it.
 *
 * BigBlueButton stays emulated: the emulator's BBB API of that server answers on the machine itself, at
 * https://<name>.<domain>/bigbluebutton/api with the certificate bbb-install would get, and at 127.0.0.1:8090 where
 * bbb-web listens for the local sidecar. Scalelite finds the server behind a registered URL by its host name.
 * The same meetings drive the machine's /proc/stat and /proc/meminfo (machine-proc.ts), which its real node-exporter
 * reads: CPU and memory follow the load driver as BBB's API does.
 *
 * The environment stack's control node is no worker: it becomes a machine behind its NIC's rules that also answers as
 * the environment's domain, and its user data goes to `control.boot`. It is known by name, as its ownership labels are
 * written only after the cloud has powered it on (infra/clouds/ionos/operations.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { parse } from "yaml";
import { z } from "zod";
import type { FirewallRule } from "../../infra/clouds/types.js";
import type { EmulatedServer } from "../emulator/cloud.js";
import type { Emulator } from "../emulator/emulator.js";
import { bootFromUserData, type BootRecord } from "./cloud-init.js";
import { applyCloudFirewall } from "./firewall.js";
import type { Lab, LabProcess, Machine } from "./lab.js";
import { MachineProc } from "./machine-proc.js";

/** A firewall rule as the IONOS API holds it on a NIC (infra/clouds/ionos/operations.ts writes them). */
const ApiRule = z.object({
  name: z.string().optional(),
  protocol: z.string(),
  sourceIp: z.string().optional(),
  ipVersion: z.enum(["IPv4", "IPv6"]).default("IPv4"),
  portRangeStart: z.number().int(),
  portRangeEnd: z.number().int(),
});

function firewallRuleOf(properties: Record<string, unknown>): FirewallRule {
  const rule = ApiRule.parse(properties);
  const anywhere = rule.ipVersion === "IPv6" ? "::/0" : "0.0.0.0/0";
  const source = rule.sourceIp === undefined ? anywhere : rule.sourceIp.includes("/") ? rule.sourceIp : `${rule.sourceIp}/32`;
  return {
    description: rule.name ?? "",
    protocol: rule.protocol.toLowerCase() as FirewallRule["protocol"],
    fromPort: rule.portRangeStart,
    toPort: rule.portRangeEnd,
    sourceCidrs: [source],
  };
}

/** Where bbb-web listens on a BigBlueButton server; the worker's sidecar.env points at it. */
const BBB_WEB = { host: "127.0.0.1", port: 8090 };

/** One server of the emulated cloud as a lab machine. */
export interface LabServer {
  server: EmulatedServer;
  machine: Machine;
  hostname: string;
  boot?: BootRecord;
  /** Processes of the machine that stand in for BigBlueButton (its API); they end with the machine. */
  bbb: LabProcess[];
  /** Its /proc/stat and /proc/meminfo from the load model. */
  proc?: MachineProc;
}

/** Where the control node's machine goes once the cloud has powered it on (local-environment.ts boots it). */
export interface ControlServerBoot {
  /** The control node's server name (infra/controlNode.ts: `<env>-control`). */
  serverName: string;
  /** Its machine's name in the lab. */
  machineName: string;
  /** The names the control node answers to besides `<name>.<domain>` (the environment's domain). */
  hostnames: string[];
  boot(machine: Machine, userData: string): Promise<void>;
}

/** How often the machines' /proc files are rewritten: a fraction of Prometheus's scrape interval (files/control-node/prometheus.yml). */
const PROC_REFRESH_MS = 1_000;

export class LabCloud {
  readonly servers = new Map<string, LabServer>();
  /** What went wrong carrying out a change of the cloud (a boot that failed, …): tests assert it stays empty. */
  readonly errors: Error[] = [];
  private readonly queue = new Map<string, Promise<void>>();
  private readonly bbbProxies = new Map<string, Server>();
  private procTimer: NodeJS.Timeout | undefined;
  private procWrites: Promise<void> = Promise.resolve();

  private constructor(
    private readonly lab: Lab,
    private readonly emulator: Emulator,
    private readonly domain: string,
    private readonly control: ControlServerBoot | undefined,
  ) {}

  /** From now on, servers the emulator creates are lab machines with lab addresses. */
  static attach(lab: Lab, emulator: Emulator, options: { domain: string; control?: ControlServerBoot }): LabCloud {
    const cloud = new LabCloud(lab, emulator, options.domain, options.control);
    cloud.procTimer = setInterval(() => cloud.refreshProc(), PROC_REFRESH_MS);
    emulator.cloud.machines = { publicAddress: () => lab.reserveAddress(), changed: (server) => cloud.changed(server) };
    emulator.scalelite.serverOfUrl = (url) => {
      const host = URL.canParse(url) ? new URL(url).hostname : "";
      return [...cloud.servers.values()].find((entry) => entry.hostname === host)?.server;
    };
    return cloud;
  }

  /** Every change of the cloud so far carried out in the lab. */
  async settled(): Promise<void> {
    while ([...this.queue.values()].length > 0) await Promise.all([...this.queue.values()]);
  }

  byName(name: string): LabServer | undefined {
    return [...this.servers.values()].find((entry) => entry.server.name === name);
  }

  async close(): Promise<void> {
    clearInterval(this.procTimer);
    await this.procWrites;
    this.emulator.cloud.machines = undefined;
    await this.settled();
    await Promise.all([...this.bbbProxies.values()].map((server) => new Promise((resolve) => server.close(resolve))));
  }

  /** Rewrites every running machine's /proc files with the load of now; one round at a time. */
  private refreshProc(): void {
    this.procWrites = this.procWrites.then(async () => {
      for (const entry of [...this.servers.values()]) {
        if (entry.server.vmState !== "RUNNING") continue;
        // A machine removed meanwhile has no files left to write.
        await entry.proc?.write().catch((error: unknown) => {
          if (entry.machine.alive && this.servers.get(entry.server.id) === entry) this.errors.push(error as Error);
        });
      }
    });
  }

  private changed(server: EmulatedServer): void {
    // One change at a time per server, in the order the cloud made them.
    const previous = this.queue.get(server.id) ?? Promise.resolve();
    const next = previous
      .then(() => this.reconcile(server))
      .catch((error: unknown) => void this.errors.push(error instanceof Error ? error : new Error(String(error))))
      .finally(() => {
        if (this.queue.get(server.id) === next) this.queue.delete(server.id);
      });
    this.queue.set(server.id, next);
  }

  private async reconcile(server: EmulatedServer): Promise<void> {
    const entry = this.servers.get(server.id);
    if (!this.emulator.cloud.servers.has(server.id)) {
      this.servers.delete(server.id);
      await entry?.machine.destroy();
      return;
    }
    const nic = [...server.nics.values()][0];
    const address = nic?.properties.ips[0];
    if (server.vmState === "RUNNING" && address !== undefined) {
      if (entry === undefined)
        await this.create(
          server,
          address,
          [...nic!.firewallRules.values()].map((rule) => rule.properties),
        );
      else if (!entry.machine.alive || (await entry.machine.processes()).length === 0) await this.powerOn(entry);
      return;
    }
    if (entry === undefined || !entry.machine.alive) return;
    if (server.vmState === "CRASHED") await entry.machine.kill();
    else await entry.machine.stop();
  }

  private async create(server: EmulatedServer, address: string, rules: Record<string, unknown>[]): Promise<void> {
    const hostname = `${server.name}.${this.domain}`;
    const control = server.name === this.control?.serverName ? this.control : undefined;
    const machine = await this.lab.machine(control?.machineName ?? server.name, {
      address,
      hostnames: [hostname, ...(control?.hostnames ?? [])],
    });
    const entry: LabServer = { server, machine, hostname, bbb: [] };
    this.servers.set(server.id, entry);
    await applyCloudFirewall(machine, rules.map(firewallRuleOf));
    if (control !== undefined) return control.boot(machine, this.userDataOf(server));
    const cloud = this.emulator.cloud;
    entry.proc = await MachineProc.attach(machine, () => {
      cloud.accrue(server);
      return { cpus: server.cpu, load: cloud.load(server), bootedAt: server.poweredOnAt ?? cloud.clock.now() };
    });
    entry.bbb.push(await machine.serveFromOutside({ port: await this.bbbProxy(server) }, BBB_WEB));
    const userData = this.userDataOf(server);
    entry.boot = await bootFromUserData(this.lab, machine, userData);
    entry.bbb.push(await this.bbbTls(entry));
  }

  /** Power back on: what systemd starts at boot (the units cloud-init enabled) and BigBlueButton's API. */
  private async powerOn(entry: LabServer): Promise<void> {
    if (entry.server.name === this.control?.serverName) return;
    entry.bbb = [await entry.machine.serveFromOutside({ port: await this.bbbProxy(entry.server) }, BBB_WEB), await this.bbbTls(entry)];
    for (const unit of ["prometheus-node-exporter", "confscale-sidecar"]) await entry.boot?.services.restart(unit);
  }

  /** BBB's nginx: TLS with the certificate bbb-install obtained for the host name, in front of bbb-web. */
  private bbbTls(entry: LabServer): Promise<LabProcess> {
    const live = `/etc/letsencrypt/live/${entry.hostname}`;
    return this.bbbProxy(entry.server).then((port) =>
      entry.machine.serveFromOutside(
        { port },
        { port: 443, tls: { certificatePath: `${live}/fullchain.pem`, keyPath: `${live}/privkey.pem` } },
      ),
    );
  }

  private userDataOf(server: EmulatedServer): string {
    const volume = this.emulator.cloud.datacenters.get(server.datacenterId)?.volumes.get(server.volumeIds[0] ?? "");
    const encoded = volume?.properties.userData;
    if (typeof encoded !== "string") throw new Error(`server ${server.name} has no user data on its boot volume`);
    const userData = Buffer.from(encoded, "base64").toString("utf8");
    parse(userData);
    return userData;
  }

  /** A listener of the test process that answers as this server's BBB API (the emulator's, under /servers/<id>). */
  private async bbbProxy(server: EmulatedServer): Promise<number> {
    let proxy = this.bbbProxies.get(server.id);
    if (proxy === undefined) {
      const base = `${this.emulator.url}/servers/${server.id}`;
      proxy = createServer((request: IncomingMessage, response: ServerResponse) => {
        void fetch(`${base}${request.url ?? "/"}`, { method: request.method ?? "GET" }).then(
          async (answer) => {
            response.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "text/plain" });
            response.end(Buffer.from(await answer.arrayBuffer()));
          },
          () => response.writeHead(502).end(),
        );
      });
      this.bbbProxies.set(server.id, proxy);
      await new Promise<void>((resolve) => proxy!.listen(0, "127.0.0.1", resolve));
    }
    return (proxy.address() as AddressInfo).port;
  }
}
