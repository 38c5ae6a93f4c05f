/**
 * jitsi-autoscaler's autoscaling, as a pure function of what the scaler read (its src/autoscaler.ts and
 * src/instance_tracker.ts): per evaluation period, one figure for the group (JVB and other bridges: the average stress
 * of its instances; Jibri: how many recorders are available); the desired count moves by a step when the figure has
 * crossed a threshold in every one of the last N periods; then the fleet is brought to the desired count, scale-in
 * through the sidecar's graceful shutdown.
 */

/** What a group's figure counts: bridges' average stress, or recorders available. */
export type JitsiMetric = "stress" | "available";

/** Recorder types count available instances; every other type (JVB, jigasi, nomad, ...) averages stress. */
export function metricOf(instanceType: string): JitsiMetric {
  return instanceType === "jibri" || instanceType === "sip-jibri" ? "available" : "stress";
}

/** One load figure of one instance at one time (a sidecar's stress level; for a Jibri, 1 busy and 0 idle). */
export interface MetricPoint {
  at: number;
  instanceId: string;
  value: number;
}

/**
 * The group's figure in each of the last `periods` periods of `periodMs` ending at `now`, most recent first: per
 * period, each instance's last value in it, averaged (stress) or counted as available when 0 (a Jibri's IDLE).
 * A period without a single point has no figure (undefined): missing data never moves the desired count.
 */
export function figuresPerPeriod(
  points: readonly MetricPoint[],
  options: { metric: JitsiMetric; now: number; periodMs: number; periods: number },
): (number | undefined)[] {
  const figures: (number | undefined)[] = [];
  for (let period = 0; period < options.periods; period += 1) {
    const end = options.now - period * options.periodMs;
    const start = end - options.periodMs;
    const last = new Map<string, MetricPoint>();
    for (const point of points) {
      if (point.at <= start || point.at > end) continue;
      const seen = last.get(point.instanceId);
      if (seen === undefined || seen.at <= point.at) last.set(point.instanceId, point);
    }
    const values = [...last.values()].map((point) => point.value);
    if (values.length === 0) figures.push(undefined);
    else if (options.metric === "available") figures.push(values.filter((value) => value === 0).length);
    else figures.push(values.reduce((sum, value) => sum + value, 0) / values.length);
  }
  return figures;
}

/** jitsi-autoscaler's scalingOptions the autoscaler reads (infra/jitsi.ts's jitsiScalingSchema has them all). */
export interface JitsiScalingOptions {
  minDesired: number;
  maxDesired: number;
  scaleUpQuantity: number;
  scaleDownQuantity: number;
  scaleUpThreshold: number;
  scaleDownThreshold: number;
  scaleUpPeriodsCount: number;
  scaleDownPeriodsCount: number;
}

export interface AutoscaleInput {
  metric: JitsiMetric;
  scaling: JitsiScalingOptions;
  enableAutoScale: boolean;
  /** The group's desired count now (the operator's, a scheduler's or the autoscaler's last word). */
  desired: number;
  /** Instances in service: launched and not shutting down. */
  count: number;
  /** The group's figure per period, most recent first (figuresPerPeriod). */
  figures: readonly (number | undefined)[];
  /** Until when the last change of desired holds the autoscaler off (jitsi-autoscaler's gracePeriodTTLSec). */
  graceUntil: number;
  now: number;
}

export type AutoscaleOutcome =
  { kind: "hold"; reason: string } | { kind: "change"; desired: number; direction: "up" | "down"; reason: string; figures: number[] };

/**
 * The autoscaler's word on the desired count, with jitsi-autoscaler's precedence: a change of desired by an operator
 * (`PUT desired`), a scheduler (full-scaling) or the autoscaler itself holds the autoscaler off for the grace period;
 * it waits while the fleet has not caught up with desired; and it scales up before it considers scaling down.
 */
export function autoscale(input: AutoscaleInput): AutoscaleOutcome {
  if (!input.enableAutoScale) return { kind: "hold", reason: "autoscaling is disabled for the group" };
  if (input.now < input.graceUntil) {
    return {
      kind: "hold",
      reason: `desired changed lately: the autoscaler waits ${Math.ceil((input.graceUntil - input.now) / 1000)} s more`,
    };
  }
  if (input.count === 0) return { kind: "hold", reason: "no instance in service: nothing to measure" };
  if (input.count !== input.desired) {
    return { kind: "hold", reason: `the fleet has ${input.count} instances in service for ${input.desired} desired: waiting for it` };
  }
  const { scaling } = input;
  const up = heldFor(input.figures, scaling.scaleUpPeriodsCount, (value) => scaleUpChoice(input, value));
  if (up !== undefined) {
    const desired = Math.min(input.desired + scaling.scaleUpQuantity, scaling.maxDesired);
    if (desired !== input.desired) {
      return { kind: "change", desired, direction: "up", reason: describe(input.metric, up, "up", input), figures: up };
    }
  }
  const down = heldFor(input.figures, scaling.scaleDownPeriodsCount, (value) => scaleDownChoice(input, value));
  if (down !== undefined) {
    const desired = Math.max(input.desired - scaling.scaleDownQuantity, scaling.minDesired);
    if (desired !== input.desired) {
      return { kind: "change", desired, direction: "down", reason: describe(input.metric, down, "down", input), figures: down };
    }
  }
  return { kind: "hold", reason: "no threshold held for its periods" };
}

/** The first `periods` figures when every one of them is known and satisfies `choice`. */
function heldFor(figures: readonly (number | undefined)[], periods: number, choice: (value: number) => boolean): number[] | undefined {
  const window = figures.slice(0, periods);
  if (window.length < periods) return undefined;
  const known = window.filter((value): value is number => value !== undefined);
  return known.length === periods && known.every(choice) ? known : undefined;
}

function scaleUpChoice({ metric, count, scaling }: AutoscaleInput, value: number): boolean {
  if (count < scaling.minDesired) return true;
  if (count >= scaling.maxDesired) return false;
  // Recorders: too few available; bridges: average stress at or above the threshold.
  return metric === "available" ? value < scaling.scaleUpThreshold : value >= scaling.scaleUpThreshold;
}

function scaleDownChoice({ metric, count, scaling }: AutoscaleInput, value: number): boolean {
  if (count <= scaling.minDesired) return false;
  return metric === "available" ? value > scaling.scaleDownThreshold : value < scaling.scaleDownThreshold;
}

function describe(metric: JitsiMetric, figures: number[], direction: "up" | "down", { scaling }: AutoscaleInput): string {
  const what = metric === "available" ? "recorders available" : "average stress";
  const shown = figures.map((value) => (metric === "available" ? String(value) : value.toFixed(2))).join(", ");
  const threshold = direction === "up" ? scaling.scaleUpThreshold : scaling.scaleDownThreshold;
  const relation = metric === "available" ? (direction === "up" ? "below" : "above") : direction === "up" ? "at or above" : "below";
  return `${what} ${relation} ${threshold} for ${figures.length} periods (${shown}): scale ${direction}`;
}

/** One machine of a Jitsi group's fleet, as the reconcile sees it. */
export interface JitsiMember {
  name: string;
  /** launched: declared in the fleet stack and in service; shutting_down: told to go, or going by itself. */
  phase: "launched" | "shutting_down";
  /** When it entered its phase. */
  since: number;
  /** Its sidecar's last check-in, if it has checked in. */
  checkIn?: {
    instanceId: string;
    /** Its load figure (stress, or 1 busy / 0 idle); null when it reported none. */
    load: number | null;
    /** Whether its sidecar says it is shutting down (its report's flags, or a shutdown call). */
    shuttingDown: boolean;
    /** Whether the scaler has asked it to shut down. */
    shutdownRequested: boolean;
    /** When it reported on /sidecar/shutdown that its graceful shutdown is over. */
    shutdownConfirmedAt?: number;
  };
}

export type JitsiAction =
  | { kind: "launch"; count: number; reason: string }
  | { kind: "shutdown"; name: string; instanceId: string; reason: string }
  | { kind: "retire"; name: string; reason: string }
  | { kind: "destroy"; name: string; reason: string };

/**
 * Brings the fleet to the desired count. Scale-in is graceful: the lowest-loaded instances in service get the
 * sidecar's shutdown command (one that has never checked in runs nothing and is destroyed at once), and an instance
 * shutting down is destroyed only once it reports its shutdown done, or after `gracefulShutdownMs`. An instance that
 * shuts down by itself leaves service and is replaced.
 */
export function reconcile(input: {
  desired: number;
  members: readonly JitsiMember[];
  now: number;
  gracefulShutdownMs: number;
}): JitsiAction[] {
  const actions: JitsiAction[] = [];
  const inService: JitsiMember[] = [];
  for (const member of input.members) {
    const checkIn = member.checkIn;
    if (member.phase === "shutting_down") {
      if (checkIn?.shutdownConfirmedAt !== undefined) {
        actions.push({ kind: "destroy", name: member.name, reason: "its sidecar reported its graceful shutdown done" });
      } else if (input.now - member.since >= input.gracefulShutdownMs) {
        actions.push({
          kind: "destroy",
          name: member.name,
          reason: `graceful shutdown not reported within ${Math.round(input.gracefulShutdownMs / 1000)} s`,
        });
      }
      continue;
    }
    if (checkIn !== undefined && !checkIn.shutdownRequested && (checkIn.shuttingDown || checkIn.shutdownConfirmedAt !== undefined)) {
      actions.push({ kind: "retire", name: member.name, reason: "it reported a shutdown nobody asked for: replaced" });
      continue;
    }
    inService.push(member);
  }
  if (inService.length < input.desired) {
    const count = input.desired - inService.length;
    actions.push({ kind: "launch", count, reason: `${inService.length} in service for ${input.desired} desired` });
  } else if (inService.length > input.desired) {
    for (const member of lowestLoadedFirst(inService).slice(0, inService.length - input.desired)) {
      const reason = `${inService.length} in service for ${input.desired} desired: the lowest-loaded goes`;
      if (member.checkIn === undefined) actions.push({ kind: "destroy", name: member.name, reason: `${reason} (never checked in)` });
      else actions.push({ kind: "shutdown", name: member.name, instanceId: member.checkIn.instanceId, reason });
    }
  }
  return actions;
}

/** Instances that never checked in first (nothing runs there), then by load, then the newest (by name) first. */
function lowestLoadedFirst(members: readonly JitsiMember[]): JitsiMember[] {
  const load = (member: JitsiMember) => (member.checkIn === undefined ? -1 : (member.checkIn.load ?? 0));
  return [...members].sort((a, b) => load(a) - load(b) || b.since - a.since || b.name.localeCompare(a.name));
}

/** What sanity finds: sidecars of the group with no machine of the fleet, and machines whose sidecar never spoke. */
export interface JitsiSanityFindings {
  /** Instance ids that check in to the group but are no machine of its fleet. */
  untracked: string[];
  /** Machines launched longer than the deadline ago whose sidecar has never checked in. */
  silent: string[];
}

export function jitsiSanity(input: {
  members: readonly { name: string; instanceId: string | undefined; launchedAt: number; checkedIn: boolean }[];
  liveInstanceIds: readonly string[];
  now: number;
  checkInDeadlineMs: number;
}): JitsiSanityFindings {
  const known = new Set(input.members.flatMap((member) => (member.instanceId === undefined ? [] : [member.instanceId, member.name])));
  return {
    untracked: input.liveInstanceIds.filter((id) => !known.has(id)).sort(),
    silent: input.members
      .filter((member) => !member.checkedIn && input.now - member.launchedAt >= input.checkInDeadlineMs)
      .map((member) => member.name)
      .sort(),
  };
}
