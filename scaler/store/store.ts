import { Redis } from "ioredis";
import { forecastPointSchema, type ForecastPoint } from "../policy/types.js";
import { TurnBatcher } from "./batcher.js";
import { StoreConflictError, StoreUnavailableError } from "./errors.js";
import {
  INSTANCE_STATES,
  type AuditEntry,
  type CheckIn,
  type CheckInReply,
  type GlobalPause,
  type Group,
  type GroupReport,
  type GroupSpec,
  type InstanceState,
  type InstanceStatus,
  type StressPoint,
} from "./schemas.js";
import {
  checkInsScript,
  deleteGroupScript,
  registerProvisioningScript,
  requestCommandScript,
  setDesiredScript,
  setPausedScript,
  writeGroupScript,
} from "./scripts.js";

export interface StoreOptions {
  keyPrefix: string;
  instanceTtl: { provisioningSeconds: number; idleSeconds: number; shuttingDownSeconds: number };
  retention: { stressPoints: number; stressSeconds: number; auditEntries: number; instanceAuditSeconds: number; commandSeconds: number };
  /** The clock, in ms; tests move it instead of sleeping. */
  now?: () => number;
}

/**
 * A Redis client that fails fast while Redis is away (no offline queue, bounded command time) and reconnects by
 * itself, so a request during an outage answers 503 instead of hanging, and the next one after it succeeds.
 * Commands issued in the same turn of the event loop go out together (auto-pipelining): under a burst of check-ins
 * one socket write and one read carry many scripts, which costs both Node and Redis far less than one each.
 * The scaler issues no blocking commands and no WATCH on this client, which auto-pipelining would hold up or break.
 */
export function connectRedis(url: string, commandTimeoutMs: number): Redis {
  return new Redis(url, {
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

/** Where each piece of state lives; every key starts with the configured prefix. */
class Keys {
  constructor(private readonly prefix: string) {}
  groups = () => `${this.prefix}groups`;
  globalPause = () => `${this.prefix}paused`;
  group = (group: string) => `${this.prefix}group:${group}`;
  live = (group: string) => `${this.prefix}group:${group}:live`;
  stress = (group: string) => `${this.prefix}group:${group}:stress`;
  groupAudit = (group: string) => `${this.prefix}group:${group}:audit`;
  instance = (group: string, instance: string) => `${this.prefix}group:${group}:instance:${instance}`;
  commands = (group: string, instance: string) => `${this.prefix}group:${group}:instance:${instance}:commands`;
  instanceAudit = (group: string, instance: string) => `${this.prefix}group:${group}:instance:${instance}:audit`;
  loadProfile = (group: string) => `${this.prefix}group:${group}:load-profile`;
  /** Revoked sidecar key ids (scaler/api/asap.ts), and the channel their changes are announced on. */
  revokedSidecarKeys = () => `${this.prefix}sidecar-keys:revoked`;
}

export type DesiredChange = { groupId: string; from: number; to: number };

/** A check-in waiting for its batch's script, stamped with the time it arrived. */
interface PendingCheckIn {
  report: CheckIn;
  now: number;
}

/** Check-ins written by one script call at most: a script holds Redis for its whole run (tens of µs per check-in). */
const MAX_CHECK_INS_PER_SCRIPT = 64;

/** The scaler's shared state: groups and their policy, live instances, stress series, commands and audit. */
export class ScalerStore {
  readonly keys: Keys;
  private readonly now: () => number;
  private readonly checkIns = new TurnBatcher<PendingCheckIn, string[]>(MAX_CHECK_INS_PER_SCRIPT, (batch) => this.writeCheckIns(batch));

  constructor(
    readonly redis: Redis,
    private readonly options: StoreOptions,
  ) {
    this.keys = new Keys(options.keyPrefix);
    this.now = options.now ?? Date.now;
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.redis.ping()) === "PONG";
    } catch {
      return false;
    }
  }

  // ---- groups

  async createGroup(id: string, spec: GroupSpec, actor: string): Promise<Group> {
    const outcome = await this.writeGroup("create", id, spec, actor);
    if (outcome === "exists") throw new StoreConflictError("group_exists", "id", `group ${id} already exists`);
    return this.requireGroup(id);
  }

  async replaceGroup(id: string, spec: GroupSpec, actor: string): Promise<Group> {
    const outcome = await this.writeGroup("replace", id, spec, actor);
    if (outcome === "missing") throw groupNotFound(id);
    return this.requireGroup(id);
  }

  async deleteGroup(id: string, actor: string): Promise<void> {
    const k = this.keys;
    const outcome = await this.call("deleteGroup", () =>
      deleteGroupScript.run(
        this.redis,
        [k.group(id), k.groups(), k.live(id), k.stress(id), k.groupAudit(id), k.loadProfile(id)],
        [id, this.auditHead(actor), this.options.retention.auditEntries, this.options.retention.instanceAuditSeconds * 1000],
      ),
    );
    if (outcome === "missing") throw groupNotFound(id);
  }

  async getGroup(id: string): Promise<Group | undefined> {
    const fields = await this.call("getGroup", () => this.redis.hgetall(this.keys.group(id)));
    return parseGroup(fields);
  }

  async requireGroup(id: string): Promise<Group> {
    const group = await this.getGroup(id);
    if (group === undefined) throw groupNotFound(id);
    return group;
  }

  async listGroups(): Promise<Group[]> {
    const ids = (await this.call("listGroups", () => this.redis.smembers(this.keys.groups()))).sort();
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.keys.group(id));
    const results = await this.call("listGroups", () => pipeline.exec());
    return (results ?? []).flatMap(([, fields]) => {
      const group = parseGroup(fields as Record<string, string>);
      return group === undefined ? [] : [group];
    });
  }

  /** Sets the desired count of a group; it must lie within the group's [min, max]. */
  async setDesired(id: string, desired: number, actor: string): Promise<DesiredChange> {
    const reply = await this.runSetDesired(id, "set", desired, actor, "desired.set");
    if (reply[0] === "missing") throw groupNotFound(id);
    if (reply[0] === "range") {
      throw new StoreConflictError(
        "out_of_range",
        "desired",
        `desired (${desired}) must lie within [min, max] = [${reply[1]}, ${reply[2]}]`,
      );
    }
    return { groupId: id, from: Number(reply[1]), to: Number(reply[2]) };
  }

  /**
   * A scheduler's full scaling: every group that allows it (optionally of one instance type or environment) moves its
   * desired count towards `target` (default: max for up, min for down), never against the direction.
   */
  async fullScaling(
    request: { direction: "up" | "down"; target?: number; instanceType?: string; environment?: string },
    actor: string,
  ): Promise<DesiredChange[]> {
    const groups = (await this.listGroups()).filter(
      (group) =>
        group.allowScheduler &&
        (request.instanceType === undefined || group.instanceType === request.instanceType) &&
        (request.environment === undefined || group.environment === request.environment),
    );
    const changes: DesiredChange[] = [];
    for (const group of groups) {
      const target = request.target ?? (request.direction === "up" ? group.policy.max : group.policy.min);
      const reply = await this.runSetDesired(group.id, request.direction, target, actor, `full-scaling.${request.direction}`);
      if (reply[0] === "ok") changes.push({ groupId: group.id, from: Number(reply[1]), to: Number(reply[2]) });
    }
    return changes;
  }

  async setGroupPaused(id: string, paused: boolean, actor: string): Promise<Group> {
    const outcome = await this.call("setGroupPaused", () =>
      setPausedScript.run(
        this.redis,
        [this.keys.group(id), this.keys.groupAudit(id)],
        [paused ? "1" : "0", this.now(), this.auditHead(actor), this.options.retention.auditEntries],
      ),
    );
    if (outcome === "missing") throw groupNotFound(id);
    return this.requireGroup(id);
  }

  /** The global kill switch: while set, no group is scaled. */
  async setGlobalPause(paused: boolean, actor: string): Promise<GlobalPause> {
    const key = this.keys.globalPause();
    if (paused) {
      const at = this.now();
      await this.call("setGlobalPause", () => this.redis.hset(key, "by", actor, "at", String(at)));
      return { paused, by: actor, at };
    }
    await this.call("setGlobalPause", () => this.redis.del(key));
    return { paused: false };
  }

  async getGlobalPause(): Promise<GlobalPause> {
    const fields = await this.call("getGlobalPause", () => this.redis.hgetall(this.keys.globalPause()));
    if (fields.by === undefined) return { paused: false };
    return { paused: true, by: fields.by, at: Number(fields.at) };
  }

  /** Whether the decision loop must leave the group alone (its own pause or the global kill switch). */
  async isPaused(id: string): Promise<boolean> {
    const [global, group] = await this.call("isPaused", () =>
      Promise.all([this.redis.exists(this.keys.globalPause()), this.redis.hget(this.keys.group(id), "paused")]),
    );
    return global === 1 || group === "1";
  }

  // ---- instances

  /**
   * Records one sidecar report atomically and returns the commands waiting for the instance. Reports that arrive in
   * the same turn of the event loop are written by one script call, each checked and answered on its own.
   */
  async checkIn(report: CheckIn): Promise<CheckInReply> {
    const { group } = report.details;
    const reply = await this.checkIns.submit({ report, now: this.now() });
    if (reply[0] === "unknown_group") {
      throw new StoreConflictError("group_not_found", "instance.group", `group ${group} is not configured on this scaler`);
    }
    if (reply[0] === "type_mismatch") {
      throw new StoreConflictError(
        "instance_type_mismatch",
        "instance.instanceType",
        `group ${group} holds ${reply[1]} instances, not ${report.details.instanceType}`,
      );
    }
    return { shutdown: reply[1] === "1", reconfigure: reply[2] === "" || reply[2] === undefined ? null : reply[2] };
  }

  /** An instance the actuator has just created: alive for the provisioning TTL until its sidecar first reports. */
  async registerProvisioning(groupId: string, instanceId: string, details: Record<string, unknown>, actor: string): Promise<void> {
    const k = this.keys;
    const now = this.now();
    const outcome = await this.call("registerProvisioning", () =>
      registerProvisioningScript.run(
        this.redis,
        [k.group(groupId), k.instance(groupId, instanceId), k.live(groupId), k.groupAudit(groupId), k.instanceAudit(groupId, instanceId)],
        [
          instanceId,
          JSON.stringify({ ...details, instanceId, group: groupId }),
          now,
          this.options.instanceTtl.provisioningSeconds * 1000,
          this.auditHead(actor, instanceId, now),
          this.options.retention.auditEntries,
          this.options.retention.instanceAuditSeconds * 1000,
        ],
      ),
    );
    if (outcome === "missing") throw groupNotFound(groupId);
  }

  /** Asks instances to shut down; delivered in the reply to their next poll or status report. */
  async requestShutdown(groupId: string, instanceIds: readonly string[], actor: string): Promise<void> {
    await this.requestCommand(groupId, "shutdown", "1", instanceIds, actor);
  }

  /**
   * Asks instances (default: every live instance of the group) to run their reconfigure script. Returns the request
   * id (an ISO date) the sidecar echoes back as `reconfigureComplete`.
   */
  async requestReconfigure(
    groupId: string,
    instanceIds: readonly string[] | undefined,
    actor: string,
  ): Promise<{ request: string; instanceIds: string[] }> {
    const targets = instanceIds ?? (await this.liveInstanceIds(groupId));
    const request = new Date(this.now()).toISOString();
    if (targets.length > 0) await this.requestCommand(groupId, "reconfigure", request, targets, actor);
    else await this.requireGroup(groupId);
    return { request, instanceIds: [...targets] };
  }

  async liveInstanceIds(groupId: string): Promise<string[]> {
    return this.call("liveInstanceIds", () => this.redis.zrangebyscore(this.keys.live(groupId), `(${this.now()}`, "+inf"));
  }

  async listInstances(groupId: string): Promise<InstanceStatus[]> {
    const ids = await this.liveInstanceIds(groupId);
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) {
      pipeline.hgetall(this.keys.instance(groupId, id));
      pipeline.hmget(this.keys.commands(groupId, id), "shutdown", "reconfigure");
    }
    const results = (await this.call("listInstances", () => pipeline.exec())) ?? [];
    const instances: InstanceStatus[] = [];
    ids.forEach((instanceId, index) => {
      const fields = results[2 * index]?.[1] as Record<string, string> | undefined;
      const commands = (results[2 * index + 1]?.[1] as (string | null)[] | undefined) ?? [];
      if (fields === undefined || fields.state === undefined) return;
      instances.push({
        instanceId,
        instanceType: fields.instanceType ?? "",
        state: fields.state as InstanceState,
        details: JSON.parse(fields.details ?? "{}") as Record<string, unknown>,
        stats: fields.stats === undefined ? null : (JSON.parse(fields.stats) as Record<string, unknown>),
        stress: fields.stress === undefined ? null : Number(fields.stress),
        firstSeenAt: Number(fields.firstSeenAt),
        lastReportAt: Number(fields.lastReportAt),
        shutdownRequested: commands[0] === "1",
        reconfigureRequested: commands[1] ?? null,
      });
    });
    return instances;
  }

  async groupReport(groupId: string): Promise<GroupReport> {
    const group = await this.requireGroup(groupId);
    const instances = await this.listInstances(groupId);
    return { group, counts: countByState(instances), instances };
  }

  /** Live instances by group and state, for the metrics gauge and the status page. */
  async countsByGroup(): Promise<Map<string, GroupReport["counts"]>> {
    const counts = new Map<string, GroupReport["counts"]>();
    for (const group of await this.listGroups()) {
      counts.set(group.id, countByState(await this.listInstances(group.id)));
    }
    return counts;
  }

  // ---- stress series

  /** The group's stress points no older than the retention (and `sinceMs` when given), oldest first. */
  async stressSeries(groupId: string, sinceMs?: number): Promise<StressPoint[]> {
    const oldest = Math.max(sinceMs ?? 0, this.now() - this.options.retention.stressSeconds * 1000);
    const entries = await this.call("stressSeries", () => this.redis.xrange(this.keys.stress(groupId), `${oldest}-0`, "+"));
    return entries.map(([id, fields]) => ({
      at: Number(id.split("-")[0]),
      instanceId: fieldOf(fields, "i"),
      stress: Number(fieldOf(fields, "s")),
    }));
  }

  // ---- load profile

  /**
   * Records the group's load at a slot of the week (a weekday and local time, "tue 08:05"). One field per slot,
   * overwritten a week later: the hash never holds more than a week of slots.
   */
  async recordLoad(groupId: string, slot: string, point: ForecastPoint): Promise<void> {
    await this.call("recordLoad", () => this.redis.hset(this.keys.loadProfile(groupId), slot, JSON.stringify(point)));
  }

  /** The load last recorded at each slot, in the order asked; undefined where none was or it does not parse. */
  async readLoad(groupId: string, slots: readonly string[]): Promise<(ForecastPoint | undefined)[]> {
    if (slots.length === 0) return [];
    const values = await this.call("readLoad", () => this.redis.hmget(this.keys.loadProfile(groupId), ...slots));
    return values.map((value) => {
      if (value === null) return undefined;
      try {
        const parsed = forecastPointSchema.safeParse(JSON.parse(value));
        return parsed.success ? parsed.data : undefined;
      } catch {
        return undefined;
      }
    });
  }

  // ---- audit

  /** Appends an audit entry to the group's trail and, with `instanceId`, to the instance's trail too (atomically). */
  async appendAudit(groupId: string, entry: Omit<AuditEntry, "at" | "instanceId"> & { at?: number }, instanceId?: string): Promise<void> {
    const full: AuditEntry = { at: entry.at ?? this.now(), ...entry, ...(instanceId === undefined ? {} : { instanceId }) };
    const json = JSON.stringify(full);
    const max = this.options.retention.auditEntries;
    const multi = this.redis.multi().xadd(this.keys.groupAudit(groupId), "MAXLEN", "~", max, "*", "e", json);
    if (instanceId !== undefined) {
      multi
        .xadd(this.keys.instanceAudit(groupId, instanceId), "MAXLEN", "~", max, "*", "e", json)
        .pexpire(this.keys.instanceAudit(groupId, instanceId), this.options.retention.instanceAuditSeconds * 1000);
    }
    await this.call("appendAudit", () => multi.exec());
  }

  /** The newest audit entries first, of the group or of one of its instances. */
  async readAudit(groupId: string, options: { instanceId?: string; limit?: number } = {}): Promise<AuditEntry[]> {
    const key = options.instanceId === undefined ? this.keys.groupAudit(groupId) : this.keys.instanceAudit(groupId, options.instanceId);
    const entries = await this.call("readAudit", () => this.redis.xrevrange(key, "+", "-", "COUNT", options.limit ?? 100));
    return entries.map(([, fields]) => JSON.parse(fieldOf(fields, "e")) as AuditEntry);
  }

  async close(): Promise<void> {
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  // ---- internals

  private async writeGroup(mode: "create" | "replace", id: string, spec: GroupSpec, actor: string): Promise<unknown> {
    const k = this.keys;
    return this.call(`${mode}Group`, () =>
      writeGroupScript.run(
        this.redis,
        [k.group(id), k.groups(), k.groupAudit(id)],
        [
          mode,
          id,
          spec.instanceType,
          spec.desired,
          spec.policy.min,
          spec.policy.max,
          spec.allowScheduler ? "1" : "0",
          spec.environment ?? "",
          JSON.stringify(spec),
          this.now(),
          this.auditHead(actor),
          this.options.retention.auditEntries,
        ],
      ),
    );
  }

  private async runSetDesired(
    id: string,
    mode: "set" | "up" | "down",
    target: number,
    actor: string,
    kind: string,
  ): Promise<(string | number)[]> {
    const k = this.keys;
    return (await this.call("setDesired", () =>
      setDesiredScript.run(
        this.redis,
        [k.group(id), k.groupAudit(id)],
        [mode, target, this.now(), this.auditHead(actor), this.options.retention.auditEntries, kind],
      ),
    )) as (string | number)[];
  }

  private async requestCommand(
    groupId: string,
    field: "shutdown" | "reconfigure",
    value: string,
    instanceIds: readonly string[],
    actor: string,
  ): Promise<void> {
    const k = this.keys;
    const unique = [...new Set(instanceIds)];
    const keys = [k.group(groupId), k.live(groupId), k.groupAudit(groupId)];
    for (const id of unique) keys.push(k.commands(groupId, id), k.instanceAudit(groupId, id));
    const { retention } = this.options;
    const reply = (await this.call("requestCommand", () =>
      requestCommandScript.run(this.redis, keys, [
        field,
        value,
        this.now(),
        retention.commandSeconds * 1000,
        this.auditHead(actor),
        retention.auditEntries,
        retention.instanceAuditSeconds * 1000,
        ...unique,
      ]),
    )) as string[];
    if (reply[0] === "missing") throw groupNotFound(groupId);
    if (reply[0] === "unknown") {
      const missing = reply.slice(1);
      throw new StoreConflictError("instance_not_found", "instances", `not live in group ${groupId}: ${missing.join(", ")}`);
    }
  }

  private async writeCheckIns(batch: readonly PendingCheckIn[]): Promise<string[][]> {
    const k = this.keys;
    const { instanceTtl: ttl, retention } = this.options;
    const groupNumbers = new Map<string, number>();
    const groupKeys: string[] = [];
    const checkInKeys: string[] = [];
    const checkInArgs: (string | number)[] = [];
    for (const { report, now } of batch) {
      const { instanceId, group } = report.details;
      let groupNumber = groupNumbers.get(group);
      if (groupNumber === undefined) {
        groupNumber = groupNumbers.size + 1;
        groupNumbers.set(group, groupNumber);
        groupKeys.push(k.group(group), k.live(group), k.stress(group), k.groupAudit(group));
      }
      checkInKeys.push(k.instance(group, instanceId), k.commands(group, instanceId), k.instanceAudit(group, instanceId));
      checkInArgs.push(
        groupNumber,
        report.details.instanceType,
        now,
        report.kind,
        JSON.stringify(report.details),
        report.stats === undefined ? "" : JSON.stringify(report.stats),
        report.stress === undefined ? "" : String(report.stress),
        report.shuttingDown ? "1" : "0",
        report.reconfigureComplete ?? "",
        report.reconfigureError ? "1" : "0",
        instanceId,
        report.sidecarTimestamp === undefined ? "" : String(report.sidecarTimestamp),
      );
    }
    const args = [
      ttl.idleSeconds * 1000,
      ttl.shuttingDownSeconds * 1000,
      retention.commandSeconds * 1000,
      retention.stressPoints,
      retention.stressSeconds * 1000,
      retention.auditEntries,
      retention.instanceAuditSeconds * 1000,
      groupNumbers.size,
      ...checkInArgs,
    ];
    return (await this.call("checkIn", () => checkInsScript.run(this.redis, [...groupKeys, ...checkInKeys], args))) as string[][];
  }

  private auditHead(actor: string, instanceId?: string, at = this.now()): string {
    return JSON.stringify({ at, actor, ...(instanceId === undefined ? {} : { instanceId }) }).slice(0, -1);
  }

  /** Runs Redis work, turning connection failures and timeouts into `StoreUnavailableError`. */
  private async call<T>(operation: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof Error && error.name === "ReplyError") throw error;
      throw new StoreUnavailableError(operation, error);
    }
  }
}

function groupNotFound(id: string): StoreConflictError {
  return new StoreConflictError("group_not_found", "id", `group ${id} does not exist`);
}

function parseGroup(fields: Record<string, string>): Group | undefined {
  if (fields.spec === undefined || fields.id === undefined) return undefined;
  const spec = JSON.parse(fields.spec) as GroupSpec;
  return {
    id: fields.id,
    ...spec,
    desired: Number(fields.desired),
    paused: fields.paused === "1",
    createdAt: Number(fields.createdAt),
    updatedAt: Number(fields.updatedAt),
  };
}

function countByState(instances: readonly InstanceStatus[]): GroupReport["counts"] {
  const counts = Object.fromEntries(INSTANCE_STATES.map((state) => [state, 0])) as Record<InstanceState, number>;
  for (const instance of instances) counts[instance.state] += 1;
  return { ...counts, total: instances.length };
}

/** A stream entry's field value (fields come as name, value, name, value, ...). */
function fieldOf(fields: string[], name: string): string {
  for (let index = 0; index + 1 < fields.length; index += 2) {
    if (fields[index] === name) return fields[index + 1] ?? "";
  }
  return "";
}
