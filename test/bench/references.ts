/**
 * What the bench compares the scalers with: a lower bound no fleet reaches, an achievable reference that knows the
 * whole day but obeys every rule a scaler must, and the cost of the operator's window minimums alone.
 */
import type { ServerSize, WorkerPolicy } from "../../infra/config.js";
import { minimumOf } from "./calendar.js";
import type { Decision } from "../../scaler/policy/types.js";
import {
  CREATE_MINUTES,
  MINUTE_MS,
  START_MINUTES,
  emptyResult,
  takesMeetings,
  type Day,
  type Result,
  type Scaler,
  type SimMeeting,
  type SimServer,
} from "./fleet-sim.js";
import { IDLE_DEMAND, OVERLOAD_UTILIZATION, meetingDemand, serverDemand, type Demand } from "./load-model.js";

/** Each minute's running meetings' total demand. */
function demandByMinute(day: Day): Demand[] {
  return Array.from({ length: day.minutes }, (_, minute) => {
    const total: Demand = { cores: 0, ramGb: 0 };
    for (const meeting of day.meetings) {
      if (meeting.startSecond > minute * 60 || meeting.endSecond <= minute * 60) continue;
      const demand = meetingDemand(meeting);
      total.cores += demand.cores;
      total.ramGb += demand.ramGb;
    }
    return total;
  });
}

/**
 * A lower bound, not a schedule: each minute the load pooled onto exactly as many max-size servers as it needs at the
 * overload line (at least `min`), with no boot time, no window minimum, no `max`, meetings split across servers at
 * will. Pooled under the line, no server of it is ever overloaded.
 */
export function lowerBound(day: Day, policy: WorkerPolicy): Result {
  const usableCores = OVERLOAD_UTILIZATION * policy.maxSize.cores - IDLE_DEMAND.cores;
  const usableRam = OVERLOAD_UTILIZATION * policy.maxSize.ramGb - IDLE_DEMAND.ramGb;
  const result = emptyResult("lower bound (pooled)");
  for (const demand of demandByMinute(day)) {
    const servers = Math.max(policy.min, Math.ceil(demand.cores / usableCores), Math.ceil(demand.ramGb / usableRam));
    result.serverHours += servers / 60;
    result.coreHours += (servers * policy.maxSize.cores) / 60;
    result.ramGbHours += (servers * policy.maxSize.ramGb) / 60;
    result.peakServers = Math.max(result.peakServers, servers);
  }
  return result;
}

/** Core-hours of the window minimums alone: each minute, the minimum the operator set, at the default size. */
export function windowMinimumCoreHours(day: Day, policy: WorkerPolicy): number {
  let coreMinutes = 0;
  for (let minute = 0; minute < day.minutes; minute += 1)
    coreMinutes += minimumOf(policy, day.startMs + minute * MINUTE_MS) * policy.defaultSize.cores;
  return coreMinutes / 60;
}

/** How full the reference packs a server: the overload line, or a lower one (the operator's up-thresholds, less the headroom or not). */
export interface PackingLine {
  cpu: number;
  memory: number;
}

const OVERLOAD_LINE: PackingLine = { cpu: OVERLOAD_UTILIZATION, memory: OVERLOAD_UTILIZATION };

/** The fullest server (by CPU or memory) a meeting fits on under `line`; if none, the one it loads least. */
export function bestFit(meeting: SimMeeting, servers: readonly SimServer[], line: PackingLine = OVERLOAD_LINE): SimServer | undefined {
  const demand = meetingDemand(meeting);
  let best: SimServer | undefined;
  let bestScore = -Infinity;
  for (const server of servers) {
    if (!takesMeetings(server)) continue;
    const current = serverDemand(server.meetings.values());
    const cpu = (current.cores + demand.cores) / server.size.cores;
    const memory = (current.ramGb + demand.ramGb) / server.size.ramGb;
    const after = Math.max(cpu / line.cpu, memory / line.memory);
    // Fitting servers score by fullness; ones it would take past the line rank below all of them, the least loaded first.
    const score = after <= 1 ? after : -after;
    if (score > bestScore) {
      best = server;
      bestScore = score;
    }
  }
  return best;
}

/** The plan: which of `max` max-size servers each meeting goes to by best fit, and how many hold meetings each minute. */
function plan(day: Day, policy: WorkerPolicy, line: PackingLine): { needed: number[]; slotOf: Map<number, number> } {
  const pool = Array.from({ length: policy.max }, (_, index): SimServer => ({
    id: String(index),
    size: policy.maxSize,
    power: "running",
    readyAtMinute: 0,
    bootedAt: 0,
    resizedAt: null,
    state: "enabled",
    loadMultiplier: 1,
    meetings: new Map(),
  }));
  const needed: number[] = [];
  const slotOf = new Map<number, number>();
  let next = 0;
  for (let minute = 0; minute < day.minutes; minute += 1) {
    for (const server of pool) {
      for (const [id, meeting] of server.meetings) if (meeting.endSecond <= minute * 60) server.meetings.delete(id);
    }
    while (next < day.meetings.length && (day.meetings[next]?.startSecond ?? Infinity) <= minute * 60) {
      const meeting = day.meetings[next] as SimMeeting;
      next += 1;
      const server = bestFit(meeting, pool, line);
      server?.meetings.set(meeting.id, meeting);
      if (server !== undefined) slotOf.set(meeting.id, Number(server.id));
    }
    needed.push(pool.filter((server) => server.meetings.size > 0).length);
  }
  return { needed, slotOf };
}

/** The highest of `values` from `from` over the next `span` entries (the last value stands for the time after). */
function peakAhead(values: readonly number[], from: number, span: number): number {
  let peak = 0;
  for (let index = from; index <= from + span; index += 1) peak = Math.max(peak, values[Math.min(index, values.length - 1)] ?? 0);
  return peak;
}

/**
 * `values` raised so that a rise the launch rate cannot make in time is begun early enough: at most `count` launches
 * within any `perMinutes`.
 */
function rateSmoothed(values: readonly number[], count: number, perMinutes: number, horizon = 120): number[] {
  return values.map((value, minute) => {
    let needed = value;
    for (let ahead = 1; ahead <= horizon; ahead += 1) {
      needed = Math.max(needed, (values[Math.min(minute + ahead, values.length - 1)] ?? 0) - count * Math.ceil(ahead / perMinutes));
    }
    return needed;
  });
}

const isMax = (size: ServerSize, policy: WorkerPolicy) => size.cores >= policy.maxSize.cores && size.ramGb >= policy.maxSize.ramGb;

/**
 * The achievable reference: knows the whole day in advance, but obeys what a scaler must. It plans the max-size
 * servers the day's meetings need when it places each whole meeting itself by its true cost (best fit under the
 * overload line), keeps at least the window minimum running, and launches early enough for a start (START_MINUTES)
 * or, beyond the servers that exist, a create (CREATE_MINUTES), at most `launchRate` launches, never more than `max`
 * servers. Servers only there for the minimum run at the default size; an empty server it will not need again
 * within a start is stopped. Packed to a lower `line` than the overload line (the operator's up-thresholds, or those
 * less the headroom), it is what knowing the whole day buys a scaler that keeps every server under that line.
 */
export function achievableReference(
  policy: WorkerPolicy,
  day: Day,
  line: PackingLine = OVERLOAD_LINE,
  name = "achievable reference",
): Scaler {
  const { needed, slotOf } = plan(day, policy, line);
  /** The real server that plays each planned server, so that the day's meetings are packed as planned. */
  const playing = new Map<number, string>();
  const perMinutes = Math.max(1, Math.round(policy.launchRate.perSeconds / 60));
  const required = needed.map((count, minute) =>
    Math.min(policy.max, Math.max(count, minimumOf(policy, day.startMs + minute * MINUTE_MS))),
  );
  const powered = rateSmoothed(
    required.map((_, minute) => peakAhead(required, minute, START_MINUTES)),
    policy.launchRate.count,
    perMinutes,
  );
  // The servers that must exist: what must be powered by the time a create lands, begun early enough for the rate.
  const existing = rateSmoothed(
    powered.map((_, minute) => peakAhead(powered, minute, CREATE_MINUTES - START_MINUTES)),
    policy.launchRate.count,
    perMinutes,
  );
  const maxSized = needed.map((_, minute) => peakAhead(needed, minute, START_MINUTES));
  const launches: number[] = [];
  const command = (kind: Decision["kind"], reason: string, server?: string, targetSize?: ServerSize): Decision => ({
    kind,
    ...(server === undefined ? {} : { server }),
    ...(targetSize === undefined ? {} : { targetSize }),
    reason,
    inputs: {},
    dryRun: false,
  });
  return {
    name,
    intervalMinutes: 1,
    place(meeting, servers) {
      const slot = slotOf.get(meeting.id);
      if (slot === undefined) return bestFit(meeting, servers, line);
      const current = servers.find((server) => server.id === playing.get(slot));
      if (current !== undefined && takesMeetings(current) && isMax(current.size, policy)) return current;
      const taken = new Set(playing.values());
      const free =
        servers.find(
          (server) => takesMeetings(server) && isMax(server.size, policy) && server.meetings.size === 0 && !taken.has(server.id),
        ) ?? servers.find((server) => takesMeetings(server) && isMax(server.size, policy) && server.meetings.size === 0);
      if (free === undefined) return bestFit(meeting, servers, line);
      for (const [other, id] of playing) if (id === free.id) playing.delete(other);
      playing.set(slot, free.id);
      return free;
    },
    decide(servers, minute) {
      const decisions: Decision[] = [];
      let allowance = policy.launchRate.count - launches.filter((at) => at > minute - perMinutes).length;
      const launch = (decision: Decision) => {
        decisions.push(decision);
        launches.push(minute);
        allowance -= 1;
      };
      const live = servers.filter((server) => server.power !== "stopped");
      const sizeOf = (server: SimServer) => server.pendingResize?.size ?? server.size;
      let poweredCount = live.length;
      let maxCount = live.filter((server) => isMax(sizeOf(server), policy)).length;
      let count = servers.length;
      const wantPowered = powered[minute] ?? 0;
      const wantMax = maxSized[minute] ?? 0;
      // Creates for what the servers that exist cannot hold by the time a create lands.
      const wantExisting = Math.min(policy.max, existing[minute] ?? 0);
      while (count < wantExisting && allowance > 0) {
        const size = maxCount < peakAhead(maxSized, minute, CREATE_MINUTES) ? policy.maxSize : policy.defaultSize;
        launch(command("create", "needed when a create lands", undefined, size));
        count += 1;
        poweredCount += 1;
        if (isMax(size, policy)) maxCount += 1;
      }
      for (const server of servers) {
        if (poweredCount >= wantPowered || allowance <= 0) break;
        if (server.power !== "stopped") continue;
        const size = maxCount < wantMax ? policy.maxSize : policy.defaultSize;
        launch(command("start", "needed when a start lands", server.id, size));
        poweredCount += 1;
        if (isMax(size, policy)) maxCount += 1;
      }
      for (const server of live) {
        if (maxCount >= wantMax) break;
        if (server.power === "running" && !isMax(sizeOf(server), policy)) {
          decisions.push(command("resize", "grows for the coming load", server.id, policy.maxSize));
          maxCount += 1;
        }
      }
      const keepPowered = peakAhead(powered, minute, START_MINUTES + 1);
      const keepMax = peakAhead(maxSized, minute, START_MINUTES + 1);
      const empty = live
        .filter((server) => server.power === "running" && server.meetings.size === 0 && server.pendingResize === undefined)
        .sort((a, b) => b.size.cores - a.size.cores);
      for (const server of empty) {
        const big = isMax(server.size, policy);
        if (poweredCount > keepPowered && (!big || maxCount > keepMax)) {
          decisions.push(command("stop", "empty and not needed within a start", server.id));
          poweredCount -= 1;
          if (big) maxCount -= 1;
        } else if (big && maxCount > keepMax) {
          decisions.push(command("resize", "empty, kept for the minimum only", server.id, policy.defaultSize));
          maxCount -= 1;
        }
      }
      return { decisions, placement: [] };
    },
  };
}
