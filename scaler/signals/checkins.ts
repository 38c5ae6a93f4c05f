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
