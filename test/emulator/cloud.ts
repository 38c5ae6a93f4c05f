import { parse as parseYaml } from "yaml";
import { randomUUID } from "node:crypto";
import type { EmulatorClock } from "./clock.js";
import { FaultQueue } from "./faults.js";
import { LOAD_MODEL, serverLoad, type ServerLoad } from "./load-model.js";

/** An error the IONOS API answers with `{httpStatus, messages: [{errorCode, message}]}`. */
export class CloudApiError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
    this.name = "CloudApiError";
  }
}

export function notFound(what: string, id: string): CloudApiError {
  return new CloudApiError(404, "309", `Resource does not exist: ${what} ${id}`);
}

export interface ResourceMeta {
  createdAt: number;
  modifiedAt: number;
  etag: string;
  /** Requests accepted and not yet finished that target this resource: it reads BUSY meanwhile. */
  pendingRequests: number;
}

export type VmState = "NOSTATE" | "RUNNING" | "SHUTOFF" | "CRASHED";
export type RequestStatus = "QUEUED" | "RUNNING" | "DONE" | "FAILED";

export interface Meeting {
  meetingId: string;
  name: string;
  createTime: number;
  participants: number;
  videos: number;
  listenOnly: number;
  moderators: number;
  endsAt: number;
  cancelEnd: () => void;
}

export interface CpuCounters {
  user: number;
  system: number;
  softirq: number;
  idle: number;
}

export interface Volume {
  id: string;
  serverId: string | undefined;
  meta: ResourceMeta;
  properties: Record<string, unknown> & { name: string; size: number; type: string };
}

export interface FirewallRule {
  id: string;
  meta: ResourceMeta;
  properties: Record<string, unknown>;
}

export interface Nic {
  id: string;
  meta: ResourceMeta;
  properties: Record<string, unknown> & { name: string; lan: number; ips: string[]; mac: string; dhcp: boolean; firewallActive: boolean };
  firewallRules: Map<string, FirewallRule>;
}

export interface Lan {
  id: string;
  meta: ResourceMeta;
  properties: Record<string, unknown> & { name: string; public: boolean };
}

export interface EmulatedServer {
  id: string;
  datacenterId: string;
  meta: ResourceMeta;
  name: string;
  cores: number;
  ram: number;
  cpuFamily: string;
  availabilityZone: string;
  type: string;
  vmState: VmState;
  /** When the OS finished booting (metrics and BBB answer from then on); undefined while off. */
  bootCompleteAt: number | undefined;
  stuckBooting: boolean;
  poweredOnAt: number | undefined;
  volumeIds: string[];
  nics: Map<string, Nic>;
  labels: Map<string, string>;
  meetings: Map<string, Meeting>;
  cpu: CpuCounters[];
  receiveBytes: number;
  transmitBytes: number;
  countersAt: number;
}

export interface Datacenter {
  id: string;
  meta: ResourceMeta;
  name: string;
  description: string;
  location: string;
  lans: Map<string, Lan>;
  servers: Map<string, EmulatedServer>;
  volumes: Map<string, Volume>;
}

export interface RequestTarget {
  id: string;
  type: string;
  href: string;
}

export interface CloudRequest {
  id: string;
  method: string;
  url: string;
  body: string;
  createdAt: number;
  status: RequestStatus;
  message: string;
  targets: RequestTarget[];
}

export interface CloudTimings {
  /** How long a write request stays QUEUED. */
  requestQueuedMs: number;
  /** How long it then stays RUNNING before DONE. */
  requestRunningMs: number;
  /** From power-on (request DONE) until metrics and the BBB API answer. */
  bootMs: number;
}

export interface ServerSpec {
  name: string;
  cores: number;
  ram: number;
  cpuFamily?: string;
  availabilityZone?: string;
  type?: string;
}

export interface VolumeSpec {
  properties: Record<string, unknown> & { name?: string; size?: number; type?: string };
}

export interface NicSpec {
  properties: Record<string, unknown> & { name?: string; lan: number; ips?: string[] | null; dhcp?: boolean; firewallActive?: boolean };
  firewallRules: Record<string, unknown>[];
}

/** What the cloud tells the machines behind its servers, where they are real (test/rehearsal/lab-cloud.ts). */
export interface MachineHooks {
  /** The public IPv4 address of a new NIC that asks for none. */
  publicAddress(): string;
  /** A server was powered on or off, got a NIC, or was deleted (then it is no longer in `servers`). */
  changed(server: EmulatedServer): void;
}

/** What a write does when its request reaches DONE; throwing a CloudApiError makes the request FAILED. */
type Effect = () => void;

/**
 * The state of the emulated IONOS contract: datacenters, their servers with volumes and NICs, LANs, and
 * the asynchronous requests that change them. Per-server load (meetings) and counters live here too, so
 * node-exporter and BBB views are derived from one place.
 */
export class EmulatedCloud {
  readonly datacenters = new Map<string, Datacenter>();
  readonly servers = new Map<string, EmulatedServer>();
  readonly requests = new Map<string, CloudRequest>();
  readonly faults = new FaultQueue();
  /** Meetings that ended because their server lost power, not because they were over. */
  meetingsCut = 0;
  /** Where servers are machines (the rehearsal lab, test/rehearsal/lab-cloud.ts): their addresses and power changes. */
  machines: MachineHooks | undefined;
  private ipCounter = 10;
  /** Who waits for a server to be added (`serverAdded`). */
  private readonly addedWaiters = new Set<{ match: (server: EmulatedServer) => boolean; resolve: (server: EmulatedServer) => void }>();

  constructor(
    readonly clock: EmulatorClock,
    readonly timings: CloudTimings,
    /** Absolute base of the cloud API (for `href`s and `Location`), e.g. http://127.0.0.1:1234/cloudapi/v6. */
    private readonly apiBase: () => string,
    /** The BBB shared secret of every emulated server (one cloud-init template for the fleet). */
    readonly bbbSecret: string,
  ) {}

  href(path: string): string {
    return `${this.apiBase()}${path}`;
  }

  newMeta(): ResourceMeta {
    const now = this.clock.now();
    return { createdAt: now, modifiedAt: now, etag: randomUUID().replaceAll("-", ""), pendingRequests: 0 };
  }

  touch(meta: ResourceMeta): void {
    meta.modifiedAt = this.clock.now();
    meta.etag = randomUUID().replaceAll("-", "");
  }

  datacenter(id: string): Datacenter {
    const datacenter = this.datacenters.get(id);
    if (datacenter === undefined) throw notFound("datacenter", id);
    return datacenter;
  }

  server(datacenterId: string, serverId: string): EmulatedServer {
    const server = this.datacenter(datacenterId).servers.get(serverId);
    if (server === undefined) throw notFound("server", serverId);
    return server;
  }

  nic(datacenterId: string, serverId: string, nicId: string): Nic {
    const nic = this.server(datacenterId, serverId).nics.get(nicId);
    if (nic === undefined) throw notFound("nic", nicId);
    return nic;
  }

  // ---- requests -------------------------------------------------------------------------------

  /**
   * Accepts a write: the request is QUEUED, then RUNNING, then DONE (the effect applies) or FAILED.
   * Resources in `busy` read BUSY until it ends.
   */
  submit(method: string, url: string, body: unknown, targets: RequestTarget[], busy: ResourceMeta[], effect: Effect): CloudRequest {
    const request: CloudRequest = {
      id: randomUUID(),
      method,
      url,
      body: body === undefined ? "" : JSON.stringify(body),
      createdAt: this.clock.now(),
      status: "QUEUED",
      message: "Request has been queued",
      targets,
    };
    this.requests.set(request.id, request);
    for (const meta of busy) meta.pendingRequests += 1;
    // A server's name in a write's body, quoted whole: `bbb-1` does not match `bbb-10`.
    const injectedFailure = this.faults.take(
      "requestFails",
      (fault) => fault.server === undefined || request.body.includes(`"name":${JSON.stringify(fault.server)}`),
    );
    this.clock.after(this.timings.requestQueuedMs, () => {
      request.status = "RUNNING";
      request.message = "Request is being processed";
      this.clock.after(this.timings.requestRunningMs, () => {
        for (const meta of busy) meta.pendingRequests -= 1;
        if (injectedFailure !== undefined) {
          request.status = "FAILED";
          request.message = injectedFailure.message;
          return;
        }
        try {
          effect();
          request.status = "DONE";
          request.message = "Request has been successfully executed";
        } catch (error) {
          if (!(error instanceof CloudApiError)) throw error;
          request.status = "FAILED";
          request.message = error.message;
        }
      });
    });
    return request;
  }

  // ---- datacenters and LANs -------------------------------------------------------------------

  createDatacenter(properties: { name: string; description?: string; location: string }): Datacenter {
    const datacenter: Datacenter = {
      id: randomUUID(),
      meta: this.newMeta(),
      name: properties.name,
      description: properties.description ?? "",
      location: properties.location,
      lans: new Map(),
      servers: new Map(),
      volumes: new Map(),
    };
    this.datacenters.set(datacenter.id, datacenter);
    return datacenter;
  }

  deleteDatacenter(id: string): void {
    const datacenter = this.datacenter(id);
    for (const server of datacenter.servers.values()) this.removeServer(server);
    this.datacenters.delete(id);
  }

  /** `_public` is how the SDK's model spells `public`; both are accepted. */
  createLan(datacenter: Datacenter, properties: Record<string, unknown> & { name?: string; public?: boolean; _public?: boolean }): Lan {
    const id = String(Math.max(0, ...[...datacenter.lans.keys()].map(Number)) + 1);
    const { _public: sdkPublic, ...rest } = properties;
    const lan: Lan = {
      id,
      meta: this.newMeta(),
      properties: { ...rest, name: properties.name ?? `LAN ${id}`, public: properties.public ?? sdkPublic ?? false },
    };
    datacenter.lans.set(id, lan);
    return lan;
  }

  // ---- servers --------------------------------------------------------------------------------

  /** Adds a server in its provisioning state (not running yet); `attachNics`/`attachVolumes` add its parts. */
  addServer(datacenter: Datacenter, spec: ServerSpec, volumes: VolumeSpec[], nics: NicSpec[]): EmulatedServer {
    const now = this.clock.now();
    const server: EmulatedServer = {
      id: randomUUID(),
      datacenterId: datacenter.id,
      meta: this.newMeta(),
      name: spec.name,
      cores: spec.cores,
      ram: spec.ram,
      cpuFamily: spec.cpuFamily ?? "INTEL_SKYLAKE",
      availabilityZone: spec.availabilityZone ?? "AUTO",
      type: spec.type ?? "ENTERPRISE",
      vmState: "NOSTATE",
      bootCompleteAt: undefined,
      stuckBooting: false,
      poweredOnAt: undefined,
      volumeIds: [],
      nics: new Map(),
      labels: new Map(),
      meetings: new Map(),
      cpu: [],
      receiveBytes: 0,
      transmitBytes: 0,
      countersAt: now,
    };
    datacenter.servers.set(server.id, server);
    this.servers.set(server.id, server);
    for (const volume of volumes) this.addVolume(datacenter, server, volume);
    for (const nic of nics) this.addNic(server, nic);
    for (const waiter of this.addedWaiters) {
      if (!waiter.match(server)) continue;
      this.addedWaiters.delete(waiter);
      waiter.resolve(server);
    }
    return server;
  }

  /** The first server, already there or added later, that `match` accepts: a test awaits a create reaching the cloud. */
  serverAdded(match: (server: EmulatedServer) => boolean = () => true): Promise<EmulatedServer> {
    const present = [...this.servers.values()].find(match);
    if (present !== undefined) return Promise.resolve(present);
    return new Promise((resolve) => this.addedWaiters.add({ match, resolve }));
  }

  addVolume(datacenter: Datacenter, server: EmulatedServer | undefined, spec: VolumeSpec): Volume {
    const volume: Volume = {
      id: randomUUID(),
      serverId: server?.id,
      meta: this.newMeta(),
      properties: {
        ...spec.properties,
        name: spec.properties.name ?? "volume",
        size: spec.properties.size ?? 10,
        type: spec.properties.type ?? "HDD",
      },
    };
    datacenter.volumes.set(volume.id, volume);
    server?.volumeIds.push(volume.id);
    return volume;
  }

  addNic(server: EmulatedServer, spec: NicSpec): Nic {
    const n = this.ipCounter++;
    const ips =
      spec.properties.ips !== undefined && spec.properties.ips !== null && spec.properties.ips.length > 0
        ? spec.properties.ips
        : [this.machines?.publicAddress() ?? `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`];
    const mac = `02:01:${[n >> 24, n >> 16, n >> 8, n].map((byte) => (byte & 255).toString(16).padStart(2, "0")).join(":")}`;
    const nic: Nic = {
      id: randomUUID(),
      meta: this.newMeta(),
      properties: {
        ...spec.properties,
        name: spec.properties.name ?? "nic",
        lan: spec.properties.lan,
        ips,
        mac,
        dhcp: spec.properties.dhcp ?? true,
        firewallActive: spec.properties.firewallActive ?? false,
      },
      firewallRules: new Map(),
    };
    for (const rule of spec.firewallRules) this.addFirewallRule(nic, rule);
    server.nics.set(nic.id, nic);
    this.machines?.changed(server);
    return nic;
  }

  addFirewallRule(nic: Nic, properties: Record<string, unknown>): FirewallRule {
    const rule: FirewallRule = {
      id: randomUUID(),
      meta: this.newMeta(),
      properties: { type: "INGRESS", ipVersion: "IPv4", ...properties },
    };
    nic.firewallRules.set(rule.id, rule);
    return rule;
  }

  removeServer(server: EmulatedServer): void {
    this.powerOff(server, "SHUTOFF");
    const datacenter = this.datacenters.get(server.datacenterId);
    for (const volumeId of server.volumeIds) datacenter?.volumes.delete(volumeId);
    datacenter?.servers.delete(server.id);
    this.servers.delete(server.id);
    this.machines?.changed(server);
  }

  /** Power comes on: counters restart like a kernel's, and the OS boots for `bootMs` (or forever when stuck). */
  powerOn(server: EmulatedServer): void {
    const now = this.clock.now();
    server.vmState = "RUNNING";
    server.poweredOnAt = now;
    server.countersAt = now;
    server.cpu = Array.from({ length: server.cores }, () => ({ user: 0, system: 0, softirq: 0, idle: 0 }));
    server.receiveBytes = 0;
    server.transmitBytes = 0;
    if (this.faults.take("stuckBooting") !== undefined) server.stuckBooting = true;
    server.bootCompleteAt = server.stuckBooting ? undefined : now + this.timings.bootMs;
    this.machines?.changed(server);
  }

  /** Power goes away (stop, crash, delete): the meetings on it are gone, and counted as cut off. */
  powerOff(server: EmulatedServer, vmState: "SHUTOFF" | "CRASHED"): void {
    this.accrue(server);
    this.meetingsCut += server.meetings.size;
    for (const meeting of server.meetings.values()) meeting.cancelEnd();
    server.meetings.clear();
    server.vmState = vmState;
    server.bootCompleteAt = undefined;
    server.poweredOnAt = undefined;
    this.machines?.changed(server);
  }

  /** Applies a resize. Growing is hot-plugged; shrinking a running server reboots it (as IONOS does implicitly). */
  resize(server: EmulatedServer, cores: number | undefined, ram: number | undefined): void {
    this.accrue(server);
    const shrinks = (cores !== undefined && cores < server.cores) || (ram !== undefined && ram < server.ram);
    const running = server.vmState === "RUNNING";
    if (shrinks && running) this.powerOff(server, "SHUTOFF");
    if (cores !== undefined) server.cores = cores;
    if (ram !== undefined) server.ram = ram;
    if (shrinks && running) this.powerOn(server);
    else while (server.cpu.length < server.cores && running) server.cpu.push({ user: 0, system: 0, softirq: 0, idle: 0 });
  }

  /** The OS is up: node-exporter and BBB answer. */
  /**
   * A server's BBB secret: the one its user data writes to /etc/confscale/bbb-secret (which its cloud-init hands to
   * `bbb-conf --setsecret`), else the cloud's default for servers made without that user data.
   */
  bbbSecretOf(server: EmulatedServer): string {
    const bootVolume = this.datacenters.get(server.datacenterId)?.volumes.get(server.volumeIds[0] ?? "");
    const userData = bootVolume?.properties.userData;
    if (typeof userData !== "string") return this.bbbSecret;
    const files = (
      parseYaml(Buffer.from(userData, "base64").toString("utf8")) as { write_files?: { path?: string; content?: string }[] } | null
    )?.write_files;
    return files?.find((file) => file.path === "/etc/confscale/bbb-secret")?.content ?? this.bbbSecret;
  }

  isServing(server: EmulatedServer): boolean {
    return server.vmState === "RUNNING" && server.bootCompleteAt !== undefined && this.clock.now() >= server.bootCompleteAt;
  }

  // ---- load -----------------------------------------------------------------------------------

  load(server: EmulatedServer): ServerLoad {
    return serverLoad(server.cores, server.ram, server.meetings.values());
  }

  /** Integrates the counters up to now at the current load; call before anything changes the load. */
  accrue(server: EmulatedServer): void {
    const now = this.clock.now();
    const seconds = Math.max(0, now - server.countersAt) / 1000;
    server.countersAt = now;
    if (server.vmState !== "RUNNING" || seconds === 0) return;
    const load = this.load(server);
    const busyPerCpu = load.busyCores / server.cores;
    const split = LOAD_MODEL.cpuSplit;
    for (const cpu of server.cpu) {
      cpu.user += seconds * busyPerCpu * split.user;
      cpu.system += seconds * busyPerCpu * split.system;
      cpu.softirq += seconds * busyPerCpu * split.softirq;
      cpu.idle += seconds * (1 - busyPerCpu);
    }
    server.receiveBytes += seconds * load.receiveBytesPerSecond;
    server.transmitBytes += seconds * load.transmitBytesPerSecond;
  }

  /** Starts a meeting on a serving server; it ends by itself after `durationMs`. */
  startMeeting(
    server: EmulatedServer,
    meeting: { meetingId?: string; name?: string; participants: number; videos: number; listenOnly: number; durationMs: number },
  ): Meeting {
    if (!this.isServing(server)) throw new CloudApiError(409, "409", `server ${server.id} is not serving`);
    this.accrue(server);
    const now = this.clock.now();
    const meetingId = meeting.meetingId ?? randomUUID();
    const placed: Meeting = {
      meetingId,
      name: meeting.name ?? meetingId,
      createTime: now,
      participants: meeting.participants,
      videos: Math.min(meeting.videos, meeting.participants),
      listenOnly: Math.min(meeting.listenOnly, meeting.participants),
      moderators: meeting.participants > 0 ? 1 : 0,
      endsAt: now + meeting.durationMs,
      cancelEnd: () => undefined,
    };
    placed.cancelEnd = this.clock.schedule(placed.endsAt, () => this.endMeeting(server, meetingId));
    server.meetings.set(meetingId, placed);
    return placed;
  }

  endMeeting(server: EmulatedServer, meetingId: string): void {
    const meeting = server.meetings.get(meetingId);
    if (meeting === undefined) return;
    this.accrue(server);
    meeting.cancelEnd();
    server.meetings.delete(meetingId);
  }
}
