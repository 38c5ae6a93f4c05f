import type { SidecarDrains } from "../fleet/sidecars.js";
import type { CheckIn, Observed } from "./snapshot.js";

/** An instance as the store lists it (ScalerStore.listInstances satisfies it): what a reader of check-ins needs. */
export interface ListedInstance {
  instanceId: string;
  details: Record<string, unknown>;
  stats: Record<string, unknown> | null;
  stress: number | null;
  /** The scaler's own clock at the instance's last report (ms since epoch). */
  lastReportAt: number;
}

/** Where the live instances of a group are read (the store's public read; ScalerStore satisfies it). */
export interface InstanceSource {
  listInstances(groupId: string): Promise<ListedInstance[]>;
}

function count(stats: Record<string, unknown> | null, key: string): number | undefined {
  const value = stats?.[key];
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * The names a check-in may stand for: the instance id (a worker's sidecar sends its hostname, `<server>.<domain>`),
 * its first DNS label, and the `name` the sidecar's metadata gives. The snapshot joins them with fleet members by
 * server name.
 */
export function checkInNames(instance: Pick<ListedInstance, "instanceId" | "details">): string[] {
  const names = new Set([instance.instanceId, instance.instanceId.split(".", 1)[0] ?? instance.instanceId]);
  if (typeof instance.details.name === "string" && instance.details.name !== "") names.add(instance.details.name);
  return [...names];
}

/** One check-in per name it may stand for, observed at the scaler's time of its last report. */
export function checkInsByName(instances: readonly ListedInstance[]): Map<string, Observed<CheckIn>> {
  const byName = new Map<string, Observed<CheckIn>>();
  for (const instance of instances) {
    const value: CheckIn = {};
    const stress = instance.stress ?? undefined;
    if (stress !== undefined) value.stress = stress;
    for (const key of ["meetings", "participants", "videos"] as const) {
      const figure = count(instance.stats, key);
      if (figure !== undefined) value[key] = figure;
    }
    for (const name of checkInNames(instance)) {
      const known = byName.get(name);
      if (known === undefined || known.at < instance.lastReportAt) byName.set(name, { at: instance.lastReportAt, value });
    }
  }
  return byName;
}

/** The fleet's fresh check-ins from the store, read every period. */
export function storeCheckIns(source: InstanceSource, group: string): () => Promise<Map<string, Observed<CheckIn>>> {
  return async () => checkInsByName(await source.listInstances(group));
}

/** What the store offers for it (ScalerStore satisfies it). */
export interface SidecarCommandStore {
  listInstances(groupId: string): Promise<(ListedInstance & { shutdownRequested: boolean; shutdownConfirmedAt?: number })[]>;
  requestShutdown(groupId: string, instanceIds: readonly string[], actor: string): Promise<void>;
  withdrawShutdown(groupId: string, instanceIds: readonly string[], actor: string): Promise<void>;
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
    withdrawDrain: (instanceId) => store.withdrawShutdown(group, [instanceId], actor),
  };
}
