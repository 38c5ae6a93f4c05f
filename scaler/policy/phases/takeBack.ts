import { bySizeDescending } from "../load.js";
import {
  decisionOf,
  isShortNow,
  scaleOutReason,
  shortInputs,
  withActed,
  type DecideContext,
  type Ledger,
  type PhaseResult,
} from "../ledger.js";
import type { Decision, ServerSnapshot } from "../types.js";

/**
 * Booting servers count against launching more, but take no meeting yet: a server that is up and waiting (registered
 * disabled, or draining) is enabled as soon as the servers taking meetings are short. The one with the most meetings
 * first: it stays up for them anyway, and the more it holds, the likelier one of them runs long (a double lesson),
 * while one with few is about to empty and stop.
 */
export function takeBack(context: DecideContext, opening: Ledger): PhaseResult {
  const lingersLongest = (a: ServerSnapshot, b: ServerSnapshot) =>
    (b.meetings.value ?? 0) - (a.meetings.value ?? 0) || bySizeDescending(a, b);
  let ledger = opening;
  const decisions: Decision[] = [];
  for (const server of [...context.draining].sort(lingersLongest)) {
    if (!isShortNow(context, ledger)) break;
    decisions.push(
      decisionOf(context, {
        kind: "enable",
        server: server.id,
        reason: `${scaleOutReason(context, ledger)}: take a draining server back`,
        inputs: shortInputs(context, ledger),
      }),
    );
    const demand = context.scaleOutDemand(server);
    ledger = withActed(ledger, server.id, {
      scaledOut: true,
      capacityCores: ledger.capacityCores + server.size.cores,
      capacityRam: ledger.capacityRam + server.size.ramGb,
      requiredCores: ledger.requiredCores + demand.cores / context.targetCpu,
      requiredRam: ledger.requiredRam + demand.ramGb / context.targetMemory,
      activeCount: ledger.activeCount + 1,
    });
  }
  return { ledger, decisions, holds: [] };
}
