import type { ServerSize } from "../../../infra/config.js";
import { round } from "../load.js";
import { QUIETER_DAY, decisionOf, type DecideContext, type Ledger, type PhaseResult } from "../ledger.js";
import type { Decision, ServerSnapshot } from "../types.js";

/**
 * Vertical shrink: an oversized server without meetings goes back to the default size (the actuator drains it first).
 * Not while a time window raises the minimum without last week's load on record: the operator expects load then, and
 * the next bell would land on the small server a resize too early (a break between lessons looks idle), unless today
 * runs far below last week's load.
 */
export function shrink(context: DecideContext, opening: Ledger, kept: readonly ServerSnapshot[]): PhaseResult {
  const { policy } = context;
  let ledger = opening;
  const decisions: Decision[] = [];
  // On a day far quieter than last week (a holiday) the window's bells do not come: its minimum runs small. With last
  // week's load on record the bells are known: the required capacity holds the coming lead time's, and growth is
  // ready for a bell within a resize (grow.ts), so a break between lessons runs small too.
  const bellsExpected = context.minimum > policy.min && context.agreement >= QUIETER_DAY && context.nearForecast === null;
  for (const server of bellsExpected ? [] : kept) {
    const { cores, ramGb } = server.size;
    const oversized = cores > policy.defaultSize.cores || ramGb > policy.defaultSize.ramGb;
    const empty = server.meetings.value === 0 && (server.scalelite === null || server.scalelite.load === 0);
    if (!oversized || !empty) continue;
    const targetSize: ServerSize = { cores: Math.min(cores, policy.defaultSize.cores), ramGb: Math.min(ramGb, policy.defaultSize.ramGb) };
    const remainingCores = ledger.capacityCores - cores + targetSize.cores;
    const remainingRam = ledger.capacityRam - ramGb + targetSize.ramGb;
    if (remainingCores < ledger.requiredCores || remainingRam < ledger.requiredRam) continue;
    decisions.push(
      decisionOf(context, {
        kind: "resize",
        server: server.id,
        targetSize,
        reason: `load below the down-threshold and no meetings: shrink to ${targetSize.cores} cores / ${targetSize.ramGb} GB through drain`,
        inputs: {
          ...context.groupInputs,
          cpu: round(server.cpu.value ?? 0),
          memory: round(server.memory.value ?? 0),
          meetings: 0,
          remainingCores,
          remainingRamGb: remainingRam,
        },
      }),
    );
    ledger = { ...ledger, capacityCores: remainingCores, capacityRam: remainingRam };
  }
  return { ledger, decisions, holds: [] };
}
