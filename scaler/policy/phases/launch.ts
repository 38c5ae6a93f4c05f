import type { ServerSize } from "../../../infra/config.js";
import { bySizeDescending } from "../load.js";
import { decisionOf, isShort, scaleOutReason, shortInputs, type DecideContext, type Ledger, type PhaseResult } from "../ledger.js";
import type { Decision, Hold, ServerSnapshot } from "../types.js";
import { isReady } from "./warmPool.js";

/**
 * Horizontal scale-out: too little capacity for the projected load, a sustained high load, or below the minimum.
 * Stopped servers start first, then new ones are created, within the launch rate and the maximum. A launch for
 * capacity comes up at the maximum size (a stopped server is resized before power-on): fewer, larger servers carry
 * less idle overhead and need no resize later. A launch only for the minimum comes up at the default size.
 */
export function launch(context: DecideContext, opening: Ledger): PhaseResult {
  const { policy } = context;
  let ledger = opening;
  const decisions: Decision[] = [];
  const holds: Hold[] = [];
  const launchOne = (kind: "start" | "create", current: ServerSize, server?: string) => {
    const forCapacity =
      ledger.capacityCores + ledger.growableCores < ledger.requiredCores || ledger.capacityRam + ledger.growableRam < ledger.requiredRam;
    // Only for the minimum, a server runs at the default size: a stopped one left at the maximum by an earlier day is
    // resized before power-on, which costs nothing, where running it large all window long would.
    const size = forCapacity ? policy.maxSize : policy.defaultSize;
    const resized = size.cores !== current.cores || size.ramGb !== current.ramGb;
    decisions.push(
      decisionOf(context, {
        kind,
        ...(server === undefined ? {} : { server }),
        ...(server === undefined || resized ? { targetSize: size } : {}),
        reason: scaleOutReason(context, ledger),
        inputs: { ...shortInputs(context, ledger), launchBudget: ledger.launchBudget },
      }),
    );
    ledger = {
      ...ledger,
      acted: server === undefined ? ledger.acted : new Set([...ledger.acted, server]),
      scaledOut: true,
      launchBudget: ledger.launchBudget - 1,
      capacityCores: ledger.capacityCores + size.cores,
      capacityRam: ledger.capacityRam + size.ramGb,
      activeCount: ledger.activeCount + 1,
    };
  };
  // Servers on the image new ones get start first; one on an old image only when nothing else can be started.
  const current = (server: ServerSnapshot) => Number(isReady(server, policy.image));
  for (const server of [...context.stopped]
    .filter((server) => !ledger.acted.has(server.id))
    .sort((a, b) => current(b) - current(a) || bySizeDescending(a, b))) {
    if (!isShort(context, ledger) || ledger.launchBudget <= 0) break;
    launchOne("start", server.size, server.id);
  }
  while (isShort(context, ledger) && ledger.launchBudget > 0 && ledger.serverCount < policy.max) {
    launchOne("create", policy.defaultSize);
    ledger = { ...ledger, serverCount: ledger.serverCount + 1 };
  }
  if (isShort(context, ledger)) {
    const limit =
      ledger.launchBudget <= 0
        ? `launch rate limit (${policy.launchRate.count} per ${policy.launchRate.perSeconds} s)`
        : `maximum of ${policy.max} servers`;
    holds.push({ reason: `still short of capacity: ${limit} reached`, inputs: shortInputs(context, ledger) });
  }
  return { ledger, decisions, holds };
}
