import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import { bbbApi } from "./bbb-api.js";
import { EmulatorClock, type ClockMode } from "./clock.js";
import { CloudApiError, EmulatedCloud, notFound, type CloudTimings, type Datacenter, type EmulatedServer, type Meeting } from "./cloud.js";
import { controlApi } from "./control-api.js";
import { EmulatedDns, ionosApi, ionosDnsApi, type CloudCredentials } from "./ionos-api.js";
import { LoadDriver } from "./load-driver.js";
import { renderNodeExporterMetrics } from "./node-exporter.js";
import { ScaleliteEmulator, scaleliteApi } from "./scalelite.js";
import { SidecarKey, SidecarLoop, type SidecarOptions } from "./sidecar.js";

export interface EmulatorOptions {
  /** TCP port on 127.0.0.1; 0 (default) lets the OS pick. */
  port?: number;
  clock?: ClockMode;
  /** Emulated epoch ms at start (default: now). */
  startAt?: number;
  timings?: Partial<CloudTimings>;
  credentials?: Partial<CloudCredentials>;
  bbbSecret?: string;
  scaleliteSecret?: string;
  scalelitePollMs?: number;
  /** The datacenter present from the start (with LAN 1, public); null for an empty contract. */
  datacenter?: { name: string; location: string } | null;
  /** Cloud DNS zones of the contract (default: confscale.test, the local stack's). */
  dnsZones?: string[];
}

export const DEFAULT_CREDENTIALS: CloudCredentials = {
  username: "confscale@emulator.test",
  password: "emulator-password",
  token: "emulator-token",
};
export const DEFAULT_TIMINGS: CloudTimings = { requestQueuedMs: 200, requestRunningMs: 1_000, bootMs: 30_000 };
export const DEFAULT_BBB_SECRET = "0123456789abcdef0123456789abcdef01234567";
export const DEFAULT_SCALELITE_SECRET = "emulated-scalelite-secret";

/** Everything a test may read about one server, in plain JSON. */
export interface ServerView {
  id: string;
  datacenterId: string;
  name: string;
  cores: number;
  ram: number;
  vmState: string;
  state: "AVAILABLE" | "BUSY";
  serving: boolean;
  stuckBooting: boolean;
  ips: string[];
  labels: Record<string, string>;
  metricsPath: string;
  bbbUrl: string;
  meetings: { meetingId: string; participants: number; videos: number; listenOnly: number; createTime: number; endsAt: number }[];
  load: ReturnType<EmulatedCloud["load"]>;
}

/**
 * One emulated datacenter behind one loopback HTTP listener:
 *
 * - `/cloudapi/v6/...`                       IONOS Cloud API v6 subset (auth required)
 * - `/dns/zones/...`                         IONOS Cloud DNS API subset (auth required)
 * - `/servers/<id>/metrics`                  node-exporter of that server (503 unless booted)
 * - `/servers/<id>/bigbluebutton/api/...`    BBB API of that server (503 unless booted)
 * - `/scalelite/api/...`                     Scalelite server API
 * - `/_keys/<sha256hex(kid)>.pem`            public key of the emulated sidecars
 * - `/_control/...`                          test control API
 */
export class Emulator {
  readonly clock: EmulatorClock;
  readonly cloud: EmulatedCloud;
  readonly dns: EmulatedDns;
  readonly scalelite: ScaleliteEmulator;
  readonly loadDriver: LoadDriver;
  readonly credentials: CloudCredentials;
  readonly defaultDatacenterId: string | undefined;
  private readonly sidecars = new Map<string, SidecarLoop>();
  private port = 0;
  private server: ServerType | undefined;

  private constructor(
    options: EmulatorOptions,
    readonly sidecarKey: SidecarKey,
  ) {
    this.clock = new EmulatorClock(options.clock ?? { kind: "real", scale: 1 }, options.startAt ?? Date.now());
    this.credentials = { ...DEFAULT_CREDENTIALS, ...options.credentials };
    this.cloud = new EmulatedCloud(
      this.clock,
      { ...DEFAULT_TIMINGS, ...options.timings },
      () => this.cloudApiUrl,
      options.bbbSecret ?? DEFAULT_BBB_SECRET,
    );
    this.dns = new EmulatedDns(options.dnsZones ?? ["confscale.test"]);
    this.scalelite = new ScaleliteEmulator(
      this.cloud,
      options.scaleliteSecret ?? DEFAULT_SCALELITE_SECRET,
      options.scalelitePollMs ?? 60_000,
    );
    this.loadDriver = new LoadDriver(this.clock, this.scalelite);
    if (options.datacenter !== null) {
      const datacenter = this.cloud.createDatacenter(options.datacenter ?? { name: "confscale", location: "de/fra" });
      this.cloud.createLan(datacenter, { name: "public", public: true });
      this.defaultDatacenterId = datacenter.id;
    }
  }

  static async start(options: EmulatorOptions = {}): Promise<Emulator> {
    const emulator = new Emulator(options, await SidecarKey.generate("confscale-emulator"));
    await emulator.listen(options.port ?? 0);
    emulator.scalelite.startPoller();
    return emulator;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** `basePath` for `@ionos-cloud/sdk-nodejs`'s Configuration. */
  get cloudApiUrl(): string {
    return `${this.url}/cloudapi/v6`;
  }

  /** Base URL of the emulated IONOS Cloud DNS API. */
  get dnsApiUrl(): string {
    return `${this.url}/dns`;
  }

  get scaleliteApiUrl(): string {
    return `${this.url}/scalelite/api`;
  }

  get keyBaseUrl(): string {
    return `${this.url}/_keys`;
  }

  metricsPath(serverId: string): string {
    return `/servers/${serverId}/metrics`;
  }

  /** The BBB API URL to register in Scalelite for this server. */
  bbbUrl(serverId: string): string {
    return `${this.url}/servers/${serverId}/bigbluebutton/api`;
  }

  serverById(id: string): EmulatedServer {
    const server = this.cloud.servers.get(id);
    if (server === undefined) throw notFound("server", id);
    return server;
  }

  /** A server that is already running (and booted unless `booted: false`), without going through requests. */
  addRunningServer(spec: { datacenterId?: string; name: string; cores: number; ram: number; booted?: boolean }): EmulatedServer {
    const datacenter = this.datacenterFor(spec.datacenterId);
    const lan = [...datacenter.lans.keys()][0];
    const nics = lan === undefined ? [] : [{ properties: { name: "public", lan: Number(lan), dhcp: true }, firewallRules: [] }];
    const server = this.cloud.addServer(
      datacenter,
      { name: spec.name, cores: spec.cores, ram: spec.ram },
      [{ properties: { name: `${spec.name}-boot`, size: 40, type: "SSD" } }],
      nics,
    );
    this.cloud.powerOn(server);
    if (spec.booted !== false && !server.stuckBooting) server.bootCompleteAt = this.clock.now();
    return server;
  }

  crashServer(id: string): void {
    const server = this.serverById(id);
    if (server.vmState === "RUNNING") this.cloud.powerOff(server, "CRASHED");
  }

  /** A stuck server keeps RUNNING but never answers metrics or BBB; un-sticking boots it from now. */
  setStuckBooting(id: string, stuck: boolean): void {
    const server = this.serverById(id);
    server.stuckBooting = stuck;
    if (stuck) server.bootCompleteAt = undefined;
    else if (server.vmState === "RUNNING") server.bootCompleteAt = this.clock.now() + this.cloud.timings.bootMs;
  }

  startSidecar(serverId: string, options: SidecarOptions): SidecarLoop {
    this.stopSidecar(serverId);
    const loop = new SidecarLoop(this.cloud, this.serverById(serverId), this.sidecarKey, options);
    this.sidecars.set(serverId, loop);
    loop.start();
    return loop;
  }

  /** A conference on an emulated videobridge: its participants make the bridge's stress (JVB_PARTICIPANTS_AT_FULL_STRESS). */
  startConference(serverId: string, conference: { participants: number; durationMs: number }): Meeting {
    return this.cloud.startMeeting(this.serverById(serverId), { ...conference, videos: 0, listenOnly: 0 });
  }

  /** A recording on an emulated Jibri: it is BUSY while the recording runs. */
  startRecording(serverId: string, durationMs: number): Meeting {
    return this.cloud.startMeeting(this.serverById(serverId), { participants: 1, videos: 0, listenOnly: 0, durationMs });
  }

  /** The sidecar running on a server, if any. */
  sidecarOf(serverId: string): SidecarLoop | undefined {
    return this.sidecars.get(serverId);
  }

  stopSidecar(serverId: string): void {
    this.sidecars.get(serverId)?.stop();
    this.sidecars.delete(serverId);
  }

  serverView(server: EmulatedServer): ServerView {
    return {
      id: server.id,
      datacenterId: server.datacenterId,
      name: server.name,
      cores: server.cores,
      ram: server.ram,
      vmState: server.vmState,
      state: server.meta.pendingRequests > 0 ? "BUSY" : "AVAILABLE",
      serving: this.cloud.isServing(server),
      stuckBooting: server.stuckBooting,
      ips: [...server.nics.values()].flatMap((nic) => nic.properties.ips),
      labels: Object.fromEntries(server.labels),
      metricsPath: this.metricsPath(server.id),
      bbbUrl: this.bbbUrl(server.id),
      meetings: [...server.meetings.values()].map(({ meetingId, participants, videos, listenOnly, createTime, endsAt }) => ({
        meetingId,
        participants,
        videos,
        listenOnly,
        createTime,
        endsAt,
      })),
      load: this.cloud.load(server),
    };
  }

  state(): Record<string, unknown> {
    const requests: Record<string, number> = {};
    for (const request of this.cloud.requests.values()) requests[request.status] = (requests[request.status] ?? 0) + 1;
    return {
      clock: this.clock.snapshot(),
      datacenters: [...this.cloud.datacenters.values()].map((datacenter) => ({
        id: datacenter.id,
        name: datacenter.name,
        location: datacenter.location,
        lans: [...datacenter.lans.values()].map((lan) => ({ id: lan.id, ...lan.properties })),
        serverIds: [...datacenter.servers.keys()],
      })),
      servers: [...this.cloud.servers.values()].map((server) => this.serverView(server)),
      scalelite: [...this.scalelite.servers.values()].map((entry) => this.scalelite.toJson(entry)),
      requests,
      meetingsCut: this.cloud.meetingsCut,
      faults: this.cloud.faults.pending(),
      sidecars: Object.fromEntries([...this.sidecars.entries()].map(([id, loop]) => [id, loop.checkIns])),
      loadDriver: this.loadDriver.stats,
    };
  }

  /** Prometheus `http_sd_configs` answer: one target per server, all through this listener. */
  prometheusTargets(): { targets: string[]; labels: Record<string, string> }[] {
    return [...this.cloud.servers.values()].map((server) => {
      const ip = [...server.nics.values()][0]?.properties.ips[0];
      return {
        targets: [`127.0.0.1:${this.port}`],
        labels: {
          __metrics_path__: this.metricsPath(server.id),
          instance: ip === undefined ? server.id : `${ip}:9100`,
          server_id: server.id,
          server_name: server.name,
        },
      };
    });
  }

  async stop(): Promise<void> {
    for (const serverId of [...this.sidecars.keys()]) this.stopSidecar(serverId);
    this.loadDriver.stop();
    this.scalelite.stopPoller();
    this.clock.stop();
    const server = this.server;
    if (server === undefined) return;
    await new Promise<void>((resolve, reject) => server.close((error) => (error === undefined ? resolve() : reject(error))));
    this.server = undefined;
  }

  private datacenterFor(id: string | undefined): Datacenter {
    const datacenterId = id ?? this.defaultDatacenterId;
    if (datacenterId === undefined) throw new CloudApiError(400, "100", "no datacenter given and none by default");
    return this.cloud.datacenter(datacenterId);
  }

  private app(): Hono {
    const app = new Hono();
    // Lazy world: everything due by now happens before any request is answered.
    app.use("*", async (_c, next) => {
      this.clock.runDue();
      await next();
    });
    app.route("/cloudapi/v6", ionosApi(this.cloud, this.credentials));
    app.route("/dns", ionosDnsApi(this.dns, this.credentials));
    app.get("/servers/:server/metrics", (c) => {
      const server = this.cloud.servers.get(c.req.param("server"));
      if (server === undefined) return c.text("no such server", 404);
      if (!this.cloud.isServing(server)) return c.text("server is not up", 503);
      return c.body(renderNodeExporterMetrics(this.cloud, server), 200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" });
    });
    app.route("/servers", bbbApi(this.cloud));
    app.route("/scalelite/api", scaleliteApi(this.scalelite));
    app.get(`/_keys/:file`, (c) => {
      if (c.req.param("file") !== this.sidecarKey.pemFileName) return c.text("no such key", 404);
      return c.body(this.sidecarKey.publicPem, 200, { "Content-Type": "application/x-pem-file" });
    });
    app.route("/_control", controlApi(this));
    return app;
  }

  private async listen(port: number): Promise<void> {
    const app = this.app();
    await new Promise<void>((resolve, reject) => {
      const server = serve({ fetch: app.fetch, port, hostname: "127.0.0.1" }, (info: AddressInfo) => {
        this.port = info.port;
        resolve();
      });
      server.once("error", reject);
      // Kept-alive connections outlive the client's idle ones (Node's agent drops them after 5 s), as a real API
      // gateway's do: a server that closes them first races the client's next request on them, which then breaks
      // (ECONNRESET), most often on a loaded machine.
      Object.assign(server, { keepAliveTimeout: 65_000, headersTimeout: 66_000 });
      this.server = server;
    });
  }
}
