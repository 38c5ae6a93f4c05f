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

/**
 * A sidecar on one emulated server (REFERENCE §1): every `intervalMs` of emulated time it posts a
 * StatsReport derived from the server's meetings to `<scalerUrl>/sidecar/status`, and obeys the reply:
 * `shutdown` confirms on `/sidecar/shutdown` and powers the server off; `reconfigure` is echoed back
 * as `reconfigureComplete` on the next report.
 */
export class SidecarLoop {
  readonly checkIns: CheckIn[] = [];
  private readonly options: z.infer<typeof sidecarOptionsSchema>;
  private cancelTimer: (() => void) | undefined;
  private reconfigureComplete: string | undefined;
  private stopped = false;

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

  statsReport(): Record<string, unknown> {
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
