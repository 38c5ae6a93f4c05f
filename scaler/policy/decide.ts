import { QUIETER_DAY, openLedger, type PhaseResult } from "./ledger.js";
import { profileLoad, sampleOf } from "./load.js";
import { callOff } from "./phases/callOff.js";
import { grow } from "./phases/grow.js";
import { launch } from "./phases/launch.js";
import { renewImages } from "./phases/renewImages.js";
import { scaleIn } from "./phases/scaleIn.js";
import { shrink } from "./phases/shrink.js";
import { stopDrained } from "./phases/stopDrained.js";
import { takeBack } from "./phases/takeBack.js";
import { warmPool } from "./phases/warmPool.js";
import { placementChanges } from "./placement.js";
import type { Decision, GroupSnapshot, Hold, PolicyHistory, PolicyOutcome, ScalingPolicy } from "./types.js";

export { sampleOf };

/**
 * Decides what the group should do now. Pure: the same snapshot, policy, history and `now` (ms since epoch)
 * always give the same decisions, in the same order. Each phase (scaler/policy/phases/) reads the period's context
 * and the capacity ledger the one before left, and returns its decisions with a new ledger: grow in place, take
 * draining servers back, launch, call off launches no longer needed, stop what drained, renew servers on an old
 * image, keep the warm pool, scale in, shrink.
 */
export function decide(snapshot: GroupSnapshot, policy: ScalingPolicy, history: PolicyHistory, now: number): PolicyOutcome {
  const sample = sampleOf(snapshot);
  if (policy.paused) {
    return {
      at: now,
      group: snapshot.group,
      sample,
      decisions: [],
      placement: [],
      holds: [{ reason: "paused: no decisions until resumed", inputs: {} }],
      profileLoad: profileLoad(sample, history.forecast ?? [], now, 1, QUIETER_DAY),
    };
  }
  const placement = placementChanges(snapshot.servers, policy, now);
  const { context, ledger: opening } = openLedger(snapshot, policy, history, now, sample);
  const decisions: Decision[] = [];
  const holds: Hold[] = [];
  const record = (result: PhaseResult) => {
    decisions.push(...result.decisions);
    holds.push(...result.holds);
    return result.ledger;
  };
  const kept = profileLoad(sample, history.forecast ?? [], now, context.agreement, QUIETER_DAY);
  const outcome = (): PolicyOutcome => ({ at: now, group: snapshot.group, sample, decisions, placement, holds, profileLoad: kept });

  let ledger = record(grow(context, opening));
  ledger = record(takeBack(context, ledger));
  ledger = record(launch(context, ledger));
  ledger = record(callOff(context, ledger));
  ledger = record(stopDrained(context, ledger));
  ledger = record(renewImages(context, ledger));
  ledger = record(warmPool(context, ledger));
  if (ledger.scaledOut || decisions.some((decision) => decision.kind === "resize")) return outcome();
  const scaledIn = scaleIn(context, ledger);
  ledger = record(scaledIn);
  record(shrink(context, ledger, scaledIn.kept));
  return outcome();
}
