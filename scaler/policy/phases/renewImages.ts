import { round } from "../load.js";
import { decisionOf, withActed, type DecideContext, type Ledger, type PhaseResult } from "../ledger.js";
import { inGrace, isFresh } from "../readings.js";
import type { Decision, Hold, ServerSnapshot } from "../types.js";
import { isReady } from "./warmPool.js";

/** A server created from another image than the one new servers get. */
export function onOldImage(server: ServerSnapshot, image: string | undefined): boolean {
  return image !== undefined && server.image !== undefined && server.image !== image;
}

/**
 * An image upgrade (a new baked worker image): servers on the old image are replaced without losing capacity. A
 * stopped one is destroyed (a start would bring the old release back; the warm pool refills with the new image).
 * A running one is drained, one a period, only while a stopped server on the new image stands by to replace it and
 * the servers left hold the projected load and the minimum; once empty it stops, then goes as a stopped one.
 */
export function renewImages(context: DecideContext, opening: Ledger): PhaseResult {
  const { policy, now } = context;
  const image = policy.image;
  if (image === undefined) return { ledger: opening, decisions: [], holds: [] };
  let ledger = opening;
  const decisions: Decision[] = [];
  const holds: Hold[] = [];
  for (const server of [...context.stopped].sort((a, b) => a.id.localeCompare(b.id))) {
    if (ledger.acted.has(server.id) || !onOldImage(server, image)) continue;
    decisions.push(
      decisionOf(context, {
        kind: "destroy",
        server: server.id,
        reason: `stopped on an old image (${server.image ?? "?"}): new servers run ${image}`,
        inputs: {},
      }),
    );
    ledger = withActed(ledger, server.id, { serverCount: ledger.serverCount - 1 });
  }
  if (ledger.scaledOut) return { ledger, decisions, holds };
  const old = context.active
    .filter((server) => server.power === "running" && !ledger.acted.has(server.id) && onOldImage(server, image))
    .filter((server) => !inGrace(server, policy, now) && isFresh(server, "meetings"))
    .sort((a, b) => (a.meetings.value ?? 0) - (b.meetings.value ?? 0) || a.id.localeCompare(b.id));
  const victim = old[0];
  if (victim === undefined) return { ledger, decisions, holds };
  const buffer = context.stopped.filter((server) => !ledger.acted.has(server.id) && isReady(server, image)).length;
  const remainingCores = ledger.capacityCores - victim.size.cores;
  const remainingRam = ledger.capacityRam - victim.size.ramGb;
  const inputs = {
    oldImageServers: old.length,
    bufferServers: buffer,
    remainingCores,
    remainingRamGb: remainingRam,
    requiredCores: round(ledger.requiredCores),
    requiredRamGb: round(ledger.requiredRam),
  };
  if (
    buffer === 0 ||
    ledger.activeCount - 1 < context.minimum ||
    remainingCores < ledger.requiredCores ||
    remainingRam < ledger.requiredRam
  ) {
    holds.push({
      reason: "image renewal held: no new-image server stands by, or the rest would not hold the load",
      server: victim.id,
      inputs,
    });
    return { ledger, decisions, holds };
  }
  decisions.push(
    decisionOf(context, {
      kind: "drain",
      server: victim.id,
      reason: `runs an old image (${victim.image ?? "?"}): drained while ${buffer} new-image servers stand by`,
      inputs,
    }),
  );
  ledger = withActed(ledger, victim.id, { capacityCores: remainingCores, capacityRam: remainingRam, activeCount: ledger.activeCount - 1 });
  return { ledger, decisions, holds };
}
