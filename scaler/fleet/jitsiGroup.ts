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
