import { StorePart, fieldOf } from "./context.js";
import type { StressPoint } from "./schemas.js";

/** Each group's stress series: one point per check-in that carried a load figure, kept for the retention. */
export class StressStore extends StorePart {
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
}
