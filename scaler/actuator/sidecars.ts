import { checkInNames, type ListedInstance } from "../signals/checkins.js";

/** A server's worker sidecar as the actuator sees it: asked to drain yet, and whether it has confirmed its drain ended. */
export interface SidecarDrainState {
  instanceId: string;
  drainRequested: boolean;
  /** The sidecar reported on /sidecar/shutdown that its last meeting ended. */
  drained: boolean;
}

/**
 * The sidecars of a fleet's servers, driven through the check-in replies: a drain is the protocol's shutdown command
 * ("drain, then confirm", sidecar/agent.ts), its end the sidecar's /sidecar/shutdown call.
 */
export interface SidecarDrains {
  /** The sidecar of a server while it checks in; undefined for a server without one (or one that went silent). */
  of(server: string): Promise<SidecarDrainState | undefined>;
  /** Sends the drain command, delivered in the reply to the sidecar's next poll or status report. */
  requestDrain(instanceId: string): Promise<void>;
}

/** What the store offers for it (ScalerStore satisfies it). */
export interface SidecarCommandStore {
  listInstances(groupId: string): Promise<(ListedInstance & { shutdownRequested: boolean; shutdownConfirmedAt?: number })[]>;
  requestShutdown(groupId: string, instanceIds: readonly string[], actor: string): Promise<void>;
}

/** The fleet's sidecars through the store: a fleet's group has the fleet's name. */
export function storeSidecarDrains(store: SidecarCommandStore, group: string, actor = "actuator"): SidecarDrains {
  return {
    async of(server) {
      const instances = (await store.listInstances(group)).filter((instance) => checkInNames(instance).includes(server));
      // The latest report speaks for the server (a replaced machine may have left an older one behind).
      const instance = instances.sort((a, b) => b.lastReportAt - a.lastReportAt)[0];
      if (instance === undefined) return undefined;
      return {
        instanceId: instance.instanceId,
        drainRequested: instance.shutdownRequested,
        drained: instance.shutdownConfirmedAt !== undefined,
      };
    },
    requestDrain: (instanceId) => store.requestShutdown(group, [instanceId], actor),
  };
}
