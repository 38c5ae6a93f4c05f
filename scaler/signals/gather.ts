import type { Logger } from "../log.js";
import type { GroupSnapshot } from "../policy/types.js";
import type { BbbClient } from "./bbb.js";
import type { PrometheusClient, WorkerMetrics } from "./prometheus.js";
import type { ScaleliteClient, ScaleliteServer } from "./scalelite.js";
import { buildSnapshot, type CheckIn, type FleetMember, type MeetingCounts, type Observed } from "./snapshot.js";

export interface GathererOptions {
  group: string;
  canPowerOff: boolean;
  freshForMs: number;
  prometheus: PrometheusClient;
  scalelite: ScaleliteClient;
  /** The BBB API client of a server, or undefined when it has none yet (booting, stopped). */
  bbbOf: (member: FleetMember) => BbbClient | undefined;
  fleet: () => Promise<FleetMember[]>;
  checkIns: () => Promise<ReadonlyMap<string, Observed<CheckIn>>>;
  now: () => number;
  logger: Logger;
}

/**
 * Reads every source at once and keeps the last good answer of each, so a failing source turns its values
 * stale (then the policy holds back) instead of missing for one period, and one unreachable server affects
 * only its own values.
 */
export class SignalGatherer {
  private metrics: Observed<ReadonlyMap<string, WorkerMetrics>> | undefined;
  private scaleliteServers: Observed<readonly ScaleliteServer[]> | undefined;
  private readonly meetings = new Map<string, Observed<MeetingCounts>>();
  /** Each server's last check-in, kept when its sidecar falls silent: silence then reads as stale, never as absent. */
  private readonly checkIns = new Map<string, Observed<CheckIn>>();

  constructor(private readonly options: GathererOptions) {}

  /** When a server's sidecar last checked in (ms since epoch, the scaler's clock), as of the last snapshot. */
  lastCheckInAt(server: string): number | undefined {
    return this.checkIns.get(server)?.at;
  }

  async snapshot(): Promise<GroupSnapshot> {
    const { options } = this;
    const fleet = await options.fleet();
    const running = fleet.filter((member) => member.power === "running");
    const [metrics, scalelite, checkIns, ...meetings] = await Promise.allSettled([
      options.prometheus.workerMetrics(),
      options.scalelite.getServers(),
      options.checkIns(),
      ...running.map(async (member) => {
        const client = options.bbbOf(member);
        return client === undefined ? undefined : { id: member.id, load: await client.getMeetings() };
      }),
    ]);
    const at = options.now();
    if (metrics.status === "fulfilled") this.metrics = { at, value: metrics.value };
    else options.logger.warn({ group: options.group, err: metrics.reason }, "prometheus unavailable: metrics go stale");
    if (scalelite.status === "fulfilled") this.scaleliteServers = { at, value: scalelite.value };
    else options.logger.warn({ group: options.group, err: scalelite.reason }, "scalelite unavailable: its state goes stale");
    meetings.forEach((result, index) => {
      const member = running[index];
      if (member === undefined) return;
      if (result.status === "fulfilled") {
        if (result.value !== undefined) this.meetings.set(member.id, { at, value: result.value.load });
      } else {
        options.logger.warn(
          { group: options.group, server: member.id, err: result.reason },
          "bbb getMeetings failed: this server's meetings go stale",
        );
      }
    });
    const known = new Set(fleet.map((member) => member.id));
    for (const id of this.meetings.keys()) if (!known.has(id)) this.meetings.delete(id);
    if (checkIns.status === "fulfilled") {
      for (const member of fleet) {
        const seen = checkIns.value.get(member.id);
        const kept = this.checkIns.get(member.id);
        if (seen !== undefined && (kept === undefined || seen.at >= kept.at)) this.checkIns.set(member.id, seen);
      }
    } else options.logger.warn({ group: options.group, err: checkIns.reason }, "check-ins unavailable: they go stale");
    for (const id of this.checkIns.keys()) if (!known.has(id)) this.checkIns.delete(id);
    return buildSnapshot({
      group: options.group,
      takenAt: at,
      canPowerOff: options.canPowerOff,
      fleet,
      ...(this.metrics === undefined ? {} : { metrics: this.metrics }),
      ...(this.scaleliteServers === undefined ? {} : { scalelite: this.scaleliteServers }),
      meetings: this.meetings,
      checkIns: this.checkIns,
      freshForMs: options.freshForMs,
    });
  }
}
