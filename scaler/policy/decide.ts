import type { ServerSize, WorkerPolicy } from "../../infra/config.js";
import { placementChanges } from "./placement.js";
import { inGrace, isFresh } from "./readings.js";
import { minimumAt } from "./timeWindows.js";
import type {
  Decision,
  DecisionKind,
  ForecastPoint,
  GroupSnapshot,
  Hold,
  LoadSample,
  PolicyHistory,
  PolicyOutcome,
  ServerSnapshot,
} from "./types.js";

const LAUNCH_KINDS: readonly DecisionKind[] = ["start", "create"];
const SCALE_OUT_KINDS: readonly DecisionKind[] = ["start", "create", "enable"];
const SCALE_IN_KINDS: readonly DecisionKind[] = ["drain", "stop", "destroy"];

type Inputs = Record<string, number | null>;

/** A server that takes meetings: running and not cordoned or disabled in Scalelite, or booting (it is enabled once up). */
function takesMeetings(server: ServerSnapshot): boolean {
  return server.power === "booting" || (server.power === "running" && (server.scalelite === null || server.scalelite.state === "enabled"));
}

function isDraining(server: ServerSnapshot): boolean {
  return server.power === "running" && server.scalelite !== null && server.scalelite.state !== "enabled";
}

interface Demand {
  cores: number;
  ramGb: number;
}

/** Cores and GB in use by node-exporter's fresh reading; undefined when the metrics are not fresh. */
function measuredDemand(server: ServerSnapshot): Demand | undefined {
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
function averageCostPerParticipant(servers: readonly ServerSnapshot[]): Demand | null {
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
function expectedRise(samples: readonly LoadSample[], periods: number, leadMs: number, averageCost: Demand | null): Demand {
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

/** The highest forecast load within the next `aheadMs`; null when nothing was recorded for that time. */
function forecastPeak(forecast: readonly ForecastPoint[], now: number, aheadMs: number): Demand | null {
  const coming = forecast.filter((point) => point.at > now && point.at <= now + aheadMs);
  if (coming.length === 0) return null;
  return { cores: Math.max(...coming.map((point) => point.cpuCores)), ramGb: Math.max(...coming.map((point) => point.memoryGb)) };
}

function lastActionAt(history: PolicyHistory, matches: (kind: DecisionKind, server: string | undefined) => boolean): number | undefined {
  let latest: number | undefined;
  for (const action of history.actions) {
    if (matches(action.kind, action.server) && (latest === undefined || action.at > latest)) latest = action.at;
  }
  return latest;
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function bySizeDescending(a: ServerSnapshot, b: ServerSnapshot): number {
  return b.size.cores - a.size.cores || b.size.ramGb - a.size.ramGb || a.id.localeCompare(b.id);
}

/**
 * Decides what the group should do now. Pure: the same snapshot, policy, history and `now` (ms since epoch)
 * always give the same decisions, in the same order.
 */
export function decide(snapshot: GroupSnapshot, policy: WorkerPolicy, history: PolicyHistory, now: number): PolicyOutcome {
  const sample = sampleOf(snapshot);
  const decisions: Decision[] = [];
  const holds: Hold[] = [];
  if (policy.paused) {
    holds.push({ reason: "paused: no decisions until resumed", inputs: {} });
    return { at: now, group: snapshot.group, sample, decisions, placement: [], holds };
  }
  const placement = placementChanges(snapshot.servers, policy, now);
  const outcome = (): PolicyOutcome => ({ at: now, group: snapshot.group, sample, decisions, placement, holds });
  const add = (decision: Omit<Decision, "dryRun">) => decisions.push({ ...decision, dryRun: policy.dryRun });

  const targetCpu = policy.thresholds.cpu.up * (1 - policy.headroom);
  const targetMemory = policy.thresholds.memory.up * (1 - policy.headroom);
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
  // Two horizons: a launch lands after a boot (the lead time), a live resize within about a period. Each action is
  // sized for the load at the moment it lands, so the fast one covers the near rise without the boot's overshoot.
  const rise = expectedRise(samples, policy.sustainPeriods, policy.leadTimeSeconds * 1000, cost);
  const nearRise = expectedRise(samples, policy.sustainPeriods, Math.min(policy.resizeLeadSeconds, policy.leadTimeSeconds) * 1000, cost);
  // The load a week ago over the coming lead time: a school's bells repeat, so a lesson's load is known before its
  // joins come, and capacity can be up when they do (launched on the trend, it lands after the first joins, which
  // fill the servers already up). It also bounds the trend: a bell's first minutes are steep, and their trend
  // projects more joins than come, launching servers that then hold a few late meetings for the whole lesson. The
  // bound is last week's load plus the headroom: the capacity kept for the forecast already holds a lesson that much
  // bigger under the up-threshold, so a trend up to it adds nothing, and one beyond it is a burst, not evidence.
  const forecast = forecastPeak(history.forecast ?? [], now, policy.leadTimeSeconds * 1000);
  const trendLimitCores = forecast === null ? Infinity : Math.max(demandCores, forecast.cores / (1 - policy.headroom));
  const trendLimitRam = forecast === null ? Infinity : Math.max(demandRam, forecast.ramGb / (1 - policy.headroom));
  const projectedCores = Math.min(demandCores + rise.cores, trendLimitCores);
  const projectedRam = Math.min(demandRam + rise.ramGb, trendLimitRam);
  const nearProjectedCores = Math.min(demandCores + nearRise.cores, trendLimitCores);
  const nearProjectedRam = Math.min(demandRam + nearRise.ramGb, trendLimitRam);
  // Now the load keeps the headroom free; at the end of the lead time it stays under the up-threshold; the load
  // forecast for the lead time keeps the headroom free as the present load does.
  let requiredCores = Math.max(demandCores / targetCpu, projectedCores / policy.thresholds.cpu.up, (forecast?.cores ?? 0) / targetCpu);
  let requiredRam = Math.max(demandRam / targetMemory, projectedRam / policy.thresholds.memory.up, (forecast?.ramGb ?? 0) / targetMemory);
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
  const acted = new Set<string>();

  // Vertical growth: a server whose load projected to when a resize lands crosses the up-threshold goes to the
  // maximum size in one step, as a launch does. Grown only as far as the projection asks, it would be at the
  // threshold again after a few more meetings, and a bell's next meetings would find it short of cores or memory
  // before a second resize lands. Scalelite sends new meetings to the least loaded servers, so each server's share of
  // the rise follows its size.
  const projectedCpuUtilization = capacityCores > 0 ? nearProjectedCores / capacityCores : 0;
  const projectedMemoryUtilization = capacityRam > 0 ? nearProjectedRam / capacityRam : 0;
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
  for (const server of [...active].sort((a, b) => a.id.localeCompare(b.id))) {
    if (!isFresh(server, "cpu", "memory")) continue;
    const { cores, ramGb } = server.size;
    const loadCores = Math.max(server.cpu.value ?? 0, projectedCpuUtilization) * cores;
    const loadRam = Math.max(server.memory.value ?? 0, projectedMemoryUtilization) * ramGb;
    if (loadCores <= policy.thresholds.cpu.up * cores && loadRam <= policy.thresholds.memory.up * ramGb) continue;
    const targetSize: ServerSize = { cores: Math.max(cores, policy.maxSize.cores), ramGb: Math.max(ramGb, policy.maxSize.ramGb) };
    const inputs: Inputs = {
      ...groupInputs,
      cpu: round(server.cpu.value ?? 0),
      memory: round(server.memory.value ?? 0),
      projectedServerCores: round(loadCores),
      projectedServerRamGb: round(loadRam),
    };
    if (targetSize.cores === cores && targetSize.ramGb === ramGb) continue;
    // Growing is the safe direction, so grace does not hold it back; only a start or resize still in flight does.
    if (server.power !== "running" || hasActionInFlight(server)) {
      holds.push({ reason: "grow held: a start or resize of this server is still in flight", server: server.id, inputs });
      continue;
    }
    add({
      kind: "resize",
      server: server.id,
      targetSize,
      reason: `projected load over the up-threshold: grow to ${targetSize.cores} cores / ${targetSize.ramGb} GB`,
      inputs,
    });
    acted.add(server.id);
    capacityCores += targetSize.cores - cores;
    capacityRam += targetSize.ramGb - ramGb;
    growableCores -= targetSize.cores - cores;
    growableRam -= targetSize.ramGb - ramGb;
  }

  // Horizontal scale-out: too little capacity for the projected load, a sustained high load, or below the minimum.
  const recentSamples = samples.slice(-policy.sustainPeriods);
  const sustained = recentSamples.length >= policy.sustainPeriods;
  const sustainedHigh =
    sustained &&
    recentSamples.every(
      (past) => (past.cpuUtilization ?? 0) > policy.thresholds.cpu.up || (past.memoryUtilization ?? 0) > policy.thresholds.memory.up,
    );
  let activeCount = active.length;
  const short = () => capacityCores + growableCores < requiredCores || capacityRam + growableRam < requiredRam || activeCount < minimum;
  const scaleOutReason = () =>
    activeCount < minimum
      ? `below the minimum of ${minimum} active servers`
      : sustainedHigh
        ? `load above the up-threshold for ${policy.sustainPeriods} periods`
        : "free headroom below the buffer for the projected load";
  let scaledOut = false;
  const shortInputs = (): Inputs => ({
    ...groupInputs,
    capacityCores,
    capacityRamGb: capacityRam,
    growableCores,
    growableRamGb: growableRam,
    requiredCores: round(requiredCores),
    requiredRamGb: round(requiredRam),
    activeServers: activeCount,
  });

  // Booting servers count against launching more, but take no meeting yet: a server that is up and waiting
  // (registered disabled, or draining) is enabled as soon as the servers taking meetings are short. The one with the
  // most meetings first: it stays up for them anyway, and the more it holds, the likelier one of them runs long (a
  // double lesson), while one with few is about to empty and stop.
  const shortNow = () => capacityCores - bootingCores < requiredCores || capacityRam - bootingRam < requiredRam || activeCount < minimum;
  const lingersLongest = (a: ServerSnapshot, b: ServerSnapshot) =>
    (b.meetings.value ?? 0) - (a.meetings.value ?? 0) || bySizeDescending(a, b);
  for (const server of [...draining].sort(lingersLongest)) {
    if (!shortNow()) break;
    add({ kind: "enable", server: server.id, reason: `${scaleOutReason()}: take a draining server back`, inputs: shortInputs() });
    acted.add(server.id);
    scaledOut = true;
    const demand = scaleOutDemand(server);
    capacityCores += server.size.cores;
    capacityRam += server.size.ramGb;
    requiredCores += demand.cores / targetCpu;
    requiredRam += demand.ramGb / targetMemory;
    activeCount += 1;
  }

  const launchWindowMs = policy.launchRate.perSeconds * 1000;
  let launchBudget =
    policy.launchRate.count -
    history.actions.filter((action) => LAUNCH_KINDS.includes(action.kind) && now - action.at < launchWindowMs).length;
  let serverCount = snapshot.servers.length;
  // A launch for capacity comes up at the maximum size (a stopped server is resized before power-on): fewer, larger
  // servers carry less idle overhead and need no resize later. A launch only for the minimum keeps its size.
  const launch = (kind: "start" | "create", current: ServerSize, server?: string) => {
    const forCapacity = capacityCores + growableCores < requiredCores || capacityRam + growableRam < requiredRam;
    const size = forCapacity ? policy.maxSize : current;
    const resized = size.cores !== current.cores || size.ramGb !== current.ramGb;
    add({
      kind,
      ...(server === undefined ? {} : { server }),
      ...(server === undefined || resized ? { targetSize: size } : {}),
      reason: scaleOutReason(),
      inputs: { ...shortInputs(), launchBudget },
    });
    if (server !== undefined) acted.add(server);
    scaledOut = true;
    launchBudget -= 1;
    capacityCores += size.cores;
    capacityRam += size.ramGb;
    activeCount += 1;
  };
  for (const server of [...stopped].sort(bySizeDescending)) {
    if (!short() || launchBudget <= 0) break;
    launch("start", server.size, server.id);
  }
  while (short() && launchBudget > 0 && serverCount < policy.max) {
    launch("create", policy.defaultSize);
    serverCount += 1;
  }
  if (short()) {
    const limit =
      launchBudget <= 0
        ? `launch rate limit (${policy.launchRate.count} per ${policy.launchRate.perSeconds} s)`
        : `maximum of ${policy.max} servers`;
    holds.push({ reason: `still short of capacity: ${limit} reached`, inputs: shortInputs() });
  }

  // A launch the projection no longer needs is called off before the server lands: once it takes meetings it is held
  // for their whole length. A bell's burst of joins is steep for a minute or two, and its trend then projects more
  // joins than come; the next periods see the rise level off. Only when nothing was launched this period. A booting
  // server is not enabled in Scalelite yet, so no meeting can be on it (and the actuator asks BBB before a stop).
  if (!scaledOut) {
    const booting = active
      .filter(
        (server) =>
          server.power === "booting" && (server.meetings.value ?? 0) === 0 && (server.scalelite === null || server.scalelite.load === 0),
      )
      .sort(bySizeDescending);
    for (const server of booting) {
      const remainingCores = capacityCores - server.size.cores;
      const remainingRam = capacityRam - server.size.ramGb;
      if (activeCount - 1 < minimum || remainingCores < requiredCores || remainingRam < requiredRam) break;
      add({
        kind: snapshot.canPowerOff ? "stop" : "destroy",
        server: server.id,
        reason: "launch no longer needed: the capacity taking meetings holds the projected load",
        inputs: { ...shortInputs(), remainingCores, remainingRamGb: remainingRam },
      });
      acted.add(server.id);
      capacityCores = remainingCores;
      capacityRam = remainingRam;
      activeCount -= 1;
    }
  }

  // Draining servers that emptied: stop or destroy them (never while a meeting is on them, by BBB's or Scalelite's count).
  for (const server of [...draining].sort((a, b) => a.id.localeCompare(b.id))) {
    if (acted.has(server.id) || inGrace(server, policy, now)) continue;
    const emptied =
      isFresh(server, "meetings") && server.meetings.value === 0 && server.scaleliteStatus === "fresh" && server.scalelite?.load === 0;
    const inputs: Inputs = { meetings: server.meetings.value, scaleliteLoad: server.scalelite?.load ?? null };
    if (!emptied) {
      holds.push({ reason: "draining: waiting for its meetings to end", server: server.id, inputs });
      continue;
    }
    add({ kind: snapshot.canPowerOff ? "stop" : "destroy", server: server.id, reason: "drained and empty", inputs });
    acted.add(server.id);
  }

  if (scaledOut || decisions.some((decision) => decision.kind === "resize")) return outcome();

  // Scale-in: only on a sustained low load measured on fresh data, outside the cooldowns.
  const sustainedLow =
    sustained &&
    recentSamples.every(
      (past) =>
        past.cpuUtilization !== null &&
        past.memoryUtilization !== null &&
        past.cpuUtilization < policy.thresholds.cpu.down &&
        past.memoryUtilization < policy.thresholds.memory.down,
    );
  if (!sustainedLow) return outcome();
  const lastScaleOut = lastActionAt(history, (kind) => SCALE_OUT_KINDS.includes(kind));
  const lastScaleIn = lastActionAt(history, (kind) => SCALE_IN_KINDS.includes(kind));
  if (lastScaleOut !== undefined && now - lastScaleOut < policy.cooldownSeconds.afterScaleOut * 1000) {
    holds.push({
      reason: "scale-in held: cooldown after a scale-out",
      inputs: { ...groupInputs, secondsSinceScaleOut: (now - lastScaleOut) / 1000 },
    });
    return outcome();
  }
  if (lastScaleIn !== undefined && now - lastScaleIn < policy.cooldownSeconds.afterScaleIn * 1000) {
    holds.push({
      reason: "scale-in held: cooldown after a scale-in",
      inputs: { ...groupInputs, secondsSinceScaleIn: (now - lastScaleIn) / 1000 },
    });
    return outcome();
  }

  const candidates = active.filter(
    (server) =>
      server.power === "running" &&
      !inGrace(server, policy, now) &&
      !inServerCooldown(server) &&
      isFresh(server, "cpu", "memory", "meetings", "participants") &&
      server.scaleliteStatus === "fresh",
  );
  // Victims: servers without meetings first, then the ones whose youngest meeting is oldest (a drained server runs
  // until its last meeting ends, so it empties and stops soonest), then the least loaded.
  const newest = (server: ServerSnapshot) => server.newestMeetingAt ?? Infinity;
  candidates.sort(
    (a, b) =>
      Number((a.meetings.value ?? 0) > 0) - Number((b.meetings.value ?? 0) > 0) ||
      newest(a) - newest(b) ||
      (a.participants.value ?? 0) - (b.participants.value ?? 0) ||
      (a.cpu.value ?? 0) - (b.cpu.value ?? 0) ||
      a.id.localeCompare(b.id),
  );
  const kept: ServerSnapshot[] = [];
  for (const server of candidates) {
    const remainingCores = capacityCores - server.size.cores;
    const remainingRam = capacityRam - server.size.ramGb;
    const inputs: Inputs = {
      ...groupInputs,
      cpu: round(server.cpu.value ?? 0),
      memory: round(server.memory.value ?? 0),
      meetings: server.meetings.value,
      participants: server.participants.value,
      activeServers: activeCount,
      remainingCores,
      remainingRamGb: remainingRam,
    };
    if (activeCount - 1 < minimum || remainingCores < requiredCores || remainingRam < requiredRam) {
      kept.push(server);
      continue;
    }
    const empty = server.meetings.value === 0 && (server.scalelite === null || server.scalelite.load === 0);
    if (server.scalelite === null && empty) {
      add({
        kind: snapshot.canPowerOff ? "stop" : "destroy",
        server: server.id,
        reason: "load below the down-threshold; not registered in Scalelite and empty",
        inputs,
      });
    } else {
      add({
        kind: "drain",
        server: server.id,
        reason: `load below the down-threshold for ${policy.sustainPeriods} periods: cordon, stop once empty`,
        inputs,
      });
    }
    capacityCores = remainingCores;
    capacityRam = remainingRam;
    activeCount -= 1;
  }

  // Vertical shrink: an oversized server without meetings goes back to the default size (the actuator drains it first).
  // Not while a time window raises the minimum: the operator expects load then, and the next bell would land on the
  // small server a resize too early (a break between lessons looks idle).
  for (const server of minimum > policy.min ? [] : kept) {
    const { cores, ramGb } = server.size;
    const oversized = cores > policy.defaultSize.cores || ramGb > policy.defaultSize.ramGb;
    const empty = server.meetings.value === 0 && (server.scalelite === null || server.scalelite.load === 0);
    if (!oversized || !empty) continue;
    const targetSize: ServerSize = { cores: Math.min(cores, policy.defaultSize.cores), ramGb: Math.min(ramGb, policy.defaultSize.ramGb) };
    const remainingCores = capacityCores - cores + targetSize.cores;
    const remainingRam = capacityRam - ramGb + targetSize.ramGb;
    if (remainingCores < requiredCores || remainingRam < requiredRam) continue;
    add({
      kind: "resize",
      server: server.id,
      targetSize,
      reason: `load below the down-threshold and no meetings: shrink to ${targetSize.cores} cores / ${targetSize.ramGb} GB through drain`,
      inputs: {
        ...groupInputs,
        cpu: round(server.cpu.value ?? 0),
        memory: round(server.memory.value ?? 0),
        meetings: 0,
        remainingCores,
        remainingRamGb: remainingRam,
      },
    });
    capacityCores = remainingCores;
    capacityRam = remainingRam;
  }
  return outcome();
}
