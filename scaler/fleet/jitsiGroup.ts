import type { WorkerPolicy } from "../../infra/config.js";

/** A Jitsi group as its fleet reads it: the desired count, and when it last changed (any change starts the grace). */
export interface JitsiGroupRecord {
  desired: number;
  updatedAt: number;
}

/** An instance of the group as its sidecar's check-ins left it. */
export interface JitsiInstance {
  instanceId: string;
  state: "provisioning" | "running" | "shutting_down";
  stress: number | null;
  shutdownRequested: boolean;
  shutdownConfirmedAt?: number;
}

/**
 * Where a Jitsi group's fleet reads its group and check-ins and writes desired counts, commands and audit entries:
 * the scaler's store (scaler/store/store.ts's ScalerStore satisfies it).
 */
export interface JitsiGroupStore {
  getGroup(id: string): Promise<JitsiGroupRecord | undefined>;
  requireGroup(id: string): Promise<JitsiGroupRecord>;
  createGroup(
    id: string,
    spec: { instanceType: "JVB" | "jibri"; desired: number; policy: WorkerPolicy; allowScheduler: boolean },
    actor: string,
  ): Promise<unknown>;
  listInstances(id: string): Promise<JitsiInstance[]>;
  isPaused(id: string): Promise<boolean>;
  stressSeries(id: string, sinceMs?: number): Promise<{ at: number; instanceId: string; stress: number }[]>;
  setDesired(id: string, desired: number, actor: string): Promise<{ from: number; to: number }>;
  requestShutdown(id: string, instanceIds: readonly string[], actor: string): Promise<void>;
  registerProvisioning(id: string, instanceId: string, details: Record<string, unknown>, actor: string): Promise<void>;
  /** Makes the fleet's workers' sidecar keys (and only those) the ones their tokens are checked with. */
  publishSidecarKeys(fleet: string, keys: readonly { keyId: string; publicKeyPem: string }[]): Promise<void>;
  appendAudit(
    id: string,
    entry: { kind: string; actor: string; message?: string; details?: Record<string, unknown> },
    instanceId?: string,
  ): Promise<void>;
}

/** What `GET /fleets/jitsi-<group>` answers: the group's fleet, each machine with its sidecar, and its last period. */
export interface JitsiFleetStatus {
  fleet: string;
  /** The group its sidecars report, and the component its machines run. */
  group: string;
  component: string;
  /** True until the fleet's lease is taken and its state loaded (an interrupted update recovered). */
  starting: boolean;
  servers: {
    name: string;
    /** The cloud's id, which the sidecar reports as its instanceId; null until the stack has created the machine. */
    id: string | null;
    cores: number;
    ramGb: number;
    power: string;
    phase: string;
    /** What the machine's sidecar last reported, as the last period read it; null while it has not checked in. */
    sidecar: {
      state: JitsiInstance["state"];
      stress: number | null;
      shutdownRequested: boolean;
      shutdownConfirmedAt: string | null;
    } | null;
  }[];
  lastPeriod: {
    at: string;
    paused: boolean;
    desired: number;
    /** The group's figure of the period just ended: average stress (JVB), available recorders (jibri); null without reports. */
    figure: number | null;
    autoscale: { kind: string; reason: string } | null;
    actions: { kind: string; server: string | null; reason: string }[];
    update: { summary: Record<string, number>; durationMs: number } | null;
  } | null;
  /** The last sanity check: sidecars of the group that are no machine of it, machines that never checked in. */
  sanity: { at: string; untracked: string[]; silent: string[] } | null;
}
