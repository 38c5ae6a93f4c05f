import { StorePart, groupNotFound } from "./context.js";
import { StoreConflictError } from "./errors.js";
import type { GlobalPause, Group, GroupSpec } from "./schemas.js";
import { deleteGroupScript, setDesiredScript, setPausedScript, writeGroupScript } from "./scripts.js";

export type DesiredChange = { groupId: string; from: number; to: number };

/** Groups and their policy, their desired counts and pauses, and the global kill switch. */
export class GroupStore extends StorePart {
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
