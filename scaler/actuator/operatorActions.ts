import type { Logger } from "../log.js";
import type { ScaleliteClient } from "../signals/scalelite.js";
import type { SidecarDrains } from "../fleet/sidecars.js";
import { FleetServerNotFoundError, ServerActionConflictError, type OperatorAction } from "../fleet/operator.js";
import { setPhase, type FleetState } from "../fleet/state.js";

/** What an operator's action uses of the actuator's dependencies (`ActuatorDeps` in actuator.ts). */
export interface OperatorActionDeps {
  scalelite: ScaleliteClient;
  audit: (entry: { kind: string; message: string; details?: Record<string, unknown>; actor?: string }, server?: string) => Promise<void>;
  now: () => number;
  log: Logger;
  sidecars?: SidecarDrains | undefined;
}

/**
 * A draining server taken back (re-enabled) keeps no drain command: its sidecar would otherwise go on draining and
 * confirm an end the scaler no longer waits for. A failure is logged; the server serves either way.
 */
export async function withdrawSidecarDrain(
  fleet: string,
  deps: Pick<OperatorActionDeps, "sidecars" | "log">,
  server: string,
): Promise<void> {
  if (deps.sidecars === undefined) return;
  try {
    const sidecar = await deps.sidecars.of(server);
    if (sidecar?.drainRequested === true) await deps.sidecars.withdrawDrain(sidecar.instanceId);
  } catch (error) {
    deps.log.warn({ event: "fleet.sidecar_withdraw_failed", fleet, server, err: error }, "drain command not withdrawn");
  }
}

/**
 * An operator's action on one server, in Scalelite: cordon (no new meetings; running ones go on) and panic (its
 * meetings are ended) hold the server out of the policy's hands; enable gives it back, taking meetings again.
 */
export async function operate(
  fleet: string,
  deps: OperatorActionDeps,
  state: FleetState,
  request: { name: string; action: OperatorAction; actor: string },
  save: () => Promise<void>,
): Promise<{ server: string; phase: string }> {
  const { name, action, actor } = request;
  const server = state.desired.servers.find((candidate) => candidate.name === name);
  const record = state.servers[name];
  if (server === undefined || record === undefined) throw new FleetServerNotFoundError(fleet, name);
  if (server.power === "stopped")
    throw new ServerActionConflictError(name, action, "it is stopped; the policy starts it when the load needs it");
  if (record.scaleliteId === null)
    throw new ServerActionConflictError(name, action, "it is still booting and not registered in Scalelite yet");
  if (action === "enable" && (record.phase === "booting" || record.phase === "resizing")) {
    throw new ServerActionConflictError(name, action, `it is ${record.phase}: the actuator enables it once its BBB API answers`);
  }
  const previous = record.phase;
  if (action === "panic") await deps.scalelite.panicServer(record.scaleliteId);
  else await deps.scalelite.setState(record.scaleliteId, action);
  setPhase(record, action === "enable" ? "active" : "held", deps.now());
  await save();
  if (action === "enable" && previous === "draining") await withdrawSidecarDrain(fleet, deps, name);
  const message = {
    cordon: "cordoned by an operator: no new meetings, running ones go on; held until an operator enables it",
    panic: "panicked by an operator: its meetings were ended and it takes no new ones; held until an operator enables it",
    enable: "enabled by an operator: takes meetings again and is back in the policy's hands",
  }[action];
  await deps.audit({ kind: `operator.${action}`, message, actor, details: { previousPhase: previous } }, name);
  deps.log.info({ event: `fleet.operator_${action}`, fleet, server: name, actor }, message);
  return { server: name, phase: record.phase };
}
