import type { ServerSize } from "../../infra/config.js";
import type { PowerState } from "../policy/types.js";
import type { FleetState } from "./state.js";

/** A worker as the fleet state knows it (the fleet stack's outputs and Redis): what the gatherer reads the fleet as. */
export interface FleetMember {
  id: string;
  size: ServerSize;
  power: PowerState;
  bootedAt: number | null;
  resizedAt: number | null;
  /** The `instance` label of its node-exporter in Prometheus. */
  instance: string;
  /** Its id in Scalelite (the hostname with SERVER_ID_IS_HOSTNAME=true). */
  scaleliteId: string;
  /** The worker image it was created from. */
  image?: string;
  /** Being installed for the warm pool (stopped once installed). */
  warm?: boolean;
}

/** Where the fleet stack put each server: its cloud id and public address. */
export type ServerAddresses = Readonly<Record<string, { id: string; publicIp: string }>>;

/**
 * The fleet as the snapshot needs it: a server counts as booting until it is enabled in Scalelite. A server an
 * operator holds is left out: the policy neither counts its capacity nor acts on it.
 */
export function membersOf(state: FleetState, addresses: ServerAddresses): FleetMember[] {
  return state.desired.servers
    .filter((server) => state.servers[server.name]?.phase !== "held")
    .map((server) => {
      const record = state.servers[server.name];
      const address = addresses[server.name];
      return {
        id: server.name,
        size: server.size,
        power: server.power === "stopped" ? "stopped" : record?.phase === "booting" ? "booting" : "running",
        bootedAt: record?.bootedAt ?? null,
        resizedAt: record?.resizedAt ?? null,
        instance: address === undefined ? server.name : `${address.publicIp}:9100`,
        scaleliteId: record?.scaleliteId ?? server.name,
        image: server.image,
        warm: record?.warm === true,
      };
    });
}

/** Servers an operator has taken out of the policy's hands. */
export function heldServersOf(state: FleetState): string[] {
  return Object.entries(state.servers)
    .filter(([, record]) => record.phase === "held")
    .map(([name]) => name);
}
