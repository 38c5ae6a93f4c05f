import type { ServerSize } from "../../infra/config.js";
import type { FleetServer, FleetSpec, FleetTemplate } from "../../infra/fleet.js";
import type { FleetState, ServerRecord } from "../fleet/state.js";

/** What a fleet's first state is made from (`ActuatorSettings` in actuator.ts). */
export interface FleetOrigin {
  namePrefix: string;
  image: string;
  defaultSize: ServerSize;
  baseline: number;
  template: FleetTemplate;
}

/** A new fleet at its baseline, when neither Redis nor the fleet stack knows it. */
export function newFleet(settings: FleetOrigin, now: number): FleetState {
  const servers: FleetServer[] = [];
  const records: Record<string, ServerRecord> = {};
  for (let index = 1; index <= settings.baseline; index += 1) {
    const name = `${settings.namePrefix}-${index}`;
    servers.push({ name, size: settings.defaultSize, power: "running", image: settings.image });
    records[name] = { phase: "booting", since: now, scaleliteId: null, bootedAt: null, resizedAt: null };
  }
  return {
    desired: { ...settings.template, servers },
    servers: records,
    nextIndex: settings.baseline + 1,
    updateInFlight: null,
  };
}

/** The fleet as the stack last applied it, when Redis lost the actuator's state. */
export function adopt(settings: FleetOrigin, applied: FleetSpec, now: number): FleetState {
  const records: Record<string, ServerRecord> = {};
  let highest = 0;
  for (const server of applied.servers) {
    const running = server.power === "running";
    records[server.name] = {
      phase: running ? "booting" : "stopped",
      since: now,
      scaleliteId: null,
      bootedAt: null,
      resizedAt: null,
      ...(running ? { adopted: true } : {}),
    };
    highest = Math.max(highest, Number(/-(\d+)$/.exec(server.name)?.[1] ?? 0));
  }
  return {
    // A copy: the spec the stack applied is what the next decisions are compared with to know whether an `up` is due.
    desired: { ...applied, ...settings.template, servers: structuredClone(applied.servers) },
    servers: records,
    nextIndex: highest + 1,
    updateInFlight: null,
  };
}
