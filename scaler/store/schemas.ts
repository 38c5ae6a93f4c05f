import { z } from "zod";
import { workerPolicySchema } from "../../infra/config.js";

/** Instance types whose stats the scaler reads: the Jitsi components of jitsi-autoscaler-sidecar and our BBB sidecar. */
export const INSTANCE_TYPES = ["JVB", "jigasi", "jibri", "sip-jibri", "bbb"] as const;
export const instanceTypeSchema = z.enum(INSTANCE_TYPES);
export type InstanceType = z.infer<typeof instanceTypeSchema>;

/**
 * The instance type a sidecar reports: free text in jitsi-autoscaler (`nomad`, `whisper`, ...), so any short name is
 * accepted; only the types above have stats the scaler reads.
 */
export const reportedInstanceTypeSchema = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, "expected 1-64 letters, digits or _ . -, starting with a letter");

/** Group names are free text in jitsi-autoscaler (`custom-bridgeGroup1`); they become part of Redis keys, so bounded. */
export const groupIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, "expected 1-63 letters, digits or _ . -, starting with a letter or digit");

/** A fleet's name: a group id that is also a machine name prefix and part of a stack name, so lowercase. */
export const fleetNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "expected 1-63 lowercase letters, digits or -, starting with a letter or digit");

/** The group a sidecar report without one is filed under, as jitsi-autoscaler does. */
export const DEFAULT_GROUP = "default";

/** Sidecar instance ids are cloud ids or hostnames; they become part of Redis keys, so they are bounded. */
export const instanceIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$/, "expected 1-200 letters, digits or _ . : @ -");

/** What an admin writes for a group; `desired` is the count the scaler reconciles towards. */
export const groupSpecSchema = z
  .strictObject({
    instanceType: instanceTypeSchema,
    desired: z.number().int().min(0),
    policy: workerPolicySchema,
    /** Whether a scheduler's full-scaling call may move this group's desired count. */
    allowScheduler: z.boolean().default(false),
    environment: z.string().min(1).max(64).optional(),
    cloud: z.string().min(1).max(64).optional(),
    region: z.string().min(1).max(64).optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.desired < spec.policy.min || spec.desired > spec.policy.max) {
      ctx.addIssue({
        code: "custom",
        path: ["desired"],
        message: `desired (${spec.desired}) must lie within [min, max] = [${spec.policy.min}, ${spec.policy.max}]`,
      });
    }
  });
export type GroupSpec = z.infer<typeof groupSpecSchema>;

export interface Group extends GroupSpec {
  id: string;
  paused: boolean;
  createdAt: number;
  updatedAt: number;
}

export const INSTANCE_STATES = ["provisioning", "running", "shutting_down"] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

export type CheckInKind = "poll" | "status" | "stats" | "shutdown";

/** Identity of an instance as its sidecar reports it (extra metadata keys are kept as they come). */
export interface InstanceDetails {
  instanceId: string;
  instanceType: string;
  group: string;
  [key: string]: unknown;
}

export interface CheckIn {
  kind: CheckInKind;
  details: InstanceDetails;
  /** The raw stats object, absent for polls and shutdown confirmations. */
  stats?: Record<string, unknown>;
  /** The one load figure kept in the group's time series (JVB stress level, BBB stress, jibri busy = 1). */
  stress?: number;
  /** The sidecar's own clock (ms); kept for display, never trusted for liveness. */
  sidecarTimestamp?: number;
  shuttingDown: boolean;
  reconfigureComplete?: string;
  reconfigureError: boolean;
}

export interface CheckInReply {
  shutdown: boolean;
  reconfigure: string | null;
}

export interface InstanceStatus {
  instanceId: string;
  instanceType: string;
  state: InstanceState;
  details: Record<string, unknown>;
  stats: Record<string, unknown> | null;
  stress: number | null;
  firstSeenAt: number;
  lastReportAt: number;
  /** Pending commands: shutdown requested, and the reconfigure request id not yet completed. */
  shutdownRequested: boolean;
  reconfigureRequested: string | null;
  /** When the sidecar confirmed on /sidecar/shutdown that its drain is over (scaler's clock); absent until then. */
  shutdownConfirmedAt?: number;
}

export interface GroupReport {
  group: Group;
  counts: Record<InstanceState, number> & { total: number };
  instances: InstanceStatus[];
}

export interface StressPoint {
  at: number;
  instanceId: string;
  stress: number;
}

export interface AuditEntry {
  at: number;
  kind: string;
  /** Who caused it: an API token's name, `sidecar`, `scheduler`, `decision-loop`, ... */
  actor: string;
  instanceId?: string;
  message?: string;
  details?: Record<string, unknown>;
}

export interface GlobalPause {
  paused: boolean;
  by?: string;
  at?: number;
}
