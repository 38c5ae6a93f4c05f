import type { Redis } from "ioredis";
import { TurnBatcher } from "./batcher.js";
import { StorePart, groupNotFound, type StoreOptions } from "./context.js";
import { StoreConflictError, replyError, storeFault } from "./errors.js";
import type { GroupStore } from "./groups.js";
import type { Keys } from "./keys.js";
import { INSTANCE_STATES, type CheckIn, type CheckInReply, type GroupReport, type InstanceState, type InstanceStatus } from "./schemas.js";
import { checkInsScript, registerProvisioningScript, requestCommandScript } from "./scripts.js";

/** A check-in waiting for its batch's script: its group and instance, and its script arguments after the group's number. */
interface PendingCheckIn {
  group: string;
  instanceId: string;
  args: (string | number)[];
}

/** Check-ins written by one script call at most: a script holds Redis for its whole run (tens of µs per check-in). */
const MAX_CHECK_INS_PER_SCRIPT = 64;

/** Live instances: sidecar check-ins, instances the actuator registers, and the commands waiting for them. */
export class InstanceStore extends StorePart {
  private readonly checkIns = new TurnBatcher<PendingCheckIn, string[]>(MAX_CHECK_INS_PER_SCRIPT, (batch) => this.writeCheckIns(batch));

  /**
   * Check-ins that must reach replicas are written on a connection of their own: WAIT blocks the connection it is
   * sent on, and on the shared one it would hold up the lease's renewals and the API behind it.
   */
  private readonly replicated: Redis | undefined;

  constructor(
    redis: Redis,
    keys: Keys,
    options: StoreOptions,
    private readonly groups: GroupStore,
  ) {
    super(redis, keys, options);
    if ((options.replication?.replicas ?? 0) > 0) {
      this.replicated = redis.duplicate();
      // The shared connection's listener reports Redis faults; this one's answer as 503s.
      this.replicated.on("error", () => undefined);
    }
  }

  /** Closes the check-ins' own connection, if any. */
  async close(): Promise<void> {
    await this.replicated?.quit().catch(() => this.replicated?.disconnect());
  }

  /**
   * Records one sidecar report atomically and returns the commands waiting for the instance. Reports that arrive in
   * the same turn of the event loop are written by one script call, each checked and answered on its own.
   */
  async checkIn(report: CheckIn): Promise<CheckInReply> {
    const { group } = report.details;
    // Encoded here, not in the batch: a report that cannot be encoded fails alone.
    const reply = await this.checkIns.submit(pendingCheckIn(report, this.now()));
    if (reply[0] === "type_mismatch") {
      throw new StoreConflictError(
        "instance_type_mismatch",
        "instance.instanceType",
        `group ${group} holds ${reply[1]} instances, not ${report.details.instanceType}`,
      );
    }
    if (reply[0] === "error") throw storeFault("checkIn", replyError(reply[1] ?? "check-in failed"));
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

  /** Takes a shutdown request back (the server was taken back before its drain ended); the sidecar serves again. */
  async withdrawShutdown(groupId: string, instanceIds: readonly string[], actor: string): Promise<void> {
    await this.requestCommand(groupId, "shutdown", "", instanceIds, actor);
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
    else await this.groups.requireGroup(groupId);
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
        ...(fields.shutdownConfirmedAt === undefined ? {} : { shutdownConfirmedAt: Number(fields.shutdownConfirmedAt) }),
      });
    });
    return instances;
  }

  /** Groups sidecars report to that no one has configured, with their live instances (sanity lists them as untracked). */
  async untrackedGroups(): Promise<{ id: string; instances: InstanceStatus[] }[]> {
    const ids = (await this.call("untrackedGroups", () => this.redis.smembers(this.keys.untrackedGroups()))).sort();
    const untracked: { id: string; instances: InstanceStatus[] }[] = [];
    for (const id of ids) {
      if ((await this.groups.getGroup(id)) !== undefined) continue;
      const instances = await this.listInstances(id);
      if (instances.length > 0) untracked.push({ id, instances });
    }
    return untracked;
  }

  async groupReport(groupId: string): Promise<GroupReport> {
    const group = await this.groups.requireGroup(groupId);
    const instances = await this.listInstances(groupId);
    return { group, counts: countByState(instances), instances };
  }

  /** Live instances by group and state, for the metrics gauge and the status page. */
  async countsByGroup(): Promise<Map<string, GroupReport["counts"]>> {
    const counts = new Map<string, GroupReport["counts"]>();
    for (const group of await this.groups.listGroups()) {
      counts.set(group.id, countByState(await this.listInstances(group.id)));
    }
    return counts;
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
    for (const { group, instanceId, args } of batch) {
      let groupNumber = groupNumbers.get(group);
      if (groupNumber === undefined) {
        groupNumber = groupNumbers.size + 1;
        groupNumbers.set(group, groupNumber);
        groupKeys.push(k.group(group), k.live(group), k.stress(group), k.groupAudit(group), k.untrackedGroups());
      }
      checkInKeys.push(k.instance(group, instanceId), k.commands(group, instanceId), k.instanceAudit(group, instanceId));
      checkInArgs.push(groupNumber, ...args);
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
    const writer = this.replicated ?? this.redis;
    const replies = (await this.call("checkIn", () => checkInsScript.run(writer, [...groupKeys, ...checkInKeys], args))) as string[][];
    const replication = this.options.replication;
    if (this.replicated !== undefined && replication !== undefined) {
      // WAIT counts the replicas that hold every write this connection made: the batch is acknowledged only then.
      const acked = (await this.call("checkIn", () => writer.call("WAIT", replication.replicas, replication.timeoutMs))) as number;
      if (acked < replication.replicas)
        throw storeFault(
          "checkIn",
          replyError(`NOREPLICAS the check-ins reached ${acked} of ${replication.replicas} replicas within ${replication.timeoutMs} ms`),
        );
    }
    return replies;
  }
}

/** A check-in's script arguments after its group's number (see `checkInsScript`), stamped with the time it arrived. */
function pendingCheckIn(report: CheckIn, now: number): PendingCheckIn {
  const { instanceId, group } = report.details;
  const args = [
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
    group,
  ];
  return { group, instanceId, args };
}

function countByState(instances: readonly InstanceStatus[]): GroupReport["counts"] {
  const counts = Object.fromEntries(INSTANCE_STATES.map((state) => [state, 0])) as Record<InstanceState, number>;
  for (const instance of instances) counts[instance.state] += 1;
  return { ...counts, total: instances.length };
}
