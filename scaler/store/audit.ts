import { StorePart, fieldOf, groupNotFound } from "./context.js";
import type { AuditEntry } from "./schemas.js";

/** The audit trails: one per group, one per instance (which expires with it). */
export class AuditStore extends StorePart {
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

  /** Refuses a group that is neither defined nor deleted within the audit's retention (its trail outlives it). */
  async requireAuditedGroup(groupId: string): Promise<void> {
    const known = await this.call("requireAuditedGroup", () => this.redis.exists(this.keys.group(groupId), this.keys.groupAudit(groupId)));
    if (known === 0) throw groupNotFound(groupId);
  }
}
