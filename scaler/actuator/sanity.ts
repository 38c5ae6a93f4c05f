import type { ListedMachine, Placement } from "../../infra/clouds/types.js";
import type { Logger } from "../log.js";
import type { ScaleliteClient } from "../signals/scalelite.js";
import type { FleetState } from "../fleet/state.js";
import { normalizeUrl, scaleliteServers, type ServerAddresses } from "./registration.js";

/** What the sanity check found; it reports and never deletes. */
export interface SanityReport {
  /** Machines carrying this fleet's ownership labels that the fleet stack does not hold. */
  untracked: { id: string; name: string }[];
  /** Servers the fleet stack holds that the cloud no longer lists (a refresh will show them gone). */
  missing: string[];
  /** Scalelite registrations that point at no server of the fleet. */
  danglingRegistrations: { id: string; url: string }[];
  /** Machines without confscale's ownership labels: never touched, only counted. */
  foreign: number;
}

/** What the sanity check reads of the actuator's settings and dependencies (actuator.ts). */
export interface SanitySettings {
  fleet: string;
  bbbUrl: (server: { name: string; id: string; publicIp: string }) => string;
}

export interface SanityDeps {
  scalelite: ScaleliteClient;
  audit: (entry: { kind: string; message: string; details?: Record<string, unknown> }) => Promise<void>;
  log: Logger;
  inventory?: (placement: Placement) => Promise<ListedMachine[]>;
}

/**
 * Compares the fleet stack with the cloud and with Scalelite and records what disagrees. It never deletes: a
 * machine without this fleet's ownership labels is not ours, and one with them is for an operator to look at.
 */
export async function sanity(
  settings: SanitySettings,
  deps: SanityDeps,
  addresses: ServerAddresses,
  state: FleetState,
): Promise<SanityReport> {
  const { env, fleet, placement } = state.desired;
  const tracked = new Set(Object.values(addresses).map((address) => address.id));
  const report: SanityReport = { untracked: [], missing: [], danglingRegistrations: [], foreign: 0 };
  if (deps.inventory !== undefined) {
    const machines = await deps.inventory(placement);
    const listed = new Set(machines.map((machine) => machine.id));
    for (const machine of machines) {
      const ownership = Object.keys(machine.labels).filter((key) => key.startsWith("confscale:"));
      if (ownership.length === 0) report.foreign += 1;
      else if (machine.labels["confscale:env"] === env && machine.labels["confscale:fleet"] === fleet && !tracked.has(machine.id)) {
        report.untracked.push({ id: machine.id, name: machine.name });
      }
    }
    report.missing = Object.entries(addresses)
      .filter(([, address]) => !listed.has(address.id))
      .map(([name]) => name);
  }
  const fleetUrls = new Set(Object.entries(addresses).map(([name, address]) => normalizeUrl(settings.bbbUrl({ name, ...address }))));
  for (const registration of (await scaleliteServers(deps)).values()) {
    if (!fleetUrls.has(normalizeUrl(registration.url))) report.danglingRegistrations.push({ id: registration.id, url: registration.url });
  }
  const problems = report.untracked.length + report.missing.length + report.danglingRegistrations.length;
  await deps.audit({
    kind: "sanity",
    message:
      problems === 0
        ? "fleet stack, cloud and Scalelite agree"
        : `${problems} disagreements between the fleet stack, the cloud and Scalelite (nothing deleted)`,
    details: { ...report },
  });
  if (problems > 0) deps.log.warn({ event: "fleet.sanity", fleet: settings.fleet, ...report }, "fleet stack, cloud and Scalelite disagree");
  return report;
}
