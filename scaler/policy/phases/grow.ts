import type { ServerSize } from "../../../infra/config.js";
import { decisionOf, withActed, type DecideContext, type Inputs, type Ledger, type PhaseResult } from "../ledger.js";
import { round } from "../load.js";
import { isFresh } from "../readings.js";
import type { Decision, Hold } from "../types.js";

/**
 * Vertical growth: a server whose load projected to when a resize lands crosses the up-threshold goes to the maximum
 * size in one step, as a launch does. Grown only as far as the projection asks, it would be at the threshold again
 * after a few more meetings, and a bell's next meetings would find it short of cores or memory before a second resize
 * lands. Scalelite sends new meetings to the least loaded servers, so each server's share of the rise follows its size.
 */
export function grow(context: DecideContext, opening: Ledger): PhaseResult {
  const { policy } = context;
  const projectedCpuUtilization = opening.capacityCores > 0 ? context.nearProjectedCores / opening.capacityCores : 0;
  const projectedMemoryUtilization = opening.capacityRam > 0 ? context.nearProjectedRam / opening.capacityRam : 0;
  let ledger = opening;
  const decisions: Decision[] = [];
  const holds: Hold[] = [];
  for (const server of [...context.active].sort((a, b) => a.id.localeCompare(b.id))) {
    if (!isFresh(server, "cpu", "memory")) continue;
    const { cores, ramGb } = server.size;
    const loadCores = Math.max(server.cpu.value ?? 0, projectedCpuUtilization) * cores;
    const loadRam = Math.max(server.memory.value ?? 0, projectedMemoryUtilization) * ramGb;
    if (loadCores <= policy.thresholds.cpu.up * cores && loadRam <= policy.thresholds.memory.up * ramGb) continue;
    const targetSize: ServerSize = { cores: Math.max(cores, policy.maxSize.cores), ramGb: Math.max(ramGb, policy.maxSize.ramGb) };
    const inputs: Inputs = {
      ...context.groupInputs,
      cpu: round(server.cpu.value ?? 0),
      memory: round(server.memory.value ?? 0),
      projectedServerCores: round(loadCores),
      projectedServerRamGb: round(loadRam),
    };
    if (targetSize.cores === cores && targetSize.ramGb === ramGb) continue;
    // Growing is the safe direction, so grace does not hold it back; only a start or resize still in flight does.
    if (server.power !== "running" || context.hasActionInFlight(server)) {
      holds.push({ reason: "grow held: a start or resize of this server is still in flight", server: server.id, inputs });
      continue;
    }
    decisions.push(
      decisionOf(context, {
        kind: "resize",
        server: server.id,
        targetSize,
        reason: `projected load over the up-threshold: grow to ${targetSize.cores} cores / ${targetSize.ramGb} GB`,
        inputs,
      }),
    );
    ledger = withActed(ledger, server.id, {
      capacityCores: ledger.capacityCores + targetSize.cores - cores,
      capacityRam: ledger.capacityRam + targetSize.ramGb - ramGb,
      growableCores: ledger.growableCores - (targetSize.cores - cores),
      growableRam: ledger.growableRam - (targetSize.ramGb - ramGb),
    });
  }
  const forecastGrowth = growForForecast(context, ledger);
  return { ledger: forecastGrowth.ledger, decisions: [...decisions, ...forecastGrowth.decisions], holds };
}

/**
 * Last week's bell within the resize lead: running servers below the maximum size grow, busiest first, until the
 * capacity keeps the headroom free for it, when growth in place can. The trend sees a bell only once its joins come, and a server shrunk in a
 * break between lessons (shrink.ts) must be large again when they do.
 */
function growForForecast(context: DecideContext, opening: Ledger): { ledger: Ledger; decisions: Decision[] } {
  const { policy, nearForecast } = context;
  let ledger = opening;
  const decisions: Decision[] = [];
  if (nearForecast === null) return { ledger, decisions };
  // Booting servers may land after the bell's first meetings, which then go to the servers taking meetings now.
  const covered = () =>
    (ledger.capacityCores - ledger.bootingCores) * context.targetCpu >= nearForecast.cores &&
    (ledger.capacityRam - ledger.bootingRam) * context.targetMemory >= nearForecast.ramGb;
  // A bell that growth in place cannot hold is launched for first (launch.ts counts the room to grow); the servers
  // grow once the launches are counted.
  const roomy =
    (ledger.capacityCores + ledger.growableCores) * context.targetCpu >= nearForecast.cores &&
    (ledger.capacityRam + ledger.growableRam) * context.targetMemory >= nearForecast.ramGb;
  if (!roomy) return { ledger, decisions };
  const growable = context.active
    .filter(
      (server) =>
        server.power === "running" &&
        isFresh(server, "cpu", "memory") &&
        !ledger.acted.has(server.id) &&
        !context.hasActionInFlight(server) &&
        (server.size.cores < policy.maxSize.cores || server.size.ramGb < policy.maxSize.ramGb),
    )
    .sort((a, b) => (b.cpu.value ?? 0) - (a.cpu.value ?? 0) || a.id.localeCompare(b.id));
  for (const server of growable) {
    if (covered()) break;
    const { cores, ramGb } = server.size;
    const targetSize: ServerSize = { cores: Math.max(cores, policy.maxSize.cores), ramGb: Math.max(ramGb, policy.maxSize.ramGb) };
    decisions.push(
      decisionOf(context, {
        kind: "resize",
        server: server.id,
        targetSize,
        reason: `last week's load within the resize lead needs the room: grow to ${targetSize.cores} cores / ${targetSize.ramGb} GB`,
        inputs: {
          ...context.groupInputs,
          cpu: round(server.cpu.value ?? 0),
          memory: round(server.memory.value ?? 0),
          nearForecastCores: round(nearForecast.cores),
          nearForecastRamGb: round(nearForecast.ramGb),
          capacityCores: ledger.capacityCores,
          capacityRamGb: ledger.capacityRam,
        },
      }),
    );
    ledger = withActed(ledger, server.id, {
      capacityCores: ledger.capacityCores + targetSize.cores - cores,
      capacityRam: ledger.capacityRam + targetSize.ramGb - ramGb,
      growableCores: ledger.growableCores - (targetSize.cores - cores),
      growableRam: ledger.growableRam - (targetSize.ramGb - ramGb),
    });
  }
  return { ledger, decisions };
}
