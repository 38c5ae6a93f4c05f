/** A server's worker sidecar as the actuator sees it: asked to drain yet, and whether it has confirmed its drain ended. */
export interface SidecarDrainState {
  instanceId: string;
  drainRequested: boolean;
  /** The sidecar reported on /sidecar/shutdown that its last meeting ended. */
  drained: boolean;
}

/**
 * The sidecars of a fleet's servers, driven through the check-in replies: a drain is the protocol's shutdown command
 * ("drain, then confirm", sidecar/agent.ts), its end the sidecar's /sidecar/shutdown call. The store's is
 * `storeSidecarDrains` (scaler/signals/checkins.ts).
 */
export interface SidecarDrains {
  /** The sidecar of a server while it checks in; undefined for a server without one (or one that went silent). */
  of(server: string): Promise<SidecarDrainState | undefined>;
  /** Sends the drain command, delivered in the reply to the sidecar's next poll or status report. */
  requestDrain(instanceId: string): Promise<void>;
  /** Takes the drain command back: the server was taken back before its drain ended, and serves again. */
  withdrawDrain(instanceId: string): Promise<void>;
}
