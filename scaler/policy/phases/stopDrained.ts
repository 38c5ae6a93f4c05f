import { decisionOf, withActed, type DecideContext, type Inputs, type Ledger, type PhaseResult } from "../ledger.js";
import { inGrace, isFresh } from "../readings.js";
import type { Decision, Hold } from "../types.js";

/** Draining servers that emptied: stop or destroy them (never while a meeting is on them, by BBB's or Scalelite's count). */
export function stopDrained(context: DecideContext, opening: Ledger): PhaseResult {
  let ledger = opening;
  const decisions: Decision[] = [];
  const holds: Hold[] = [];
  for (const server of [...context.draining].sort((a, b) => a.id.localeCompare(b.id))) {
    if (ledger.acted.has(server.id) || inGrace(server, context.policy, context.now)) continue;
    const emptied =
      isFresh(server, "meetings") && server.meetings.value === 0 && server.scaleliteStatus === "fresh" && server.scalelite?.load === 0;
    const inputs: Inputs = { meetings: server.meetings.value, scaleliteLoad: server.scalelite?.load ?? null };
    if (!emptied) {
      holds.push({ reason: "draining: waiting for its meetings to end", server: server.id, inputs });
      continue;
    }
    decisions.push(
      decisionOf(context, {
        kind: context.snapshot.canPowerOff ? "stop" : "destroy",
        server: server.id,
        reason: "drained and empty",
        inputs,
      }),
    );
    ledger = withActed(ledger, server.id);
  }
  return { ledger, decisions, holds };
}
