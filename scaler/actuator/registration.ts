import type { ServerSize } from "../../infra/config.js";
import type { Logger } from "../log.js";
import { sizeLoadMultiplier } from "../policy/placement.js";
import type { PlacementChange } from "../policy/types.js";
import type { BbbClient } from "../signals/bbb.js";
import type { ScaleliteClient, ScaleliteServer } from "../signals/scalelite.js";
import { setPhase, type FleetState, type ServerRecord } from "../fleet/state.js";

/**
 * Scalelite registration and steering: a server that boots is registered, then enabled once its BBB API answers;
 * servers taking meetings get the load multiplier of their size or the one the policy steers them to.
 */

/** Where each server of the fleet stack is (its `serverAddresses()`), by server name. */
export type ServerAddresses = Readonly<Record<string, { id: string; publicIp: string }>>;

/** What registration and steering read of the actuator's settings (`ActuatorSettings` in actuator.ts). */
export interface RegistrationSettings {
  fleet: string;
  defaultSize: ServerSize;
  bbbUrl: (server: { name: string; id: string; publicIp: string }) => string;
  bbbSecretOf: (serverName: string) => string;
}

/** What registration and steering use of the actuator's dependencies (`ActuatorDeps` in actuator.ts). */
export interface RegistrationDeps {
  scalelite: ScaleliteClient;
  bbb: (baseUrl: string, serverName: string) => BbbClient;
  audit: (entry: { kind: string; message: string; details?: Record<string, unknown> }, server?: string) => Promise<void>;
  now: () => number;
  log: Logger;
}

/**
 * A server's registration in Scalelite: by its BBB URL, or by the id its record keeps. By URL, one registered before
 * Redis lost the fleet's state is found although its record no longer knows the id.
 */
export function registrationOf(
  scalelite: ReadonlyMap<string, ScaleliteServer>,
  url: string | undefined,
  scaleliteId: string | null,
): ScaleliteServer | undefined {
  const wanted = url === undefined ? undefined : normalizeUrl(url);
  const byUrl = [...scalelite.values()].find((server) => normalizeUrl(server.url) === wanted);
  return byUrl ?? (scaleliteId === null ? undefined : scalelite.get(scaleliteId));
}

export async function scaleliteServers(deps: Pick<RegistrationDeps, "scalelite">): Promise<Map<string, ScaleliteServer>> {
  return new Map((await deps.scalelite.getServers()).map((server) => [server.id, server]));
}

/** Servers taking meetings: a live resize's new share in Scalelite, or the multiplier the policy steers them to. */
export async function setLoadMultipliers(
  settings: RegistrationSettings,
  deps: RegistrationDeps,
  addresses: ServerAddresses,
  state: FleetState,
  scalelite: Map<string, ScaleliteServer>,
  report: { steered: { server: string; loadMultiplier: number }[] },
  resized: ReadonlySet<string>,
  placement: readonly PlacementChange[],
): Promise<void> {
  const steering = new Map(placement.filter((change) => !change.dryRun).map((change) => [change.server, change.loadMultiplier]));
  for (const server of state.desired.servers) {
    const record = state.servers[server.name];
    if (
      record === undefined ||
      addresses[server.name] === undefined ||
      server.power !== "running" ||
      record.phase === "booting" ||
      record.phase === "resizing"
    )
      continue;
    // A server grown live keeps taking meetings: Scalelite learns its new share now; otherwise the policy steers.
    const registration = record.scaleliteId === null ? undefined : scalelite.get(record.scaleliteId);
    const target = resized.has(server.name) ? sizeLoadMultiplier(settings.defaultSize, server.size) : steering.get(server.name);
    if (registration === undefined || target === undefined || Math.abs(registration.loadMultiplier - target) <= 0.001) continue;
    await deps.scalelite.updateServer(registration.id, { loadMultiplier: target });
    report.steered.push({ server: server.name, loadMultiplier: target });
    deps.log.info(
      { event: "fleet.load_multiplier", fleet: settings.fleet, server: server.name, from: registration.loadMultiplier, to: target },
      `Scalelite load multiplier of ${server.name} set to ${target}`,
    );
  }
}

/**
 * Servers declared running but not yet taking meetings: registered in Scalelite, then enabled once BBB answers; one
 * installed for the warm pool is stopped instead.
 */
export async function register(
  settings: RegistrationSettings,
  deps: RegistrationDeps,
  addresses: ServerAddresses,
  state: FleetState,
  scalelite: Map<string, ScaleliteServer>,
  report: { registered: string[] },
): Promise<void> {
  const now = deps.now();
  for (const server of state.desired.servers) {
    const record = state.servers[server.name];
    const address = addresses[server.name];
    if (
      record === undefined ||
      address === undefined ||
      server.power !== "running" ||
      (record.phase !== "booting" && record.phase !== "resizing")
    )
      continue;
    const loadMultiplier = sizeLoadMultiplier(settings.defaultSize, server.size);
    const url = settings.bbbUrl({ name: server.name, ...address });
    const registered = registrationOf(scalelite, url, record.scaleliteId);
    record.scaleliteId =
      registered?.id ?? (await deps.scalelite.addServer({ url, secret: settings.bbbSecretOf(server.name), loadMultiplier })).id;
    try {
      await deps.bbb(url, server.name).getMeetings();
    } catch {
      continue; // not up yet: the build timeout decides when to give up on it
    }
    if (record.warm === true) {
      // Installed for the warm pool: stopped (the next `up` powers it off), registered but disabled until a start.
      server.power = "stopped";
      delete record.warm;
      record.bootedAt = null;
      setPhase(record, "stopped", now);
      report.registered.push(server.name);
      await deps.audit({ kind: "warm", message: "installed for the warm pool: stopped, ready to start", details: { url } }, server.name);
      continue;
    }
    const adoptedDisabled = record.adopted === true && registered?.state === "disabled";
    // Enabled with the share of its present size, whether it was registered now or before a resize.
    await deps.scalelite.updateServer(record.scaleliteId, { state: "enable", loadMultiplier });
    if (record.phase === "booting") record.bootedAt = now;
    delete record.adopted;
    setPhase(record, "active", now);
    report.registered.push(server.name);
    await deps.audit(
      { kind: "registered", message: `BBB API answers: enabled in Scalelite as ${record.scaleliteId}`, details: { url } },
      server.name,
    );
    if (adoptedDisabled) await reportAdoptedEnable(deps, { fleet: settings.fleet, server: server.name }, record.scaleliteId);
  }
}

/**
 * Servers adopted after Redis lost the fleet's state, linked to their Scalelite registrations (found by URL) before a
 * cycle's decisions apply, so that a stop, the registration and the hold below all see the same registration.
 */
export async function linkAdopted(
  settings: RegistrationSettings,
  deps: Pick<RegistrationDeps, "audit" | "log" | "now">,
  addresses: ServerAddresses,
  state: FleetState,
  scalelite: ReadonlyMap<string, ScaleliteServer>,
): Promise<void> {
  for (const [name, record] of Object.entries(state.servers)) {
    const address = addresses[name];
    if (record.adopted !== true || record.scaleliteId !== null || address === undefined) continue;
    const registered = registrationOf(scalelite, settings.bbbUrl({ name, ...address }), null);
    if (registered === undefined) continue;
    record.scaleliteId = registered.id;
    if (registered.state === "cordoned") await holdCordoned(deps, { fleet: settings.fleet, server: name }, record);
  }
}

/**
 * An adopted server Scalelite has cordoned was taken out of placement before Redis lost the fleet's state: by an
 * operator, a drain or a resize, which no record tells apart now. It is kept as Scalelite has it, held for an operator
 * to enable, rather than enabled over an operator's cordon. Only while meetings run on it: Scalelite's poller disables
 * a cordoned server once empty, and a disabled one is also a launch not yet enabled.
 */
async function holdCordoned(
  deps: Pick<RegistrationDeps, "audit" | "log" | "now">,
  { fleet, server }: { fleet: string; server: string },
  record: ServerRecord,
): Promise<void> {
  const { scaleliteId } = record;
  delete record.adopted;
  setPhase(record, "held", deps.now());
  const message = `found cordoned in Scalelite after Redis lost the fleet's state (an operator's cordon, a drain or a resize): kept out of placement and running, held until an operator enables it (\`confscale servers enable ${server} --fleet ${fleet}\`), which hands it back to the policy`;
  await deps.audit({ kind: "adopted.held", message, details: { scaleliteId } }, server);
  deps.log.warn({ event: "fleet.adopted_held", fleet, server, scaleliteId }, message);
}

/**
 * An adopted server Scalelite had disabled is enabled, as a launch not yet enabled would be (Scalelite adds servers
 * disabled), though it may have been an operator's panic, or a cordon Scalelite's poller turned into `disabled` once
 * the server emptied. Nothing tells these apart after Redis lost the fleet's state, so the operator is told.
 */
async function reportAdoptedEnable(
  deps: Pick<RegistrationDeps, "audit" | "log">,
  { fleet, server }: { fleet: string; server: string },
  scaleliteId: string,
): Promise<void> {
  const message = `found disabled in Scalelite after Redis lost the fleet's state (a launch not yet enabled, or an operator's panic or cordon): enabled, taking meetings; if an operator had taken it out, cordon it again (\`confscale servers cordon ${server} --fleet ${fleet}\`)`;
  await deps.audit({ kind: "adopted.enabled", message, details: { scaleliteId } }, server);
  deps.log.warn({ event: "fleet.adopted_enabled", fleet, server, scaleliteId }, message);
}

export function normalizeUrl(url: string): string {
  return url.replace(/\/+$/, "");
}
