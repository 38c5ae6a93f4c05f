import type { FleetMember } from "../fleet/members.js";
import { groupSnapshotSchema, type Freshness, type GroupSnapshot, type Reading, type ServerSnapshot } from "../policy/types.js";
import type { ScaleliteServer } from "./scalelite.js";
import type { WorkerMetrics } from "./prometheus.js";

export type { FleetMember };

/** A value and when it was read (ms since epoch); the gatherer keeps the last good one when a source fails. */
export interface Observed<T> {
  at: number;
  value: T;
}

export interface MeetingCounts {
  meetings: number;
  participants: number;
  videos: number;
  /** The createTime of the youngest meeting (ms since epoch), null with none; BBB's getMeetings tells it, check-ins do not. */
  newestCreatedAt?: number | null;
}

export interface CheckIn {
  stress?: number;
  meetings?: number;
  participants?: number;
  videos?: number;
}

export interface SnapshotInputs {
  group: string;
  takenAt: number;
  canPowerOff: boolean;
  fleet: readonly FleetMember[];
  /** Per `instance` label; absent when Prometheus never answered. */
  metrics?: Observed<ReadonlyMap<string, WorkerMetrics>>;
  scalelite?: Observed<readonly ScaleliteServer[]>;
  /** BBB `getMeetings` per server id. */
  meetings: ReadonlyMap<string, Observed<MeetingCounts>>;
  /** Sidecar check-ins per server id; a server's last one is kept (gone stale) when its sidecar falls silent. */
  checkIns: ReadonlyMap<string, Observed<CheckIn>>;
  /** A value older than this is stale (kept for display, never a reason to scale in). */
  freshForMs: number;
}

function freshness(at: number, inputs: SnapshotInputs): Freshness {
  return inputs.takenAt - at <= inputs.freshForMs ? "fresh" : "stale";
}

function reading(observed: Observed<unknown> | undefined, value: number | undefined, inputs: SnapshotInputs): Reading {
  if (observed === undefined || value === undefined || !Number.isFinite(value)) return { value: null, status: "missing" };
  return { value, status: freshness(observed.at, inputs) };
}

/**
 * Joins every source per server and marks each value fresh, stale or missing. A server whose sources failed gets
 * stale or missing values; the others are unaffected.
 */
export function buildSnapshot(inputs: SnapshotInputs): GroupSnapshot {
  const scaleliteById = new Map((inputs.scalelite?.value ?? []).map((server) => [server.id, server]));
  const servers = inputs.fleet.map((member): ServerSnapshot => {
    const metrics = inputs.metrics?.value.get(member.instance);
    const bbb = inputs.meetings.get(member.id);
    const checkIn = inputs.checkIns.get(member.id);
    const registered = scaleliteById.get(member.scaleliteId);
    // A worker whose sidecar has stopped checking in is unknown, never idle: whatever else reads zero meetings on it,
    // its counts are not fresh, so the policy neither drains it nor stops it on silence.
    const silent = checkIn !== undefined && freshness(checkIn.at, inputs) !== "fresh";
    // BBB's own count is the authority on meetings; the sidecar's check-in is the fallback.
    const meetingSource = (key: "meetings" | "participants" | "videos"): Reading => {
      const fromBbb = reading(bbb, bbb?.value[key], inputs);
      const fromCheckIn = reading(checkIn, checkIn?.value[key], inputs);
      const chosen = fromBbb.status === "fresh" || (fromCheckIn.status !== "fresh" && fromBbb.status !== "missing") ? fromBbb : fromCheckIn;
      return silent && chosen.status === "fresh" ? { ...chosen, status: "stale" } : chosen;
    };
    return {
      id: member.id,
      size: member.size,
      power: member.power,
      bootedAt: member.bootedAt,
      resizedAt: member.resizedAt,
      ...(member.image === undefined ? {} : { image: member.image }),
      ...(member.warm === true ? { warm: true } : {}),
      scalelite:
        registered === undefined
          ? null
          : { state: registered.state, online: registered.online, load: registered.load, loadMultiplier: registered.loadMultiplier },
      scaleliteStatus: inputs.scalelite === undefined ? "missing" : freshness(inputs.scalelite.at, inputs),
      cpu: reading(inputs.metrics, metrics?.cpu, inputs),
      memory: reading(inputs.metrics, metrics?.memory, inputs),
      networkBytesPerSecond: reading(inputs.metrics, metrics?.networkBytesPerSecond, inputs),
      stress: reading(checkIn, checkIn?.value.stress, inputs),
      meetings: meetingSource("meetings"),
      participants: meetingSource("participants"),
      videos: meetingSource("videos"),
      // Only a fresh BBB answer says how old the meetings are; it orders drain victims, never decides a scale-in.
      ...(!silent && bbb !== undefined && bbb.value.newestCreatedAt !== undefined && freshness(bbb.at, inputs) === "fresh"
        ? { newestMeetingAt: bbb.value.newestCreatedAt }
        : {}),
    };
  });
  return groupSnapshotSchema.parse({ group: inputs.group, takenAt: inputs.takenAt, canPowerOff: inputs.canPowerOff, servers });
}
