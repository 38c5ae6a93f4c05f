import type { ServerSize, WorkerPolicy } from "../../infra/config.js";
import { inGrace, isFresh } from "./readings.js";
import type { PlacementChange, ServerSnapshot } from "./types.js";

/** How far steering moves a server's multiplier from its size's share, either way. */
export const STEERING_LIMIT = 2;
/** A multiplier within this fraction of its target is left alone: Scalelite is not rewritten for noise. */
const STEERING_TOLERANCE = 0.1;

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/**
 * A server's share by size alone: Scalelite places a meeting on the server of least load × multiplier, so a server
 * with twice the cores of the fleet's default size carries half the multiplier and takes twice the participants.
 */
export function sizeLoadMultiplier(defaultSize: ServerSize, size: ServerSize): number {
  return round(defaultSize.cores / size.cores);
}

/**
 * The Scalelite load multipliers to change this period. Scalelite counts participants; cameras cost far more CPU
 * than ears, so by head count alone the server that is busiest by CPU can still look least loaded and take the next
 * class. For each server that takes meetings and has fresh metrics and participants, its pressure (CPU or memory,
 * whichever is nearer its up-threshold) per participant, weighted by its size's share, is compared with the group's;
 * its multiplier is its size's share times that ratio, within a factor of STEERING_LIMIT; one above the up-threshold
 * gets the top of that range until it cools below the headroom line. A server without meetings,
 * or just booted or resized, goes back to its size's share; one whose readings are not fresh keeps its multiplier
 * until they are (a missed scrape is no reason to rewrite Scalelite twice). Pure: a snapshot in, changes out.
 */
export function placementChanges(servers: readonly ServerSnapshot[], policy: WorkerPolicy, now: number): PlacementChange[] {
  const placed = servers.filter(
    (server) => server.power === "running" && server.scaleliteStatus === "fresh" && server.scalelite?.state === "enabled",
  );
  const steerable = new Map<string, { pressure: number; weightedLoad: number }>();
  const unread = new Set<string>();
  for (const server of placed) {
    if (inGrace(server, policy, now) || (isFresh(server, "participants") && server.participants.value === 0)) continue;
    // BBB's participant count, not Scalelite's load: that is polled with the multiplier of its time, and read back
    // against a multiplier changed since, it would feed each change into the next.
    if (!isFresh(server, "cpu", "memory", "participants")) {
      unread.add(server.id);
      continue;
    }
    const participants = server.participants.value ?? 0;
    const pressure = Math.max((server.cpu.value ?? 0) / policy.thresholds.cpu.up, (server.memory.value ?? 0) / policy.thresholds.memory.up);
    // Participants weighted by the size's share: the load Scalelite would see unsteered.
    const weightedLoad = participants * sizeLoadMultiplier(policy.defaultSize, server.size);
    steerable.set(server.id, { pressure, weightedLoad });
  }
  let totalPressure = 0;
  let totalWeightedLoad = 0;
  for (const { pressure, weightedLoad } of steerable.values()) {
    totalPressure += pressure;
    totalWeightedLoad += weightedLoad;
  }
  const groupCost = totalWeightedLoad > 0 ? totalPressure / totalWeightedLoad : 0;

  const changes: PlacementChange[] = [];
  for (const server of [...placed].sort((a, b) => a.id.localeCompare(b.id))) {
    if (unread.has(server.id)) continue;
    const current = server.scalelite?.loadMultiplier ?? 1;
    const share = sizeLoadMultiplier(policy.defaultSize, server.size);
    const measured = steerable.get(server.id);
    let target = share;
    let factor = 1;
    // A server above the up-threshold looks as full as steering can make it, and stays so until it cools below the
    // headroom line (its multiplier at the top of the range is the memory of that): its meetings only grow, and a
    // new class on it would push it over the overload line, whatever its head count says.
    const wasHot = current >= share * STEERING_LIMIT - 0.001;
    const hot = measured !== undefined && (measured.pressure > 1 || (wasHot && measured.pressure > 1 - policy.headroom));
    if (hot) {
      factor = STEERING_LIMIT;
      target = round(share * factor);
    } else if (measured !== undefined && groupCost > 0) {
      factor = Math.min(STEERING_LIMIT, Math.max(1 / STEERING_LIMIT, measured.pressure / measured.weightedLoad / groupCost));
      // Past the headroom line a server never looks lighter than its size: a bell's meetings land within minutes,
      // before the next reading, and invited onto it they would take it over the up-threshold.
      if (measured.pressure > 1 - policy.headroom) factor = Math.max(1, factor);
      target = round(share * factor);
    }
    if (Math.abs(target - current) <= STEERING_TOLERANCE * target) continue;
    changes.push({
      server: server.id,
      loadMultiplier: target,
      reason:
        measured === undefined
          ? "no meetings, or just booted or resized: back to its size's share"
          : hot
            ? "above the up-threshold: looks full to Scalelite until it cools"
            : factor > 1
              ? "busier by CPU or memory than its participants show: fewer new meetings"
              : "less busy by CPU or memory than its participants show: more new meetings",
      inputs: {
        cpu: server.cpu.value,
        memory: server.memory.value,
        participants: server.participants.value,
        currentMultiplier: current,
        sizeShare: share,
        factor: round(factor),
      },
      dryRun: policy.dryRun,
    });
  }
  return changes;
}
