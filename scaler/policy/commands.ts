import type { ServerSize } from "../../infra/config.js";
import type { Decision } from "./types.js";

interface CommandBase {
  reason: string;
  /** The numbers that caused it, for the audit trail. */
  inputs: Record<string, number | null>;
  dryRun: boolean;
}

/**
 * A decision as a typed command, one shape per kind: what the actuator carries out. `create` names no server (the
 * actuator names the new one), and with `warm` it is for the warm pool: installed, then stopped; `resize` always has its target; `start` has one when the server is resized before
 * power-on.
 */
export type PolicyCommand =
  | (CommandBase & { kind: "create"; targetSize?: ServerSize; warm?: true })
  | (CommandBase & { kind: "start"; server: string; targetSize?: ServerSize })
  | (CommandBase & { kind: "resize"; server: string; targetSize: ServerSize })
  | (CommandBase & { kind: "stop" | "destroy" | "drain" | "enable"; server: string });

/** A decision that lacks what its kind needs (a server, a target size): refused, never guessed. */
export class MalformedDecisionError extends Error {
  constructor(
    readonly decision: Decision,
    missing: string,
  ) {
    super(`a ${decision.kind} decision without ${missing}`);
    this.name = "MalformedDecisionError";
  }
}

/** The typed command of a decision (the policy's outcome keeps decisions as records, for the audit trail). */
export function commandOf(decision: Decision): PolicyCommand {
  const base: CommandBase = { reason: decision.reason, inputs: decision.inputs, dryRun: decision.dryRun };
  const size = decision.targetSize === undefined ? {} : { targetSize: decision.targetSize };
  if (decision.kind === "create") return { ...base, kind: "create", ...size, ...(decision.warm === true ? { warm: true } : {}) };
  if (decision.server === undefined) throw new MalformedDecisionError(decision, "a server");
  if (decision.kind === "resize") {
    if (decision.targetSize === undefined) throw new MalformedDecisionError(decision, "a target size");
    return { ...base, kind: "resize", server: decision.server, targetSize: decision.targetSize };
  }
  if (decision.kind === "start") return { ...base, kind: "start", server: decision.server, ...size };
  return { ...base, kind: decision.kind, server: decision.server };
}
