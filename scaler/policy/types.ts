import { z } from "zod";
import { serverSizeSchema, type WorkerPolicy } from "../../infra/config.js";
import type { DatedWindow } from "./timeWindows.js";

/** How much a value can be trusted: read this period, carried over from an older read, or not known at all. */
export const freshnessSchema = z.enum(["fresh", "stale", "missing"]);
export type Freshness = z.infer<typeof freshnessSchema>;

export const readingSchema = z.strictObject({
  value: z.number().nullable(),
  status: freshnessSchema,
});
export type Reading = z.infer<typeof readingSchema>;

export const scaleliteStateSchema = z.enum(["enabled", "cordoned", "disabled"]);
export type ScaleliteState = z.infer<typeof scaleliteStateSchema>;

export const powerStateSchema = z.enum(["running", "booting", "stopped"]);
export type PowerState = z.infer<typeof powerStateSchema>;

/** Everything the policy knows about one worker in one period. */
export const serverSnapshotSchema = z.strictObject({
  id: z.string().min(1),
  size: serverSizeSchema,
  power: powerStateSchema,
  /** When the server last became running (ms since epoch); null when it is not running. */
  bootedAt: z.number().nullable(),
  /** When its size last changed (ms since epoch); null when never. */
  resizedAt: z.number().nullable(),
  /** Scalelite's view; null when the server is not registered there (or Scalelite did not answer, see `scaleliteStatus`). */
  scalelite: z
    .strictObject({
      state: scaleliteStateSchema,
      online: z.boolean(),
      /** Null while Scalelite cannot poll the server: unknown, never read as empty. */
      load: z.number().min(0).nullable(),
      /** The factor Scalelite multiplies the server's participant count by when it places a meeting. */
      loadMultiplier: z.number().min(0),
    })
    .nullable(),
  scaleliteStatus: freshnessSchema,
  /** Fractions 0..1 of the server's cores and RAM in use (node-exporter through Prometheus). */
  cpu: readingSchema,
  memory: readingSchema,
  networkBytesPerSecond: readingSchema,
  /** The sidecar's stress level 0..1 from its last check-in. */
  stress: readingSchema,
  meetings: readingSchema,
  participants: readingSchema,
  videos: readingSchema,
  /**
   * When the youngest meeting on the server began (ms since epoch), from BBB's createTime; null with no meetings.
   * Absent when not known. Meetings run for similar lengths (lessons), so the server whose youngest meeting is
   * oldest empties first: the cheapest one to drain.
   */
  newestMeetingAt: z.number().nullable().optional(),
  /** The worker image it was created from (the fleet spec's `image`); absent when not known. */
  image: z.string().optional(),
  /** Created for the warm pool: installing, then stopped once installed; it takes no meetings. */
  warm: z.boolean().optional(),
});
export type ServerSnapshot = z.infer<typeof serverSnapshotSchema>;

export const groupSnapshotSchema = z.strictObject({
  group: z.string().min(1),
  takenAt: z.number(),
  /** False on clouds without power-off (DigitalOcean): scale-in destroys instead of stopping. */
  canPowerOff: z.boolean(),
  servers: z.array(serverSnapshotSchema),
});
export type GroupSnapshot = z.infer<typeof groupSnapshotSchema>;

/** The group's load in one period, kept in the history for sustained thresholds and the trend. */
export const loadSampleSchema = z.strictObject({
  at: z.number(),
  /** Cores and GB in use on the running servers that take meetings (one without fresh metrics counts as fully loaded); null when there is none. */
  cpuCores: z.number().nullable(),
  memoryGb: z.number().nullable(),
  cpuUtilization: z.number().nullable(),
  memoryUtilization: z.number().nullable(),
  /** Participants on those servers (meetings are the leading signal of load); null when not all are known. */
  participants: z.number().nullable(),
});
export type LoadSample = z.infer<typeof loadSampleSchema>;

export const decisionKindSchema = z.enum(["start", "create", "stop", "destroy", "resize", "drain", "enable"]);
export type DecisionKind = z.infer<typeof decisionKindSchema>;

export const decisionSchema = z.strictObject({
  kind: decisionKindSchema,
  /** The server acted on; absent for `create` (the actuator names the new one). */
  server: z.string().optional(),
  targetSize: serverSizeSchema.optional(),
  /** A `create` for the warm pool: installed, then stopped, to be started in minutes when load comes. */
  warm: z.boolean().optional(),
  reason: z.string(),
  /** The numbers that caused the decision, for the audit trail. */
  inputs: z.record(z.string(), z.number().nullable()),
  /** Recorded but not to be acted on. */
  dryRun: z.boolean(),
});
export type Decision = z.infer<typeof decisionSchema>;

/** A past decision, as the history keeps it for cooldowns and the launch rate. */
export const pastActionSchema = z.strictObject({
  at: z.number(),
  kind: decisionKindSchema,
  server: z.string().optional(),
  /** A create for the warm pool: a launch for the launch rate, but no scale-out (it adds no capacity). */
  warm: z.boolean().optional(),
});
export type PastAction = z.infer<typeof pastActionSchema>;

/**
 * The group's load at `at`. In the policy's forecast `at` is the coming time it stands for; in the load profile a
 * week earlier, the time it was recorded.
 */
export const forecastPointSchema = z.strictObject({
  at: z.number(),
  cpuCores: z.number().min(0),
  memoryGb: z.number().min(0),
});
export type ForecastPoint = z.infer<typeof forecastPointSchema>;

export const policyHistorySchema = z.strictObject({
  /** Oldest first. */
  samples: z.array(loadSampleSchema),
  /** Oldest first; dry-run decisions are not actions and are not listed. */
  actions: z.array(pastActionSchema),
  /**
   * The coming minutes as earlier weeks saw them, and the minutes just past (`at` up to now), so that today's load can
   * be compared with last week's; absent or empty when nothing was recorded for them.
   */
  forecast: z.array(forecastPointSchema).optional(),
});
export type PolicyHistory = z.infer<typeof policyHistorySchema>;

/**
 * The load multiplier a server should carry in Scalelite. Scalelite places each new meeting on the server of least
 * participants × multiplier; the policy sets the multiplier so that this order follows the CPU and memory the server
 * really uses, not only its head count.
 */
export const placementChangeSchema = z.strictObject({
  server: z.string(),
  loadMultiplier: z.number().positive(),
  reason: z.string(),
  inputs: z.record(z.string(), z.number().nullable()),
  /** Recorded but not to be acted on. */
  dryRun: z.boolean(),
});
export type PlacementChange = z.infer<typeof placementChangeSchema>;

/** Why the policy held back where it might have acted, with the numbers, for the audit trail. */
export const holdSchema = z.strictObject({
  reason: z.string(),
  server: z.string().optional(),
  inputs: z.record(z.string(), z.number().nullable()),
});
export type Hold = z.infer<typeof holdSchema>;

export const policyOutcomeSchema = z.strictObject({
  at: z.number(),
  group: z.string(),
  sample: loadSampleSchema,
  decisions: z.array(decisionSchema),
  /** Outcomes recorded before placement steering have none. */
  placement: z.array(placementChangeSchema).default([]),
  holds: z.array(holdSchema),
  /**
   * The load to keep in the load profile for this period's slot of the week, read back a week later as the forecast:
   * this period's, or on a day far quieter than last week (a holiday) last week's own, carried on so that the week
   * after forecasts from the last ordinary week; null when there is nothing to keep. Absent in older outcomes.
   */
  profileLoad: z
    .strictObject({ cpuCores: z.number().min(0), memoryGb: z.number().min(0) })
    .nullable()
    .optional(),
});
export type PolicyOutcome = z.infer<typeof policyOutcomeSchema>;

/** The fleet's policy as one period sees it: its settings, plus the dated windows set through the API (read each period). */
export type ScalingPolicy = WorkerPolicy & {
  datedWindows?: readonly DatedWindow[];
  /** The worker image new servers are created from (the actuator's); servers on another image are renewed. */
  image?: string;
};
