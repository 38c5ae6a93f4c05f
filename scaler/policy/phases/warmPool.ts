import { round } from "../load.js";
import { decisionOf, type DecideContext, type Ledger, type PhaseResult } from "../ledger.js";
import type { Decision, Hold, ServerSnapshot } from "../types.js";

/** A stopped server that a start brings back on the image new servers get (any, when the image is not known). */
export function isReady(server: ServerSnapshot, image: string | undefined): boolean {
  return server.power === "stopped" && (image === undefined || server.image === undefined || server.image === image);
}

/**
 * The warm pool's size this period: at least `warmPool.min`, and `warmPool.share` of the servers taking meetings,
 * times how much busier today runs than last week (a surge day keeps a bigger pool), never past `max`.
 */
export function warmPoolTarget(context: DecideContext, ledger: Ledger): number {
  const { warmPool } = context.policy;
  const risk = Math.max(1, context.agreement);
  return Math.max(warmPool.min, Math.ceil(warmPool.share * ledger.activeCount * risk));
}

/**
 * The warm pool: installed, stopped servers that a start brings up in minutes where a create takes the install.
 * Short of its target, new servers are created for it (the actuator installs each, then stops it) within the launch
 * rate and `max`, but not in a period that launched for capacity: capacity comes first.
 */
export function warmPool(context: DecideContext, opening: Ledger): PhaseResult {
  const { policy, snapshot } = context;
  const target = warmPoolTarget(context, opening);
  const ready = context.stopped.filter((server) => !opening.acted.has(server.id) && isReady(server, policy.image)).length;
  const warming = snapshot.servers.filter((server) => server.warm === true).length;
  if (opening.scaledOut || ready + warming >= target) return { ledger: opening, decisions: [], holds: [] };
  let ledger = opening;
  let pooled = ready + warming;
  const decisions: Decision[] = [];
  const holds: Hold[] = [];
  const inputs = { warmPoolTarget: target, readyServers: ready, warmingServers: warming, forecastAgreement: round(context.agreement) };
  while (pooled < target && ledger.launchBudget > 0 && ledger.serverCount < policy.max) {
    decisions.push(
      decisionOf(context, {
        kind: "create",
        targetSize: policy.defaultSize,
        warm: true,
        reason: `warm pool below its ${target} servers: install one and stop it, ready to start in minutes`,
        inputs: { ...inputs, launchBudget: ledger.launchBudget },
      }),
    );
    ledger = { ...ledger, launchBudget: ledger.launchBudget - 1, serverCount: ledger.serverCount + 1 };
    pooled += 1;
  }
  if (pooled < target) {
    const limit = ledger.launchBudget <= 0 ? "the launch rate" : `the maximum of ${policy.max} servers`;
    holds.push({ reason: `warm pool short of its target: ${limit} reached`, inputs });
  }
  return { ledger, decisions, holds };
}
