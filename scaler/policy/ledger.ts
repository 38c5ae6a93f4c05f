import {
  LAUNCH_KINDS,
  averageCostPerParticipant,
  expectedRise,
  forecastAgreement,
  forecastExcess,
  forecastPeak,
  isDraining,
  lastActionAt,
  measuredDemand,
  round,
  slowingRise,
  takesMeetings,
  type Demand,
} from "./load.js";
import { isFresh } from "./readings.js";
import { minimumAt } from "./timeWindows.js";
import type { Decision, GroupSnapshot, Hold, LoadSample, PolicyHistory, ScalingPolicy, ServerSnapshot } from "./types.js";

export type Inputs = Record<string, number | null>;

/** A day at most this many times busier than last week scales the forecast up no further. */
const MAX_AGREEMENT = 3;
/** A day running below this share of last week's load is another kind of day (a holiday): its forecast is scaled down. */
export const QUIETER_DAY = 0.5;

/** What every phase reads and none changes: the period's snapshot, policy, history, and the demand derived from them. */
export interface DecideContext {
  readonly snapshot: GroupSnapshot;
  readonly policy: ScalingPolicy;
  readonly history: PolicyHistory;
  readonly now: number;
  readonly sample: LoadSample;
  readonly minimum: number;
  readonly active: readonly ServerSnapshot[];
  readonly draining: readonly ServerSnapshot[];
  readonly stopped: readonly ServerSnapshot[];
  readonly targetCpu: number;
  readonly targetMemory: number;
  /** Samples of the periods before this one and this one's, oldest first. */
  readonly samples: readonly LoadSample[];
  readonly recentSamples: readonly LoadSample[];
  readonly sustained: boolean;
  readonly sustainedHigh: boolean;
  readonly nearProjectedCores: number;
  readonly nearProjectedRam: number;
  /** Today's load over last week's at the same minutes just past (1 when not comparable); see forecastAgreement. */
  readonly agreement: number;
  /**
   * Last week's load (scaled by the agreement) over the coming resize lead, when it was recorded: a bell that growth
   * in place must be ready for. Null without a record for that time.
   */
  readonly nearForecast: Demand | null;
  readonly groupInputs: Inputs;
  /** A server's load as scale-out counts it (see decide.ts). */
  scaleOutDemand(server: ServerSnapshot): Demand;
  inServerCooldown(server: ServerSnapshot): boolean;
  hasActionInFlight(server: ServerSnapshot): boolean;
}

/**
 * The capacity account a phase hands the next: what takes meetings, what is required, what may still be launched.
 * Never changed in place: a phase returns a new ledger with its decisions.
 */
export interface Ledger {
  readonly capacityCores: number;
  readonly capacityRam: number;
  readonly bootingCores: number;
  readonly bootingRam: number;
  /** Room the running servers below the maximum size can still grow into. */
  readonly growableCores: number;
  readonly growableRam: number;
  readonly requiredCores: number;
  readonly requiredRam: number;
  readonly activeCount: number;
  readonly serverCount: number;
  readonly launchBudget: number;
  /** Servers a decision of this period already concerns. */
  readonly acted: ReadonlySet<string>;
  readonly scaledOut: boolean;
}

/** What a phase decided: its decisions and holds, and the ledger after them. */
export interface PhaseResult {
  readonly ledger: Ledger;
  readonly decisions: readonly Decision[];
  readonly holds: readonly Hold[];
}

export function withActed(ledger: Ledger, server: string, changes: Partial<Omit<Ledger, "acted">> = {}): Ledger {
  return { ...ledger, ...changes, acted: new Set([...ledger.acted, server]) };
}

export function decisionOf(context: DecideContext, decision: Omit<Decision, "dryRun">): Decision {
  return { ...decision, dryRun: context.policy.dryRun };
}

/** Short of capacity for the projected load (growth counted), or below the minimum. */
export function isShort(context: DecideContext, ledger: Ledger): boolean {
  return (
    ledger.capacityCores + ledger.growableCores < ledger.requiredCores ||
    ledger.capacityRam + ledger.growableRam < ledger.requiredRam ||
    ledger.activeCount < context.minimum
  );
}

/** Short now, counting only the servers that take meetings already (booting ones do not yet). */
export function isShortNow(context: DecideContext, ledger: Ledger): boolean {
  return (
    ledger.capacityCores - ledger.bootingCores < ledger.requiredCores ||
    ledger.capacityRam - ledger.bootingRam < ledger.requiredRam ||
    ledger.activeCount < context.minimum
  );
}

export function scaleOutReason(context: DecideContext, ledger: Ledger): string {
  return ledger.activeCount < context.minimum
    ? `below the minimum of ${context.minimum} active servers`
    : context.sustainedHigh
      ? `load above the up-threshold for ${context.policy.sustainPeriods} periods`
      : "free headroom below the buffer for the projected load";
}

export function shortInputs(context: DecideContext, ledger: Ledger): Inputs {
  return {
    ...context.groupInputs,
    capacityCores: ledger.capacityCores,
    capacityRamGb: ledger.capacityRam,
    growableCores: ledger.growableCores,
    growableRamGb: ledger.growableRam,
    requiredCores: round(ledger.requiredCores),
    requiredRamGb: round(ledger.requiredRam),
    activeServers: ledger.activeCount,
  };
}

/** How full the policy keeps a server taking meetings: the up-thresholds less the headroom. */
export function targetUtilization(policy: Pick<ScalingPolicy, "thresholds" | "headroom">): { cpu: number; memory: number } {
  return { cpu: policy.thresholds.cpu.up * (1 - policy.headroom), memory: policy.thresholds.memory.up * (1 - policy.headroom) };
}

/** The period's context and opening ledger: demand now and projected, capacity taking meetings, room to grow. */
export function openLedger(
  snapshot: GroupSnapshot,
  policy: ScalingPolicy,
  history: PolicyHistory,
  now: number,
  sample: LoadSample,
): { context: DecideContext; ledger: Ledger } {
  const { cpu: targetCpu, memory: targetMemory } = targetUtilization(policy);
  const inServerCooldown = (server: ServerSnapshot) => {
    const last = lastActionAt(history, (_kind, id) => id === server.id);
    return last !== undefined && now - last < policy.cooldownSeconds.perServer * 1000;
  };
  // A start or resize still in flight: the server does not show it yet. Another resize now would race it.
  const hasActionInFlight = (server: ServerSnapshot) => {
    const last = lastActionAt(history, (kind, id) => id === server.id && (kind === "resize" || kind === "start"));
    if (last === undefined || now - last >= policy.cooldownSeconds.perServer * 1000) return false;
    return Math.max(server.bootedAt ?? -Infinity, server.resizedAt ?? -Infinity) < last;
  };
  const minimum = minimumAt(policy, now);
  const active = snapshot.servers.filter(takesMeetings);
  const draining = snapshot.servers.filter(isDraining);
  const stopped = snapshot.servers.filter((server) => server.power === "stopped");

  // Projected demand: the load now plus its rise over the lead time (boot time plus a period).
  const samples = [...history.samples.filter((past) => past.at < sample.at), sample];
  const cost = averageCostPerParticipant(snapshot.servers);
  // For scale-out a running server without fresh metrics (just enabled, or its node-exporter missed a scrape) is
  // estimated from its fresh meeting counts at what a participant costs on the others; without counts it counts as
  // loaded to the target. Either way missing data neither hides load nor adds capacity by itself, and the sample
  // counts the server as fully loaded, so it never looks idle to scale-in.
  const scaleOutDemand = (server: ServerSnapshot): Demand => {
    if (server.power === "booting") return { cores: 0, ramGb: 0 };
    const measured = measuredDemand(server);
    if (measured !== undefined) return measured;
    if (cost !== null && isFresh(server, "meetings", "participants")) {
      const participants = server.participants.value ?? 0;
      return {
        cores: Math.min(server.size.cores, participants * cost.cores),
        ramGb: Math.min(server.size.ramGb, participants * cost.ramGb),
      };
    }
    return { cores: server.size.cores * targetCpu, ramGb: server.size.ramGb * targetMemory };
  };
  let demandCores = 0;
  let demandRam = 0;
  for (const server of snapshot.servers) {
    if (!takesMeetings(server)) continue;
    const demand = scaleOutDemand(server);
    demandCores += demand.cores;
    demandRam += demand.ramGb;
  }
  // The load a week ago over the coming lead time: a school's bells repeat, so a lesson's load is known before its
  // joins come, and capacity can be up when they do (launched on the trend, it lands after the first joins, which
  // fill the servers already up). It also bounds the trend: a bell's first minutes are steep, and their trend
  // projects more joins than come, launching servers that then hold a few late meetings for the whole lesson. The
  // bound is last week's load plus the headroom: the capacity kept for the forecast already holds a lesson that much
  // bigger under the up-threshold, so a trend up to it adds nothing, and one beyond it is a burst, not evidence.
  // Last week's load is evidence as far as today bears it out: on a holiday the bells do not come, on a surge more
  // comes than last week saw. The forecast is scaled by how today's load compares with last week's over the minutes
  // just past (1 when they cannot be compared, as before the first bell).
  // Within a band around last week the forecast stands as recorded: the minutes just past (the end of one lesson)
  // say little about the size of the next, and scaled down, a slightly quieter morning would meet its bell short.
  const measured = forecastAgreement(history.forecast ?? [], samples, now, policy.defaultSize.cores);
  const agreement = measured > 1 / (1 - policy.headroom) ? Math.min(MAX_AGREEMENT, measured) : measured < QUIETER_DAY ? measured : 1;
  const recorded = forecastPeak(history.forecast ?? [], now, policy.leadTimeSeconds * 1000);
  // Two horizons: a launch lands after a boot (the lead time), a live resize within about a period. Each action is
  // sized for the load at the moment it lands, so the fast one covers the near rise without the boot's overshoot.
  // Without last week's load for the coming lead (the first week) nothing bounds the trend: it projects no faster
  // than its latest period (slowingRise), so the tail of a bell's joins does not launch servers that land after the
  // last of them. With the record the forecast bounds it, and a load outgrowing that (a surge) keeps its mean rate.
  const trend = recorded === null ? slowingRise : expectedRise;
  const rise = trend(samples, policy.sustainPeriods, policy.leadTimeSeconds * 1000, cost);
  const nearRise = trend(samples, policy.sustainPeriods, Math.min(policy.resizeLeadSeconds, policy.leadTimeSeconds) * 1000, cost);
  // Scaled up, a bell of last week grows by no more than today's extra load of the minutes just past plus the
  // headroom's share of it: long meetings running since (a project day) do not multiply the next lesson.
  const excess = agreement > 1 ? forecastExcess(history.forecast ?? [], samples, now) : { cores: 0, ramGb: 0 };
  const margin = 1 / (1 - policy.headroom);
  const scaled = (point: Demand | null): Demand | null =>
    point === null
      ? null
      : {
          cores: Math.min(point.cores * agreement, Math.max(point.cores, point.cores * margin + excess.cores)),
          ramGb: Math.min(point.ramGb * agreement, Math.max(point.ramGb, point.ramGb * margin + excess.ramGb)),
        };
  const forecast = scaled(recorded);
  const nearForecast = scaled(forecastPeak(history.forecast ?? [], now, Math.min(policy.resizeLeadSeconds, policy.leadTimeSeconds) * 1000));
  // Once today's load has outgrown that bound (an unscheduled surge: last week was calm), last week says nothing about
  // how far today's rise goes: the trend stands unbounded, as with no record at all.
  const bound = (now: number, recorded: number) => {
    const limit = recorded / (1 - policy.headroom);
    return now > limit ? Infinity : limit;
  };
  const trendLimitCores = forecast === null ? Infinity : bound(demandCores, forecast.cores);
  const trendLimitRam = forecast === null ? Infinity : bound(demandRam, forecast.ramGb);
  const projectedCores = Math.min(demandCores + rise.cores, trendLimitCores);
  const projectedRam = Math.min(demandRam + rise.ramGb, trendLimitRam);
  const nearProjectedCores = Math.min(demandCores + nearRise.cores, trendLimitCores);
  const nearProjectedRam = Math.min(demandRam + nearRise.ramGb, trendLimitRam);
  // Now the load keeps the headroom free; at the end of the lead time it stays under the up-threshold; the load
  // forecast for the lead time keeps the headroom free as the present load does.
  const requiredCores = Math.max(demandCores / targetCpu, projectedCores / policy.thresholds.cpu.up, (forecast?.cores ?? 0) / targetCpu);
  const requiredRam = Math.max(demandRam / targetMemory, projectedRam / policy.thresholds.memory.up, (forecast?.ramGb ?? 0) / targetMemory);
  const groupInputs: Inputs = {
    cpuUtilization: sample.cpuUtilization === null ? null : round(sample.cpuUtilization),
    memoryUtilization: sample.memoryUtilization === null ? null : round(sample.memoryUtilization),
    demandCores: round(demandCores),
    demandRamGb: round(demandRam),
    projectedCores: round(projectedCores),
    projectedRamGb: round(projectedRam),
    nearProjectedCores: round(nearProjectedCores),
    nearProjectedRamGb: round(nearProjectedRam),
    participants: sample.participants,
    forecastCores: forecast === null ? null : round(forecast.cores),
    forecastRamGb: forecast === null ? null : round(forecast.ramGb),
    forecastAgreement: round(agreement),
    minimum,
  };

  let capacityCores = 0;
  let capacityRam = 0;
  let bootingCores = 0;
  let bootingRam = 0;
  for (const server of active) {
    capacityCores += server.size.cores;
    capacityRam += server.size.ramGb;
    if (server.power === "booting") {
      bootingCores += server.size.cores;
      bootingRam += server.size.ramGb;
    }
  }
  // Running servers below the maximum size can still grow, and a resize lands before a launched server boots: a
  // launch is only for what they cannot hold at the maximum size. Growth itself waits until the near projection
  // needs it, so the room is taken only when the load comes.
  let growableCores = 0;
  let growableRam = 0;
  for (const server of active) {
    // A server with a resize in flight is growing to a size this period cannot see: count nothing more for it.
    if (server.power !== "running" || !isFresh(server, "cpu", "memory") || hasActionInFlight(server)) continue;
    growableCores += Math.max(0, policy.maxSize.cores - server.size.cores);
    growableRam += Math.max(0, policy.maxSize.ramGb - server.size.ramGb);
  }
  const recentSamples = samples.slice(-policy.sustainPeriods);
  const sustained = recentSamples.length >= policy.sustainPeriods;
  const sustainedHigh =
    sustained &&
    recentSamples.every(
      (past) => (past.cpuUtilization ?? 0) > policy.thresholds.cpu.up || (past.memoryUtilization ?? 0) > policy.thresholds.memory.up,
    );
  const context: DecideContext = {
    snapshot,
    policy,
    history,
    now,
    sample,
    minimum,
    active,
    draining,
    stopped,
    targetCpu,
    targetMemory,
    samples,
    recentSamples,
    sustained,
    sustainedHigh,
    nearProjectedCores,
    nearProjectedRam,
    agreement,
    nearForecast,
    groupInputs,
    scaleOutDemand,
    inServerCooldown,
    hasActionInFlight,
  };
  const ledger: Ledger = {
    capacityCores,
    capacityRam,
    bootingCores,
    bootingRam,
    growableCores,
    growableRam,
    requiredCores,
    requiredRam,
    activeCount: active.length,
    serverCount: snapshot.servers.length,
    launchBudget:
      policy.launchRate.count -
      history.actions.filter((action) => LAUNCH_KINDS.includes(action.kind) && now - action.at < policy.launchRate.perSeconds * 1000)
        .length,
    acted: new Set(),
    scaledOut: false,
  };
  return { context, ledger };
}
