import { createHash } from "node:crypto";
import { SignJWT, exportSPKI, generateKeyPair } from "jose";
import { z } from "zod";
import type { EmulatedCloud, EmulatedServer } from "./cloud.js";

type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];

/** The signing key of every emulated sidecar; the scaler fetches its public half from `<keyBaseUrl>/<sha256hex(kid)>.pem`. */
export class SidecarKey {
  private constructor(
    readonly kid: string,
    readonly privateKey: PrivateKey,
    readonly publicPem: string,
  ) {}

  static async generate(kid: string): Promise<SidecarKey> {
    const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
    return new SidecarKey(kid, privateKey, await exportSPKI(publicKey));
  }

  get pemFileName(): string {
    return `${createHash("sha256").update(this.kid).digest("hex")}.pem`;
  }
}

export const sidecarOptionsSchema = z.object({
  scalerUrl: z.url(),
  group: z.string().min(1),
  instanceType: z.string().default("BBB"),
  intervalMs: z.number().positive().default(60_000),
  issuer: z.string().default("jitsi-autoscaler-sidecar"),
  audience: z.string().default("jitsi-autoscaler"),
});
export type SidecarOptions = z.input<typeof sidecarOptionsSchema>;

const commandReply = z.object({ shutdown: z.boolean().default(false), reconfigure: z.string().nullable().optional() });

export interface CheckIn {
  at: number;
  httpStatus: number | undefined;
  error: string | undefined;
  shutdown: boolean;
}

/** Participants at which an emulated videobridge reports stress 1 (a real bridge's stress follows its packet rate). */
export const JVB_PARTICIPANTS_AT_FULL_STRESS = 100;

/** Jitsi components whose sidecar shuts down gracefully: it waits for the conferences (or the recording) to end. */
const JITSI_BRIDGES = new Set(["JVB", "jigasi"]);
const JITSI_RECORDERS = new Set(["jibri", "sip-jibri"]);

/**
 * A sidecar on one emulated server (REFERENCE §1): every `intervalMs` of emulated time it posts a
 * StatsReport derived from the server's meetings to `<scalerUrl>/sidecar/status`, and obeys the reply:
 * `reconfigure` is echoed back as `reconfigureComplete` on the next report. On `shutdown`, a BBB-typed one confirms on
 * `/sidecar/shutdown` and powers the server off at once; a Jitsi one runs jitsi-autoscaler-sidecar's graceful shutdown:
 * it keeps reporting (with `shutdownStatus`, and a bridge's `graceful_shutdown`) until the server's conferences (a
 * bridge) or its recording (a Jibri) have ended, then confirms on `/sidecar/shutdown` and powers the server off.
 * A bridge's meetings are its conferences (stress: participants over JVB_PARTICIPANTS_AT_FULL_STRESS); a Jibri's are
 * its recordings (BUSY while one runs, else IDLE).
 */
export class SidecarLoop {
  readonly checkIns: CheckIn[] = [];
  private readonly options: z.infer<typeof sidecarOptionsSchema>;
  private cancelTimer: (() => void) | undefined;
  private reconfigureComplete: string | undefined;
  private stopped = false;
  /** A Jitsi sidecar told to shut down: running its graceful shutdown. */
  private gracefulShutdown = false;

  constructor(
    private readonly cloud: EmulatedCloud,
    private readonly server: EmulatedServer,
    private readonly key: SidecarKey,
    options: SidecarOptions,
  ) {
    this.options = sidecarOptionsSchema.parse(options);
  }

  start(): void {
    this.cancelTimer = this.cloud.clock.after(this.options.intervalMs, () => this.tick());
  }

  /** A Jitsi instance that starts its graceful shutdown on its own (an operator drained it by hand, say). */
  beginGracefulShutdown(): void {
    this.gracefulShutdown = true;
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
  }

  private tick(): void {
    if (this.stopped) return;
    if (this.cloud.isServing(this.server)) void this.checkIn();
    this.cancelTimer = this.cloud.clock.after(this.options.intervalMs, () => this.tick());
  }

  instanceDetails(): Record<string, unknown> {
    const ips = [...this.server.nics.values()].flatMap((nic) => nic.properties.ips);
    return {
      instanceId: this.server.id,
      instanceType: this.options.instanceType,
      group: this.options.group,
      cloud: "ionos",
      name: this.server.name,
      publicIp: ips[0],
      privateIp: ips[1] ?? ips[0],
    };
  }

  /** The stats a jitsi-autoscaler-sidecar relays for this instance type (JVB's colibri stats, Jibri's health). */
  private jitsiStats(): Record<string, unknown> | undefined {
    const type = this.options.instanceType;
    if (JITSI_BRIDGES.has(type)) {
      const participants = [...this.server.meetings.values()].reduce((sum, meeting) => sum + meeting.participants, 0);
      return {
        stress_level: participants / JVB_PARTICIPANTS_AT_FULL_STRESS,
        participants,
        conferences: this.server.meetings.size,
        graceful_shutdown: this.gracefulShutdown,
      };
    }
    if (JITSI_RECORDERS.has(type)) {
      return { status: { busyStatus: this.server.meetings.size > 0 ? "BUSY" : "IDLE", health: { healthStatus: "HEALTHY" } } };
    }
    return undefined;
  }

  private get isJitsi(): boolean {
    return JITSI_BRIDGES.has(this.options.instanceType) || JITSI_RECORDERS.has(this.options.instanceType);
  }

  statsReport(): Record<string, unknown> {
    const jitsi = this.jitsiStats();
    if (jitsi !== undefined) {
      return {
        instance: this.instanceDetails(),
        stats: jitsi,
        timestamp: this.cloud.clock.now(),
        shutdownStatus: this.gracefulShutdown,
        shutdownError: false,
        reconfigureError: false,
        reconfigureComplete: this.reconfigureComplete ?? "",
        statsError: false,
      };
    }
    let participants = 0;
    let videos = 0;
    let listeners = 0;
    for (const meeting of this.server.meetings.values()) {
      participants += meeting.participants;
      videos += meeting.videos;
      listeners += meeting.listenOnly;
    }
    const report: Record<string, unknown> = {
      instance: this.instanceDetails(),
      stats: {
        meetings: this.server.meetings.size,
        participants,
        videos,
        listeners,
        stress_level: this.cloud.load(this.server).cpuUtilisation,
      },
      timestamp: this.cloud.clock.now(),
    };
    if (this.reconfigureComplete !== undefined) report.reconfigureComplete = this.reconfigureComplete;
    return report;
  }

  private async token(): Promise<string> {
    // Wall-clock claims: the scaler checks expiry against its own clock, not the emulated one.
    const issuedAt = Math.floor(Date.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: "RS256", kid: this.key.kid })
      .setIssuer(this.options.issuer)
      .setAudience(this.options.audience)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + 3600)
      .sign(this.key.privateKey);
  }

  private async post(route: string, body: unknown): Promise<Response> {
    return fetch(`${this.options.scalerUrl.replace(/\/$/, "")}${route}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${await this.token()}` },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
  }

  private async checkIn(): Promise<void> {
    const checkIn: CheckIn = { at: this.cloud.clock.now(), httpStatus: undefined, error: undefined, shutdown: false };
    this.checkIns.push(checkIn);
    try {
      const echoed = this.reconfigureComplete;
      const response = await this.post("/sidecar/status", this.statsReport());
      checkIn.httpStatus = response.status;
      if (!response.ok) return;
      const reply = commandReply.parse(await response.json());
      this.reconfigureComplete = typeof reply.reconfigure === "string" && reply.reconfigure !== echoed ? reply.reconfigure : undefined;
      if (this.isJitsi) {
        if (reply.shutdown) this.gracefulShutdown = true;
        // The graceful-shutdown script returns once nothing runs on the instance; the terminate script then powers it off.
        if (this.gracefulShutdown && this.server.meetings.size === 0 && !this.stopped) {
          checkIn.shutdown = true;
          this.stop();
          await this.post("/sidecar/shutdown", this.instanceDetails());
          if (this.server.vmState === "RUNNING") this.cloud.powerOff(this.server, "SHUTOFF");
        }
        return;
      }
      if (reply.shutdown && !this.stopped) {
        checkIn.shutdown = true;
        this.stop();
        await this.post("/sidecar/shutdown", this.instanceDetails());
        if (this.server.vmState === "RUNNING") this.cloud.powerOff(this.server, "SHUTOFF");
      }
    } catch (error) {
      checkIn.error = error instanceof Error ? error.message : String(error);
    }
  }
}
