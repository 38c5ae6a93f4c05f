import { z } from "zod";
import { serverSizeSchema } from "./config.js";

/**
 * Jitsi groups: each is a fleet of one Jitsi component (videobridges, recorders, ...) that joins an existing Jitsi Meet
 * deployment's signaling node and runs the unmodified jitsi-autoscaler-sidecar. The stack config's `jitsi` block is
 * validated here; the control node renders it into scaler.yaml, and the scaler runs one fleet per group.
 */

/** The components confscale can install from Jitsi's Debian repository (any sidecar type may still check in). */
export const JITSI_COMPONENTS = ["JVB", "jibri"] as const;
export const jitsiComponentSchema = z.enum(JITSI_COMPONENTS);
export type JitsiComponent = z.infer<typeof jitsiComponentSchema>;

/** The existing Jitsi Meet deployment the workers join (prosody and jicofo run there, not on the control node). */
export const jitsiSignalingSchema = z.strictObject({
  /** The XMPP domain of the deployment, e.g. meet.example.org. */
  xmppDomain: z.string().min(1),
  /** Where prosody listens for client connections (host or host:port). */
  xmppHost: z.string().min(1),
});
export type JitsiSignaling = z.infer<typeof jitsiSignalingSchema>;

/** jitsi-autoscaler's scalingOptions, with its names: thresholds on the group's stress (JVB) or available count (jibri). */
export const jitsiScalingSchema = z.strictObject({
  minDesired: z.number().int().min(0),
  maxDesired: z.number().int().min(1),
  desiredCount: z.number().int().min(0),
  scaleUpQuantity: z.number().int().min(1).default(1),
  scaleDownQuantity: z.number().int().min(1).default(1),
  scaleUpThreshold: z.number().min(0),
  scaleDownThreshold: z.number().min(0),
  /** Seconds per evaluation period. */
  scalePeriod: z.number().int().min(10).default(60),
  scaleUpPeriodsCount: z.number().int().min(1).default(2),
  scaleDownPeriodsCount: z.number().int().min(1).default(4),
});
export type JitsiScaling = z.infer<typeof jitsiScalingSchema>;

/** One Jitsi group as the stack config names it. */
export const jitsiGroupConfigSchema = z.strictObject({
  /** The group name the sidecars report (free text in jitsi-autoscaler; here a stack and machine name part too). */
  name: z.string().regex(/^[a-z][a-z0-9-]{0,40}$/, "expected a lowercase name: letters, digits, -"),
  type: jitsiComponentSchema,
  size: serverSizeSchema,
  /** The machine image; defaults to the cloud's Ubuntu image. */
  image: z.string().min(1).optional(),
  scaling: jitsiScalingSchema,
  enableAutoScale: z.boolean().default(true),
  enableScheduler: z.boolean().default(false),
  /** Seconds an instance may take to finish its graceful shutdown before it is destroyed anyway. */
  gracefulShutdownSeconds: z.number().int().min(0).default(3600),
  /** Seconds the autoscaler leaves desired alone after any change of it (jitsi-autoscaler's gracePeriodTTLSec). */
  gracePeriodTTLSec: z.number().int().min(0).default(480),
});
export type JitsiGroupConfig = z.infer<typeof jitsiGroupConfigSchema>;

/** The stack config's `jitsi` block. */
export const jitsiConfigSchema = z.strictObject({
  signaling: jitsiSignalingSchema,
  groups: z.array(jitsiGroupConfigSchema).min(1),
});
export type JitsiConfig = z.infer<typeof jitsiConfigSchema>;

/** What a fleet's machines run: BigBlueButton workers (the default) or one Jitsi group's component. */
export const fleetWorkloadSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("bbb") }),
  z.strictObject({ kind: z.literal("jitsi"), group: z.string().min(1), component: jitsiComponentSchema, signaling: jitsiSignalingSchema }),
]);
export type FleetWorkload = z.infer<typeof fleetWorkloadSchema>;
