import { isFresh } from "./readings.js";
import type { DecisionKind, ForecastPoint, GroupSnapshot, LoadSample, PolicyHistory, ServerSnapshot } from "./types.js";

export const LAUNCH_KINDS: readonly DecisionKind[] = ["start", "create"];
export const SCALE_OUT_KINDS: readonly DecisionKind[] = ["start", "create", "enable"];
export const SCALE_IN_KINDS: readonly DecisionKind[] = ["drain", "stop", "destroy"];

export interface Demand {
  cores: number;
  ramGb: number;
}

/** A server that takes meetings: running and not cordoned or disabled in Scalelite, or booting (it is enabled once up). */
export function takesMeetings(server: ServerSnapshot): boolean {
  if (server.warm === true) return false;
  return server.power === "booting" || (server.power === "running" && (server.scalelite === null || server.scalelite.state === "enabled"));
}

export function isDraining(server: ServerSnapshot): boolean {
  return server.warm !== true && server.power === "running" && server.scalelite !== null && server.scalelite.state !== "enabled";
}

/** Cores and GB in use by node-exporter's fresh reading; undefined when the metrics are not fresh. */
export function measuredDemand(server: ServerSnapshot): Demand | undefined {
  if (!isFresh(server, "cpu", "memory")) return undefined;
  return { cores: (server.cpu.value ?? 0) * server.size.cores, ramGb: (server.memory.value ?? 0) * server.size.ramGb };
}

/** The group's load this period, over the servers that take meetings; a server whose metrics are not fresh counts as fully loaded, so missing data never looks idle. */
export function sampleOf(snapshot: GroupSnapshot): LoadSample {
  const active = snapshot.servers.filter((server) => takesMeetings(server) && server.power === "running");
  if (active.length === 0) {
    return { at: snapshot.takenAt, cpuCores: null, memoryGb: null, cpuUtilization: null, memoryUtilization: null, participants: null };
  }
  const participants = active.every((server) => isFresh(server, "participants"))
    ? active.reduce((sum, server) => sum + (server.participants.value ?? 0), 0)
    : null;
  let cpuCores = 0;
  let memoryGb = 0;
  let cores = 0;
  let ramGb = 0;
  for (const server of active) {
    const demand = measuredDemand(server) ?? server.size;
    cpuCores += demand.cores;
    memoryGb += demand.ramGb;
    cores += server.size.cores;
    ramGb += server.size.ramGb;
  }
  return { at: snapshot.takenAt, cpuCores, memoryGb, cpuUtilization: cpuCores / cores, memoryUtilization: memoryGb / ramGb, participants };
}

/**
 * Cores and GB one participant costs on average, read this period from the running servers with fresh metrics and
 * meeting counts (their idle load included, so it errs high); null when none of them has a participant.
 */
export function averageCostPerParticipant(servers: readonly ServerSnapshot[]): Demand | null {
  let participants = 0;
  let cores = 0;
  let ramGb = 0;
  for (const server of servers) {
    const demand = measuredDemand(server);
    if (server.power !== "running" || demand === undefined || !isFresh(server, "participants")) continue;
    participants += server.participants.value ?? 0;
    cores += demand.cores;
    ramGb += demand.ramGb;
  }
  return participants > 0 ? { cores: cores / participants, ramGb: ramGb / participants } : null;
}

/**
 * How much CPU and memory demand will rise within `leadMs`, from the trend over the last `periods` samples.
 * Participants lead CPU and memory (users join before their streams load the server), so when they are known the
 * rise is their trend times the marginal cost of one participant: the group's load change per joined participant,
 * which ignores the idle load of servers that came online. That change also counts a server that joined the group
 * without metrics yet as fully loaded, which would make a handful of joins look like whole servers, so the marginal
 * cost is capped at the average cost measured this period (idle load included, a participant never costs more).
 * Otherwise each resource's own trend. Never negative: the trend only ever adds capacity early, scale-in waits for
 * measured load.
 */
export function expectedRise(samples: readonly LoadSample[], periods: number, leadMs: number, averageCost: Demand | null): Demand {
  const recent = samples.slice(-Math.max(2, periods));
  const first = recent[0];
  const last = recent[recent.length - 1];
  const none = { cores: 0, ramGb: 0 };
  if (first === undefined || last === undefined || last.at <= first.at) return none;
  if (first.cpuCores === null || last.cpuCores === null || first.memoryGb === null || last.memoryGb === null) return none;
  const elapsed = last.at - first.at;
  const risen = (from: number, to: number) => Math.max(0, ((to - from) / elapsed) * leadMs);
  if (first.participants !== null && last.participants !== null) {
    const joined = last.participants - first.participants;
    if (joined <= 0) return none;
    const comingParticipants = risen(first.participants, last.participants);
    const marginal = (change: number, average: number | undefined) => Math.min(Math.max(0, change / joined), average ?? Infinity);
    return {
      cores: comingParticipants * marginal(last.cpuCores - first.cpuCores, averageCost?.cores),
      ramGb: comingParticipants * marginal(last.memoryGb - first.memoryGb, averageCost?.ramGb),
    };
  }
  return { cores: risen(first.cpuCores, last.cpuCores), ramGb: risen(first.memoryGb, last.memoryGb) };
}

/**
 * expectedRise, projected no faster than the latest period rose: once a rise slows, the mean over `periods` still
 * carries its steepest minute. A bell's joins come in a burst that peaks and then tails off, and at the mean rate
 * the projection over a boot's lead time counts joins that never come. While the rise still quickens the mean is the
 * slower of the two and stands, so a rise is seen as early as before.
 */
export function slowingRise(samples: readonly LoadSample[], periods: number, leadMs: number, averageCost: Demand | null): Demand {
  const mean = expectedRise(samples, periods, leadMs, averageCost);
  const latest = expectedRise(samples, 2, leadMs, averageCost);
  return { cores: Math.min(mean.cores, latest.cores), ramGb: Math.min(mean.ramGb, latest.ramGb) };
}

/** The highest forecast load within the next `aheadMs`; null when nothing was recorded for that time. */
export function forecastPeak(forecast: readonly ForecastPoint[], now: number, aheadMs: number): Demand | null {
  const coming = forecast.filter((point) => point.at > now && point.at <= now + aheadMs);
  if (coming.length === 0) return null;
  return { cores: Math.max(...coming.map((point) => point.cpuCores)), ramGb: Math.max(...coming.map((point) => point.memoryGb)) };
}

/** How far back today's load is compared with last week's at the same minutes. */
export const AGREEMENT_WINDOW_MS = 15 * 60_000;

/**
 * How today's load compares with last week's over the minutes just past: the mean cores in use today over the
 * mean recorded a week before at the same minutes, each plus `damping` cores so that idle minutes (a few cores
 * either way) read as agreement. 1 without enough of either to compare. Below 1 on a day quieter than last week (a
 * holiday), above on a busier one (an unscheduled surge): a forecast is evidence only as far as today bears it out.
 */
export function forecastAgreement(
  forecast: readonly ForecastPoint[],
  samples: readonly LoadSample[],
  now: number,
  damping: number,
  windowMs = AGREEMENT_WINDOW_MS,
): number {
  const past = forecast.filter((point) => point.at <= now && point.at > now - windowMs);
  const recent = samples.filter((sample) => sample.at <= now && sample.at > now - windowMs && sample.cpuCores !== null);
  if (past.length < 3 || recent.length < 3) return 1;
  const mean = (values: readonly number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
  const today = mean(recent.map((sample) => sample.cpuCores ?? 0));
  const lastWeek = mean(past.map((point) => point.cpuCores));
  return (today + damping) / (lastWeek + damping);
}

/**
 * How much more load today carries than last week did over the minutes just past (today's mean minus last week's,
 * cores and GB, never negative); zero without enough of either to compare.
 */
export function forecastExcess(
  forecast: readonly ForecastPoint[],
  samples: readonly LoadSample[],
  now: number,
  windowMs = AGREEMENT_WINDOW_MS,
): Demand {
  const past = forecast.filter((point) => point.at <= now && point.at > now - windowMs);
  const recent = samples.filter((sample) => sample.at <= now && sample.at > now - windowMs && sample.cpuCores !== null);
  if (past.length < 3 || recent.length < 3) return { cores: 0, ramGb: 0 };
  const mean = (values: readonly number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
  return {
    cores: Math.max(0, mean(recent.map((sample) => sample.cpuCores ?? 0)) - mean(past.map((point) => point.cpuCores))),
    ramGb: Math.max(0, mean(recent.map((sample) => sample.memoryGb ?? 0)) - mean(past.map((point) => point.memoryGb))),
  };
}

/** How near a recorded minute of the forecast must lie to a moment to stand for it (the profile keeps one a minute). */
const SLOT_MS = 60_000;

/**
 * What the load profile keeps for `now`'s slot (see PolicyOutcome.profileLoad): today's load, unless today runs far
 * below last week's (`agreement` under `quieterDay`): then last week's own record of this minute, so that a holiday
 * never becomes the forecast of the ordinary day a week later. Null when neither is known.
 */
export function profileLoad(
  sample: LoadSample,
  forecast: readonly ForecastPoint[],
  now: number,
  agreement: number,
  quieterDay: number,
): { cpuCores: number; memoryGb: number } | null {
  if (agreement >= quieterDay) {
    return sample.cpuCores === null || sample.memoryGb === null ? null : { cpuCores: sample.cpuCores, memoryGb: sample.memoryGb };
  }
  let nearest: ForecastPoint | undefined;
  for (const point of forecast) {
    if (Math.abs(point.at - now) < SLOT_MS && (nearest === undefined || Math.abs(point.at - now) < Math.abs(nearest.at - now)))
      nearest = point;
  }
  return nearest === undefined ? null : { cpuCores: nearest.cpuCores, memoryGb: nearest.memoryGb };
}

export function lastActionAt(
  history: PolicyHistory,
  matches: (kind: DecisionKind, server: string | undefined, warm: boolean | undefined) => boolean,
): number | undefined {
  let latest: number | undefined;
  for (const action of history.actions) {
    if (matches(action.kind, action.server, action.warm) && (latest === undefined || action.at > latest)) latest = action.at;
  }
  return latest;
}

export function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

export function bySizeDescending(a: ServerSnapshot, b: ServerSnapshot): number {
  return b.size.cores - a.size.cores || b.size.ramGb - a.size.ramGb || a.id.localeCompare(b.id);
}
