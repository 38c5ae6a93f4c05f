import { SCALE_IN_KINDS, SCALE_OUT_KINDS, lastActionAt, round } from "../load.js";
import { decisionOf, type DecideContext, type Inputs, type Ledger, type PhaseResult } from "../ledger.js";
import { inGrace, isFresh } from "../readings.js";
import type { Decision, Hold, ServerSnapshot } from "../types.js";

/** Scale-in's result, with the candidates it kept for lack of room (the shrink phase looks at them). */
export interface ScaleInResult extends PhaseResult {
  readonly kept: readonly ServerSnapshot[];
}

/** Scale-in: only on a sustained low load measured on fresh data, outside the cooldowns. */
export function scaleIn(context: DecideContext, opening: Ledger): ScaleInResult {
  const { policy, history, now } = context;
  const none: ScaleInResult = { ledger: opening, decisions: [], holds: [], kept: [] };
  const sustainedLow =
    context.sustained &&
    context.recentSamples.every(
      (past) =>
        past.cpuUtilization !== null &&
        past.memoryUtilization !== null &&
        past.cpuUtilization < policy.thresholds.cpu.down &&
        past.memoryUtilization < policy.thresholds.memory.down,
    );
  if (!sustainedLow) return none;
  const lastScaleOut = lastActionAt(history, (kind, _server, warm) => SCALE_OUT_KINDS.includes(kind) && warm !== true);
  const lastScaleIn = lastActionAt(history, (kind) => SCALE_IN_KINDS.includes(kind));
  if (lastScaleOut !== undefined && now - lastScaleOut < policy.cooldownSeconds.afterScaleOut * 1000) {
    const hold: Hold = {
      reason: "scale-in held: cooldown after a scale-out",
      inputs: { ...context.groupInputs, secondsSinceScaleOut: (now - lastScaleOut) / 1000 },
    };
    return { ...none, holds: [hold] };
  }
  if (lastScaleIn !== undefined && now - lastScaleIn < policy.cooldownSeconds.afterScaleIn * 1000) {
    const hold: Hold = {
      reason: "scale-in held: cooldown after a scale-in",
      inputs: { ...context.groupInputs, secondsSinceScaleIn: (now - lastScaleIn) / 1000 },
    };
    return { ...none, holds: [hold] };
  }

  const candidates = context.active.filter(
    (server) =>
      server.power === "running" &&
      !inGrace(server, policy, now) &&
      !context.inServerCooldown(server) &&
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
  let ledger = opening;
  const decisions: Decision[] = [];
  const kept: ServerSnapshot[] = [];
  for (const server of candidates) {
    const remainingCores = ledger.capacityCores - server.size.cores;
    const remainingRam = ledger.capacityRam - server.size.ramGb;
    const inputs: Inputs = {
      ...context.groupInputs,
      cpu: round(server.cpu.value ?? 0),
      memory: round(server.memory.value ?? 0),
      meetings: server.meetings.value,
      participants: server.participants.value,
      activeServers: ledger.activeCount,
      remainingCores,
      remainingRamGb: remainingRam,
    };
    if (ledger.activeCount - 1 < context.minimum || remainingCores < ledger.requiredCores || remainingRam < ledger.requiredRam) {
      kept.push(server);
      continue;
    }
    const empty = server.meetings.value === 0 && (server.scalelite === null || server.scalelite.load === 0);
    if (server.scalelite === null && empty) {
      decisions.push(
        decisionOf(context, {
          kind: context.snapshot.canPowerOff ? "stop" : "destroy",
          server: server.id,
          reason: "load below the down-threshold; not registered in Scalelite and empty",
          inputs,
        }),
      );
    } else {
      decisions.push(
        decisionOf(context, {
          kind: "drain",
          server: server.id,
          reason: `load below the down-threshold for ${policy.sustainPeriods} periods: cordon, stop once empty`,
          inputs,
        }),
      );
    }
    ledger = { ...ledger, capacityCores: remainingCores, capacityRam: remainingRam, activeCount: ledger.activeCount - 1 };
  }
  return { ledger, decisions, holds: [], kept };
}
