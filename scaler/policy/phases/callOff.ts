import { bySizeDescending } from "../load.js";
import { decisionOf, shortInputs, withActed, type DecideContext, type Ledger, type PhaseResult } from "../ledger.js";
import type { Decision } from "../types.js";

/**
 * A launch the projection no longer needs is called off before the server lands: once it takes meetings it is held
 * for their whole length. A bell's burst of joins is steep for a minute or two, and its trend then projects more
 * joins than come; the next periods see the rise level off. Only when nothing was launched this period. A booting
 * server is not enabled in Scalelite yet, so no meeting can be on it (and the actuator asks BBB before a stop).
 */
export function callOff(context: DecideContext, opening: Ledger): PhaseResult {
  if (opening.scaledOut) return { ledger: opening, decisions: [], holds: [] };
  const booting = context.active
    .filter(
      (server) =>
        server.power === "booting" && (server.meetings.value ?? 0) === 0 && (server.scalelite === null || server.scalelite.load === 0),
    )
    .sort(bySizeDescending);
  let ledger = opening;
  const decisions: Decision[] = [];
  for (const server of booting) {
    const remainingCores = ledger.capacityCores - server.size.cores;
    const remainingRam = ledger.capacityRam - server.size.ramGb;
    if (ledger.activeCount - 1 < context.minimum || remainingCores < ledger.requiredCores || remainingRam < ledger.requiredRam) break;
    decisions.push(
      decisionOf(context, {
        kind: context.snapshot.canPowerOff ? "stop" : "destroy",
        server: server.id,
        reason: "launch no longer needed: the capacity taking meetings holds the projected load",
        inputs: { ...shortInputs(context, ledger), remainingCores, remainingRamGb: remainingRam },
      }),
    );
    ledger = withActed(ledger, server.id, {
      capacityCores: remainingCores,
      capacityRam: remainingRam,
      activeCount: ledger.activeCount - 1,
    });
  }
  return { ledger, decisions, holds: [] };
}
