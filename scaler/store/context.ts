import type { Redis } from "ioredis";
import { StoreConflictError, storeFault } from "./errors.js";
import type { Keys } from "./keys.js";

export interface StoreOptions {
  keyPrefix: string;
  instanceTtl: { provisioningSeconds: number; idleSeconds: number; shuttingDownSeconds: number };
  retention: { stressPoints: number; stressSeconds: number; auditEntries: number; instanceAuditSeconds: number; commandSeconds: number };
  /**
   * Replicas that must hold a check-in (Redis WAIT) before it is acknowledged, and how long to wait for them: with
   * Sentinel, a failover then loses no check-in that was answered 2xx (settings.ts `redis.replicasToAck`).
   */
  replication?: { replicas: number; timeoutMs: number };
  /** The clock, in ms; tests move it instead of sleeping. */
  now?: () => number;
}

/** What every part of the store shares: the Redis client, where keys live, the settings and the clock. */
export abstract class StorePart {
  protected readonly now: () => number;

  constructor(
    protected readonly redis: Redis,
    protected readonly keys: Keys,
    protected readonly options: StoreOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  protected auditHead(actor: string, instanceId?: string, at = this.now()): string {
    return JSON.stringify({ at, actor, ...(instanceId === undefined ? {} : { instanceId }) }).slice(0, -1);
  }

  /** Runs Redis work, turning connection failures, timeouts and refusals into `StoreUnavailableError`. */
  protected async call<T>(operation: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw storeFault(operation, error);
    }
  }
}

export function groupNotFound(id: string): StoreConflictError {
  return new StoreConflictError("group_not_found", "id", `group ${id} does not exist`);
}
/** A stream entry's field value (fields come as name, value, name, value, ...). */
export function fieldOf(fields: string[], name: string): string {
  for (let index = 0; index + 1 < fields.length; index += 2) {
    if (fields[index] === name) return fields[index + 1] ?? "";
  }
  return "";
}
