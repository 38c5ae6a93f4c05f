import { Redis } from "ioredis";
import { JITSI_KEY_ID_PREFIX } from "../../infra/workerCredentials.js";
import type { ForecastPoint } from "../policy/types.js";
import { AuditStore } from "./audit.js";
import type { StoreOptions } from "./context.js";
import { StoreUnavailableError, storeFault } from "./errors.js";
import { GroupStore, type DesiredChange } from "./groups.js";
import { InstanceStore } from "./instances.js";
import { Keys } from "./keys.js";
import { LoadProfileStore } from "./loadProfile.js";
import type {
  AuditEntry,
  CheckIn,
  CheckInReply,
  GlobalPause,
  Group,
  GroupReport,
  GroupSpec,
  InstanceStatus,
  StressPoint,
} from "./schemas.js";
import { ScheduleStore } from "./schedules.js";
import { StressStore } from "./stress.js";

export type { StoreOptions } from "./context.js";
export type { DesiredChange } from "./groups.js";
export { Keys } from "./keys.js";

/**
 * A Redis client that fails fast while Redis is away (no offline queue, bounded command time) and reconnects by
 * itself, so a request during an outage answers 503 instead of hanging, and the next one after it succeeds.
 * Commands issued in the same turn of the event loop go out together (auto-pipelining): under a burst of check-ins
 * one socket write and one read carry many scripts, which costs both Node and Redis far less than one each.
 * The scaler issues no blocking commands and no WATCH on this client, which auto-pipelining would hold up or break.
 */
export function connectRedis(url: string, commandTimeoutMs: number, sentinel?: SentinelTarget): Redis {
  return new Redis(url, {
    // With Sentinel, the sentinels name the primary; a failover closes the connection and the next one finds the new
    // primary (ioredis checks its role). A primary demoted under a live connection answers READONLY: reconnect then.
    // Not ioredis's failoverDetector: a switch announced while it reconnects ends the client for good.
    ...(sentinel === undefined
      ? {}
      : { sentinels: sentinel.sentinels, name: sentinel.name, reconnectOnError: (error: Error) => error.message.startsWith("READONLY") }),
    enableAutoPipelining: true,
    // Script calls go out as they are made: check-ins are already batched per turn (one call for many), and wrapping
    // each call in a pipeline of one cost about a quarter of the store's CPU per check-in.
    autoPipeliningIgnoredCommands: ["evalsha", "eval"],
    enableOfflineQueue: false,
    commandTimeout: commandTimeoutMs,
    maxRetriesPerRequest: 0,
    connectTimeout: commandTimeoutMs,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
    lazyConnect: false,
  });
}

export interface SentinelTarget {
  sentinels: { host: string; port: number }[];
  name: string;
}

/** The `redis` settings the connection and the check-ins' replication are made from (scaler/settings.ts). */
export interface RedisSettings {
  url: string;
  commandTimeoutMs: number;
  sentinels?: { host: string; port: number }[] | undefined;
  name: string;
  replicasToAck?: number | undefined;
  replicaAckTimeoutMs: number;
}

/** How many replicas must hold a check-in before it is acknowledged: `replicasToAck`, else 1 with sentinels, else none. */
export function replicationOf(redis: RedisSettings): { replicas: number; timeoutMs: number } | undefined {
  const replicas = redis.replicasToAck ?? (redis.sentinels === undefined ? 0 : 1);
  return replicas === 0 ? undefined : { replicas, timeoutMs: redis.replicaAckTimeoutMs };
}

/** The connection and the store options of the `redis` settings: Sentinel when sentinels are named, WAIT for replicas. */
export function redisOfSettings(redis: RedisSettings): { client: Redis; replication?: { replicas: number; timeoutMs: number } } {
  const sentinel = redis.sentinels === undefined ? undefined : { sentinels: redis.sentinels, name: redis.name };
  const replication = replicationOf(redis);
  return { client: connectRedis(redis.url, redis.commandTimeoutMs, sentinel), ...(replication === undefined ? {} : { replication }) };
}

/**
 * The scaler's shared state, one module per kind: groups (`groups.ts`), live instances and their commands
 * (`instances.ts`), stress series (`stress.ts`), load profiles (`loadProfile.ts`) and audit trails (`audit.ts`). This
 * facade keeps one name for each call, so its callers need not know which module holds what.
 */
export class ScalerStore {
  readonly keys: Keys;
  readonly groups: GroupStore;
  readonly instances: InstanceStore;
  readonly stress: StressStore;
  readonly loadProfile: LoadProfileStore;
  readonly audit: AuditStore;
  readonly schedules: ScheduleStore;
  private readonly now: () => number;

  constructor(
    readonly redis: Redis,
    options: StoreOptions,
  ) {
    this.keys = new Keys(options.keyPrefix);
    this.now = options.now ?? Date.now;
    this.groups = new GroupStore(redis, this.keys, options);
    this.instances = new InstanceStore(redis, this.keys, options, this.groups);
    this.stress = new StressStore(redis, this.keys, options);
    this.loadProfile = new LoadProfileStore(redis, this.keys, options);
    this.audit = new AuditStore(redis, this.keys, options);
    this.schedules = new ScheduleStore(redis, this.keys, options);
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.redis.ping()) === "PONG";
    } catch {
      return false;
    }
  }

  /**
   * Whether the store can take writes now, and if not why: a short-lived key is written, since a Redis out of memory
   * (`noeviction`) or read-only still answers PING but refuses every check-in.
   */
  async readiness(): Promise<{ ready: true } | { ready: false; reason: string }> {
    try {
      await this.redis.set(this.keys.writeProbe(), String(this.now()), "PX", 10_000);
      return { ready: true };
    } catch (error) {
      const fault = storeFault("readiness", error);
      return { ready: false, reason: fault instanceof StoreUnavailableError ? fault.reason : fault.message };
    }
  }

  // ---- groups

  createGroup(id: string, spec: GroupSpec, actor: string): Promise<Group> {
    return this.groups.createGroup(id, spec, actor);
  }

  replaceGroup(id: string, spec: GroupSpec, actor: string): Promise<Group> {
    return this.groups.replaceGroup(id, spec, actor);
  }

  deleteGroup(id: string, actor: string): Promise<void> {
    return this.groups.deleteGroup(id, actor);
  }

  getGroup(id: string): Promise<Group | undefined> {
    return this.groups.getGroup(id);
  }

  requireGroup(id: string): Promise<Group> {
    return this.groups.requireGroup(id);
  }

  listGroups(): Promise<Group[]> {
    return this.groups.listGroups();
  }

  setDesired(id: string, desired: number, actor: string): Promise<DesiredChange> {
    return this.groups.setDesired(id, desired, actor);
  }

  fullScaling(
    request: { direction: "up" | "down"; target?: number; instanceType?: string; environment?: string },
    actor: string,
  ): Promise<DesiredChange[]> {
    return this.groups.fullScaling(request, actor);
  }

  setGroupPaused(id: string, paused: boolean, actor: string): Promise<Group> {
    return this.groups.setGroupPaused(id, paused, actor);
  }

  setGlobalPause(paused: boolean, actor: string): Promise<GlobalPause> {
    return this.groups.setGlobalPause(paused, actor);
  }

  getGlobalPause(): Promise<GlobalPause> {
    return this.groups.getGlobalPause();
  }

  isPaused(id: string): Promise<boolean> {
    return this.groups.isPaused(id);
  }

  // ---- instances

  checkIn(report: CheckIn): Promise<CheckInReply> {
    return this.instances.checkIn(report);
  }

  registerProvisioning(groupId: string, instanceId: string, details: Record<string, unknown>, actor: string): Promise<void> {
    return this.instances.registerProvisioning(groupId, instanceId, details, actor);
  }

  requestShutdown(groupId: string, instanceIds: readonly string[], actor: string): Promise<void> {
    return this.instances.requestShutdown(groupId, instanceIds, actor);
  }

  withdrawShutdown(groupId: string, instanceIds: readonly string[], actor: string): Promise<void> {
    return this.instances.withdrawShutdown(groupId, instanceIds, actor);
  }

  requestReconfigure(
    groupId: string,
    instanceIds: readonly string[] | undefined,
    actor: string,
  ): Promise<{ request: string; instanceIds: string[] }> {
    return this.instances.requestReconfigure(groupId, instanceIds, actor);
  }

  liveInstanceIds(groupId: string): Promise<string[]> {
    return this.instances.liveInstanceIds(groupId);
  }

  listInstances(groupId: string): Promise<InstanceStatus[]> {
    return this.instances.listInstances(groupId);
  }

  /**
   * Replaces a Jitsi fleet's published sidecar public keys (by key id `confscale-jitsi/<fleet>/...`) with `keys`: the
   * token check reads them, and a destroyed worker's key stops working with its next publication.
   */
  async publishSidecarKeys(fleet: string, keys: readonly { keyId: string; publicKeyPem: string }[]): Promise<void> {
    const hash = this.keys.jitsiSidecarKeys();
    const ownPrefix = `${JITSI_KEY_ID_PREFIX}/${fleet}/`;
    const current = (await this.redis.hkeys(hash)).filter((kid) => kid.startsWith(ownPrefix));
    const gone = current.filter((kid) => !keys.some((key) => key.keyId === kid));
    const write = this.redis.multi();
    if (gone.length > 0) write.hdel(hash, ...gone);
    for (const key of keys) write.hset(hash, key.keyId, key.publicKeyPem);
    await write.exec();
  }

  /** A Jitsi worker's sidecar public key (SPKI PEM) by its key id, if its fleet published it. */
  async jitsiSidecarKey(keyId: string): Promise<string | undefined> {
    return (await this.redis.hget(this.keys.jitsiSidecarKeys(), keyId)) ?? undefined;
  }

  untrackedGroups(): Promise<{ id: string; instances: InstanceStatus[] }[]> {
    return this.instances.untrackedGroups();
  }

  groupReport(groupId: string): Promise<GroupReport> {
    return this.instances.groupReport(groupId);
  }

  countsByGroup(): Promise<Map<string, GroupReport["counts"]>> {
    return this.instances.countsByGroup();
  }

  // ---- stress series, load profile, audit

  stressSeries(groupId: string, sinceMs?: number): Promise<StressPoint[]> {
    return this.stress.stressSeries(groupId, sinceMs);
  }

  recordLoad(groupId: string, slot: string, point: ForecastPoint): Promise<void> {
    return this.loadProfile.recordLoad(groupId, slot, point);
  }

  readLoad(groupId: string, slots: readonly string[]): Promise<(ForecastPoint | undefined)[]> {
    return this.loadProfile.readLoad(groupId, slots);
  }

  appendAudit(groupId: string, entry: Omit<AuditEntry, "at" | "instanceId"> & { at?: number }, instanceId?: string): Promise<void> {
    return this.audit.appendAudit(groupId, entry, instanceId);
  }

  readAudit(groupId: string, options: { instanceId?: string; limit?: number } = {}): Promise<AuditEntry[]> {
    return this.audit.readAudit(groupId, options);
  }

  requireAuditedGroup(groupId: string): Promise<void> {
    return this.audit.requireAuditedGroup(groupId);
  }

  async close(): Promise<void> {
    await this.instances.close();
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}
