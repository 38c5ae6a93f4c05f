import { workerPolicySchema, type WorkerPolicy } from "../../infra/config.js";
import type { GroupSnapshot, LoadSample, PolicyHistory, Reading, ServerSnapshot } from "../../scaler/policy/types.js";

/** Tuesday 11 March 2025, 10:00 in Europe/Berlin. */
export const NOW = Date.UTC(2025, 2, 11, 9, 0, 0);
export const MINUTE = 60_000;

export const fresh = (value: number): Reading => ({ value, status: "fresh" });
export const stale = (value: number): Reading => ({ value, status: "stale" });
export const missing: Reading = { value: null, status: "missing" };

/** A running, enabled, long-booted default-size server with the given load. */
export function server(
  id: string,
  load: { cpu?: number; memory?: number; meetings?: number; participants?: number } = {},
  overrides: Partial<ServerSnapshot> = {},
): ServerSnapshot {
  const meetings = load.meetings ?? 0;
  const participants = load.participants ?? meetings * 20;
  return {
    id,
    size: { cores: 2, ramGb: 8 },
    power: "running",
    bootedAt: NOW - 3_600_000,
    resizedAt: null,
    scalelite: { state: "enabled", online: true, load: participants, loadMultiplier: 1 },
    scaleliteStatus: "fresh",
    cpu: fresh(load.cpu ?? 0.1),
    memory: fresh(load.memory ?? 0.2),
    networkBytesPerSecond: fresh(1000),
    stress: missing,
    meetings: fresh(meetings),
    participants: fresh(participants),
    videos: fresh(0),
    ...overrides,
  };
}

export function stoppedServer(id: string): ServerSnapshot {
  return server(
    id,
    {},
    {
      power: "stopped",
      bootedAt: null,
      scalelite: null,
      cpu: missing,
      memory: missing,
      networkBytesPerSecond: missing,
      meetings: missing,
      participants: missing,
      videos: missing,
    },
  );
}

export function snapshot(servers: ServerSnapshot[], overrides: Partial<GroupSnapshot> = {}): GroupSnapshot {
  return { group: "bbb", takenAt: NOW, canPowerOff: true, servers, ...overrides };
}

export function policy(overrides: Record<string, unknown> = {}): WorkerPolicy {
  return workerPolicySchema.parse({
    min: 1,
    max: 10,
    baseline: 1,
    defaultSize: { cores: 2, ramGb: 8 },
    maxSize: { cores: 8, ramGb: 32 },
    timeZone: "Europe/Berlin",
    sustainPeriods: 3,
    ...overrides,
  });
}

/** History in which the group's utilization was `cpu`/`memory` for the `periods` minutes before NOW. */
export function steadyHistory(
  periods: number,
  load: { cpu: number; memory: number; cores?: number; ramGb?: number; participants?: number },
  actions: PolicyHistory["actions"] = [],
): PolicyHistory {
  const cores = load.cores ?? 4;
  const ramGb = load.ramGb ?? 16;
  return {
    samples: Array.from({ length: periods }, (_, index) => ({
      at: NOW - (periods - index) * MINUTE,
      cpuCores: load.cpu * cores,
      memoryGb: load.memory * ramGb,
      cpuUtilization: load.cpu,
      memoryUtilization: load.memory,
      participants: load.participants ?? 0,
    })),
    actions,
  };
}

export const EMPTY_HISTORY: PolicyHistory = { samples: [], actions: [] };

type Load = Omit<LoadSample, "at">;

/** History of the two minutes before NOW: the group's load `from`, then `to` (a trend the projection reads). */
export function trend(from: Load, to: Load): PolicyHistory {
  return {
    samples: [
      { at: NOW - 2 * MINUTE, ...from },
      { at: NOW - MINUTE, ...to },
    ],
    actions: [],
  };
}

/** A bell's first joins on two default-size servers: 100 participants in the last minute, 0.4 cores more. */
export function firstJoins(): PolicyHistory {
  return trend(
    { cpuCores: 0.4, memoryGb: 3, cpuUtilization: 0.1, memoryUtilization: 0.2, participants: 0 },
    { cpuCores: 0.8, memoryGb: 4, cpuUtilization: 0.2, memoryUtilization: 0.2, participants: 100 },
  );
}

/** Two servers taking a bell's first joins (100 participants each), of `size` (the default size unless given), and a stopped one. */
export function joiningFleet(size?: ServerSnapshot["size"]): ServerSnapshot[] {
  const joining = { cpu: 0.3, memory: 0.3, participants: 100, meetings: 5 };
  const sized = size === undefined ? {} : { size };
  return [server("a", joining, sized), server("b", joining, sized), stoppedServer("c")];
}

/** A bell's joins still coming on two 8-core servers: 100 participants a minute, the second hundred in the minute to now. */
export function joinsStillComing(): PolicyHistory {
  return trend(
    { cpuCores: 0.2, memoryGb: 5, cpuUtilization: 0.3, memoryUtilization: 0.3, participants: 0 },
    { cpuCores: 2.5, memoryGb: 12.1, cpuUtilization: 0.3, memoryUtilization: 0.3, participants: 100 },
  );
}

/** A server of `size` that was launched and is booting: no readings yet, not registered in Scalelite. */
export function bootingServer(id: string, size: ServerSnapshot["size"]): ServerSnapshot {
  return server(
    id,
    {},
    {
      size,
      power: "booting",
      bootedAt: null,
      scalelite: null,
      cpu: missing,
      memory: missing,
      meetings: missing,
      participants: missing,
      videos: missing,
    },
  );
}
