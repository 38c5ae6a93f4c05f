import { forecastPointSchema, type ForecastPoint } from "../policy/types.js";
import { StorePart } from "./context.js";

/** Each group's load by slot of the week, which the forecast reads a week later. */
export class LoadProfileStore extends StorePart {
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
}
