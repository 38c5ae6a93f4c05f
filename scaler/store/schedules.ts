import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";
import { describeSchedule, scheduledSpan, type DatedWindow } from "../policy/timeWindows.js";
import { StorePart } from "./context.js";

const clockTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "expected a 24-hour time HH:MM");
const minutes = z
  .number()
  .int()
  .min(0)
  .max(7 * 24 * 60);

/**
 * A named policy a capability URL applies: `min` servers either for `durationMinutes`, starting `startsInMinutes`
 * after the call, or from `at` until `until` (times of day in the fleet's time zone: "exam at 10:30, 20 servers until
 * 13:30"), the next such span that has not ended when the hook is called.
 */
const scheduleFields = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "expected 1-63 lowercase letters, digits or -, starting with a letter or digit"),
  min: z.number().int().min(0).max(1_000),
  durationMinutes: minutes.min(1).optional(),
  startsInMinutes: minutes.optional(),
  at: clockTime.optional(),
  until: clockTime.optional(),
});
export const scheduleSpecSchema = scheduleFields
  .superRefine((spec, ctx) => {
    const clock = spec.at !== undefined || spec.until !== undefined;
    const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
    if (clock && (spec.durationMinutes !== undefined || spec.startsInMinutes !== undefined))
      issue(
        spec.durationMinutes !== undefined ? "durationMinutes" : "startsInMinutes",
        "give either at/until or durationMinutes, not both",
      );
    else if (clock && spec.at === undefined) issue("at", "expected the time of day the window opens, with until");
    else if (clock && spec.until === undefined) issue("until", "expected the time of day the window closes, with at");
    else if (clock && spec.at === spec.until) issue("until", "expected a time other than at");
    else if (!clock && spec.durationMinutes === undefined) issue("durationMinutes", "expected how long the window lasts (or at and until)");
  })
  // A duration schedule's lead reads as 0 when not given, as it always has.
  .transform((spec) => (spec.durationMinutes === undefined ? spec : { ...spec, startsInMinutes: spec.startsInMinutes ?? 0 }));
/** A schedule's name, checked alone in paths. */
export const scheduleNameSchema = scheduleFields.shape.name;
export type ScheduleSpec = z.infer<typeof scheduleSpecSchema>;
export interface Schedule extends ScheduleSpec {
  createdAt: number;
  createdBy: string;
}

const datedWindowSchema = z.strictObject({ name: z.string(), from: z.number(), to: z.number(), min: z.number().int().min(0) });
const storedScheduleSchema = scheduleFields.extend({ createdAt: z.number(), createdBy: z.string(), tokenDigest: z.string() });

function scheduleOf(json: string): Schedule {
  const { tokenDigest: _digest, ...schedule } = storedScheduleSchema.parse(JSON.parse(json));
  return schedule;
}
const hookSchema = z.strictObject({ fleet: z.string(), schedule: z.string() });

/** Capability tokens are stored only as this digest: a read of Redis does not yield a working URL. */
function tokenDigest(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/**
 * Dated one-off windows per fleet (read by the loop each period and raising the policy's minimum while open), named
 * schedules, and the capability tokens that apply them. Each change is audited on the fleet's trail.
 */
export class ScheduleStore extends StorePart {
  private audit(fleet: string, kind: string, actor: string, message: string, details: Record<string, unknown>) {
    const entry = JSON.stringify({ at: this.now(), kind, actor, message, details });
    return this.redis.xadd(this.keys.groupAudit(fleet), "MAXLEN", "~", this.options.retention.auditEntries, "*", "e", entry);
  }

  /** Adds (or replaces, by name) a dated window and audits `window.added`. */
  async addDatedWindow(fleet: string, window: DatedWindow, actor: string): Promise<DatedWindow> {
    await this.call("addDatedWindow", async () => {
      await this.redis.hset(this.keys.datedWindows(fleet), window.name, JSON.stringify(window));
      await this.audit(fleet, "window.added", actor, `dated window ${window.name}: at least ${window.min} servers`, {
        name: window.name,
        from: new Date(window.from).toISOString(),
        to: new Date(window.to).toISOString(),
        min: window.min,
      });
    });
    return window;
  }

  /** The fleet's dated windows that have not ended, earliest first; ended ones are dropped. */
  async datedWindows(fleet: string): Promise<DatedWindow[]> {
    const now = this.now();
    const stored = await this.call("datedWindows", () => this.redis.hgetall(this.keys.datedWindows(fleet)));
    const windows = Object.values(stored).map((json) => datedWindowSchema.parse(JSON.parse(json)));
    const ended = windows.filter((window) => window.to <= now).map((window) => window.name);
    if (ended.length > 0) await this.call("datedWindows", () => this.redis.hdel(this.keys.datedWindows(fleet), ...ended));
    return windows.filter((window) => window.to > now).sort((a, b) => a.from - b.from);
  }

  /** Removes a dated window; false when there is none of that name. */
  async removeDatedWindow(fleet: string, name: string, actor: string): Promise<boolean> {
    return this.call("removeDatedWindow", async () => {
      const removed = await this.redis.hdel(this.keys.datedWindows(fleet), name);
      if (removed > 0) await this.audit(fleet, "window.removed", actor, `dated window ${name} removed`, { name });
      return removed > 0;
    });
  }

  /**
   * Creates (or replaces, by name, revoking the old token) a schedule and its capability token; audits
   * `schedule.created`. The token is answered once and stored only as a digest.
   */
  async createSchedule(fleet: string, spec: ScheduleSpec, actor: string): Promise<{ schedule: Schedule; token: string }> {
    const token = randomBytes(32).toString("base64url");
    const schedule: Schedule = { ...spec, createdAt: this.now(), createdBy: actor };
    await this.call("createSchedule", async () => {
      await this.revoke(fleet, spec.name);
      await this.redis
        .multi()
        .hset(this.keys.schedules(fleet), spec.name, JSON.stringify({ ...schedule, tokenDigest: tokenDigest(token) }))
        .hset(this.keys.hooks(), tokenDigest(token), JSON.stringify({ fleet, schedule: spec.name }))
        .exec();
      await this.audit(fleet, "schedule.created", actor, `schedule ${spec.name}: ${describeSchedule(spec)}`, { ...spec });
    });
    return { schedule, token };
  }

  async listSchedules(fleet: string): Promise<Schedule[]> {
    const stored = await this.call("listSchedules", () => this.redis.hgetall(this.keys.schedules(fleet)));
    return Object.values(stored)
      .map(scheduleOf)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Deletes a schedule and revokes its capability URL; false when there is none of that name. */
  async deleteSchedule(fleet: string, name: string, actor: string): Promise<boolean> {
    return this.call("deleteSchedule", async () => {
      const existed = await this.revoke(fleet, name);
      if (existed) {
        await this.redis.hdel(this.keys.schedules(fleet), name);
        await this.audit(fleet, "schedule.deleted", actor, `schedule ${name} deleted; its hook URL is revoked`, { name });
      }
      return existed;
    });
  }

  /**
   * Applies the schedule a capability token names: adds its dated window from now (plus its lead) and audits
   * `hook.run`. Undefined for a token that is unknown or revoked.
   */
  async runHook(
    token: string,
    timeZoneOf: (fleet: string) => Promise<string>,
  ): Promise<{ fleet: string; window: DatedWindow } | undefined> {
    const found = await this.call("runHook", () => this.redis.hget(this.keys.hooks(), tokenDigest(token)));
    if (found === null) return undefined;
    const hook = hookSchema.parse(JSON.parse(found));
    const json = await this.call("runHook", () => this.redis.hget(this.keys.schedules(hook.fleet), hook.schedule));
    if (json === null) return undefined;
    const schedule = scheduleOf(json);
    const span = scheduledSpan(schedule, this.now(), await timeZoneOf(hook.fleet));
    const window: DatedWindow = { name: schedule.name, ...span, min: schedule.min };
    const actor = `hook:${schedule.name}`;
    await this.call("runHook", () =>
      this.audit(hook.fleet, "hook.run", actor, `hook of schedule ${schedule.name} ran`, { schedule: schedule.name }),
    );
    await this.addDatedWindow(hook.fleet, window, actor);
    return { fleet: hook.fleet, window };
  }

  /** Drops the token of a schedule, if any; true when the schedule existed. */
  private async revoke(fleet: string, name: string): Promise<boolean> {
    const json = await this.redis.hget(this.keys.schedules(fleet), name);
    if (json === null) return false;
    await this.redis.hdel(this.keys.hooks(), storedScheduleSchema.parse(JSON.parse(json)).tokenDigest);
    return true;
  }
}
