import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { WorkerPolicy } from "../infra/config.js";
import { heldText } from "./actuator/actuator.js";
import type { FleetPeriod, FleetStatus } from "./loop/controller.js";
import type { Logger } from "./log.js";
import { minimumAt } from "./policy/timeWindows.js";
import { decisionKindSchema } from "./policy/types.js";
import type { GroupReport } from "./store/schemas.js";
import type { JitsiFleetStatus } from "./fleet/jitsiGroup.js";

export interface ScalerMetrics {
  registry: Registry;
  httpRequestDuration: Histogram<"method" | "route" | "status">;
  checkIns: Counter<"group" | "instance_type" | "kind">;
  checkInsRefused: Counter<"kind" | "reason">;
  /** Counted by the decision loop: one per decision it takes (scale out, scale in, resize, hold). */
  decisions: Counter<"group" | "decision">;
  /** Counted by the actuator: one per action it runs, by outcome. */
  actions: Counter<"group" | "action" | "outcome">;
  /** Each fleet as its last period left it, set by `recordFleetPeriod`. */
  fleet: FleetMetrics;
}

/** What the Grafana dashboard (files/control-node/grafana/dashboards/) shows of each fleet the scaler drives. */
export interface FleetMetrics {
  servers: Gauge<"fleet" | "phase">;
  desiredServers: Gauge<"fleet">;
  bounds: Gauge<"fleet" | "bound">;
  participants: Gauge<"fleet" | "server">;
  meetings: Gauge<"fleet" | "server">;
  utilization: Gauge<"fleet" | "server" | "resource" | "reading">;
  thresholds: Gauge<"fleet" | "resource" | "direction">;
  costPerHour: Gauge<"fleet" | "currency">;
  decisions: Gauge<"fleet" | "decision" | "server" | "reason">;
  lastPeriod: Gauge<"fleet">;
  /** A Jitsi group's figure of its last period: average stress, or available recorders. */
  jitsiFigure: Gauge<"fleet" | "metric">;
}

function fleetMetrics(registry: Registry): FleetMetrics {
  const gauge = <Label extends string>(name: string, help: string, labelNames: Label[]) =>
    new Gauge<Label>({ name, help, labelNames, registers: [registry], aggregator: "max" });
  return {
    servers: gauge("confscale_fleet_servers", "Servers of the fleet by phase (booting, active, held, draining, stopped, …)", [
      "fleet",
      "phase",
    ]),
    desiredServers: gauge("confscale_fleet_servers_desired", "Servers the fleet stack is to run (powered on)", ["fleet"]),
    bounds: gauge(
      "confscale_fleet_servers_bound",
      "The policy's bounds on servers: min, max, and the minimum now (min raised by an open time window)",
      ["fleet", "bound"],
    ),
    participants: gauge("confscale_server_participants", "Participants on a server, as BBB counts them (known values only)", [
      "fleet",
      "server",
    ]),
    meetings: gauge("confscale_server_meetings", "Meetings on a server, as BBB counts them (known values only)", ["fleet", "server"]),
    utilization: gauge(
      "confscale_server_utilization",
      "CPU and memory in use on a server (0..1) as the policy read them; reading is fresh or stale",
      ["fleet", "server", "resource", "reading"],
    ),
    thresholds: gauge("confscale_fleet_threshold", "The policy's up- and down-thresholds of CPU and memory (0..1)", [
      "fleet",
      "resource",
      "direction",
    ]),
    costPerHour: gauge(
      "confscale_fleet_cost_per_hour",
      "Estimated cost of the fleet per hour at the policy's prices (workers.prices): running servers by cores and GB, stopped ones at stoppedPerHour",
      ["fleet", "currency"],
    ),
    decisions: gauge(
      "confscale_fleet_decision_timestamp_seconds",
      "The last period's decisions and the ones the actuator held back (decision=held), with their reasons; the value is when",
      ["fleet", "decision", "server", "reason"],
    ),
    lastPeriod: gauge("confscale_fleet_last_period_timestamp_seconds", "When the fleet's last period ran", ["fleet"]),
    jitsiFigure: gauge(
      "confscale_jitsi_group_figure",
      "A Jitsi group's figure of its last period, as its autoscaler reads it: average stress (metric=stress) or available recorders (metric=available)",
      ["fleet", "metric"],
    ),
  };
}

/** Some check-in worker did not hand over its metrics: a scrape without them would look like a counter reset. */
export class MetricsUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MetricsUnavailableError";
  }
}

/** A registry's metrics as values, the form in which check-in workers hand theirs to the main process. */
export type MetricsSnapshot = Awaited<ReturnType<Registry["getMetricsAsJSON"]>>;

/**
 * The scaler's metrics on a registry of its own (so several apps can live in one process, as in tests).
 * `liveInstances` is read from Redis when Prometheus scrapes; a scrape during an outage leaves it out. A check-in
 * worker has none: the main process reports them once for all.
 */
export function createMetrics(liveInstances?: () => Promise<Map<string, GroupReport["counts"]>>): ScalerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "confscale_" });
  const metrics: ScalerMetrics = {
    registry,
    httpRequestDuration: new Histogram({
      name: "confscale_http_request_duration_seconds",
      help: "HTTP requests served, by route pattern and status",
      labelNames: ["method", "route", "status"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    checkIns: new Counter({
      name: "confscale_sidecar_checkins_total",
      help: "Sidecar check-ins accepted, by group, instance type and kind (poll, status, stats, shutdown)",
      labelNames: ["group", "instance_type", "kind"],
      registers: [registry],
    }),
    checkInsRefused: new Counter({
      name: "confscale_sidecar_checkins_refused_total",
      help: "Sidecar check-ins refused, by kind and reason (auth, invalid, unknown_group, unavailable)",
      labelNames: ["kind", "reason"],
      registers: [registry],
    }),
    decisions: new Counter({
      name: "confscale_decisions_total",
      help: "Scaling decisions taken, by group and decision",
      labelNames: ["group", "decision"],
      registers: [registry],
    }),
    actions: new Counter({
      name: "confscale_actions_total",
      help: "Actions run on the fleet, by group, action and outcome",
      labelNames: ["group", "action", "outcome"],
      registers: [registry],
    }),
    fleet: fleetMetrics(registry),
  };
  if (liveInstances === undefined) return metrics;
  new Gauge({
    name: "confscale_live_instances",
    help: "Instances alive by their check-in TTL, by group and state",
    labelNames: ["group", "state"],
    registers: [registry],
    async collect() {
      this.reset();
      let counts: Map<string, GroupReport["counts"]>;
      try {
        counts = await liveInstances();
      } catch {
        return;
      }
      for (const [group, byState] of counts) {
        for (const state of ["provisioning", "running", "shutting_down"] as const) {
          this.set({ group, state }, byState[state]);
        }
      }
    },
  });
  return metrics;
}

/**
 * One exposition of this process's metrics and its check-in workers': counters and histograms are summed, and the
 * process metrics combined as prom-client's cluster aggregation defines for each.
 */
export async function exposition(registry: Registry, workers: readonly MetricsSnapshot[]): Promise<string> {
  if (workers.length === 0) return registry.metrics();
  return AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), ...workers]).metrics();
}

/** The series each fleet's last period set, removed at its next one: servers and decisions that are gone leave the exposition. */
const seriesOfFleet = new WeakMap<FleetMetrics, Map<string, (() => void)[]>>();

/** A setter of gauges whose series are removed at the fleet's next period. */
function periodSeries(gauges: FleetMetrics, fleet: string) {
  const byFleet = seriesOfFleet.get(gauges) ?? new Map<string, (() => void)[]>();
  seriesOfFleet.set(gauges, byFleet);
  for (const remove of byFleet.get(fleet) ?? []) remove();
  const removals: (() => void)[] = [];
  byFleet.set(fleet, removals);
  return <Label extends string>(gauge: Gauge<Label>, labels: Record<Label, string>, value: number) => {
    gauge.set(labels, value);
    removals.push(() => gauge.remove(labels));
  };
}

/**
 * Sets a Jitsi group's fleet metrics from one period, under the same names as the BBB fleet's: its machines by phase,
 * desired (the group's desired count), the group's bounds (minDesired, maxDesired), when it ran, and the figure its
 * autoscaler read; counts its autoscale changes as decisions and its launches, shutdowns and destroys as actions.
 */
export function recordJitsiPeriod(
  metrics: ScalerMetrics,
  status: JitsiFleetStatus,
  scaling: { minDesired: number; maxDesired: number },
  metric: "stress" | "available",
  at: number,
): void {
  const fleet = status.fleet;
  const set = periodSeries(metrics.fleet, fleet);
  const phases = new Map<string, number>();
  for (const server of status.servers) phases.set(server.phase, (phases.get(server.phase) ?? 0) + 1);
  for (const [phase, count] of phases) set(metrics.fleet.servers, { fleet, phase }, count);
  const period = status.lastPeriod;
  if (period !== null) {
    set(metrics.fleet.desiredServers, { fleet }, period.desired);
    if (period.figure !== null) set(metrics.fleet.jitsiFigure, { fleet, metric }, period.figure);
    if (period.autoscale?.kind === "change") metrics.decisions.inc({ group: fleet, decision: "autoscale" });
    for (const action of period.actions) metrics.actions.inc({ group: fleet, action: action.kind, outcome: "applied" });
  }
  set(metrics.fleet.bounds, { fleet, bound: "min" }, scaling.minDesired);
  set(metrics.fleet.bounds, { fleet, bound: "max" }, scaling.maxDesired);
  set(metrics.fleet.lastPeriod, { fleet }, at / 1000);
}

/**
 * Sets a fleet's metrics from one period: its servers by phase, what the policy read of each, its decisions with their
 * reasons, and the cost of its servers at the policy's prices. Called once per period with the status after it.
 */
export function recordFleetPeriod(metrics: ScalerMetrics, period: FleetPeriod, status: FleetStatus, policy: WorkerPolicy): void {
  const { fleet: gauges } = metrics;
  const fleet = status.fleet;
  const at = period.outcome.at;
  const byFleet = seriesOfFleet.get(gauges) ?? new Map<string, (() => void)[]>();
  seriesOfFleet.set(gauges, byFleet);
  for (const remove of byFleet.get(fleet) ?? []) remove();
  const removals: (() => void)[] = [];
  byFleet.set(fleet, removals);
  const set = <Label extends string>(gauge: Gauge<Label>, labels: Record<Label, string>, value: number) => {
    gauge.set(labels, value);
    removals.push(() => gauge.remove(labels));
  };

  // Every kind from the first period on, so a rate over a quiet fleet reads 0 rather than nothing.
  for (const kind of decisionKindSchema.options) metrics.decisions.inc({ group: fleet, decision: kind }, 0);
  for (const decision of period.outcome.decisions) {
    metrics.decisions.inc({ group: fleet, decision: decision.kind });
    set(gauges.decisions, { fleet, decision: decision.kind, server: decision.server ?? "", reason: decision.reason }, at / 1000);
  }
  for (const held of period.cycle.held) {
    set(gauges.decisions, { fleet, decision: "held", server: held.decision.server ?? "", reason: heldText(held) }, at / 1000);
  }
  for (const decision of period.cycle.applied) metrics.actions.inc({ group: fleet, action: decision.kind, outcome: "applied" });
  for (const held of period.cycle.held) metrics.actions.inc({ group: fleet, action: held.decision.kind, outcome: "held" });
  for (const _server of period.cycle.drainTimeouts) metrics.actions.inc({ group: fleet, action: "drain", outcome: "timed_out" });
  for (const _server of period.cycle.replaced) metrics.actions.inc({ group: fleet, action: "replace", outcome: "build_timeout" });

  const phases = new Map<string, number>();
  for (const server of status.servers) phases.set(server.phase, (phases.get(server.phase) ?? 0) + 1);
  for (const [phase, count] of phases) set(gauges.servers, { fleet, phase }, count);
  set(gauges.desiredServers, { fleet }, status.servers.filter((server) => server.power === "running").length);
  set(gauges.bounds, { fleet, bound: "min" }, policy.min);
  set(gauges.bounds, { fleet, bound: "max" }, policy.max);
  set(gauges.bounds, { fleet, bound: "minimum_now" }, minimumAt(policy, at));
  for (const resource of ["cpu", "memory"] as const) {
    set(gauges.thresholds, { fleet, resource, direction: "up" }, policy.thresholds[resource].up);
    set(gauges.thresholds, { fleet, resource, direction: "down" }, policy.thresholds[resource].down);
  }

  for (const server of period.snapshot?.servers ?? []) {
    const labels = { fleet, server: server.id };
    if (server.participants.value !== null) set(gauges.participants, labels, server.participants.value);
    if (server.meetings.value !== null) set(gauges.meetings, labels, server.meetings.value);
    for (const resource of ["cpu", "memory"] as const) {
      const reading = server[resource];
      if (reading.value !== null) set(gauges.utilization, { ...labels, resource, reading: reading.status }, reading.value);
    }
  }

  if (policy.prices !== undefined) {
    const { currency, perCoreHour, perGbHour, stoppedPerHour } = policy.prices;
    const cost = status.servers.reduce(
      (sum, server) => sum + (server.power === "stopped" ? stoppedPerHour : server.cores * perCoreHour + server.ramGb * perGbHour),
      0,
    );
    set(gauges.costPerHour, { fleet, currency }, cost);
  }
  set(gauges.lastPeriod, { fleet }, at / 1000);
}

/** `recordFleetPeriod` with the policy in force, read as the loop reads it; a failed read leaves the last values. */
export async function exportFleetPeriod(
  metrics: ScalerMetrics,
  period: FleetPeriod,
  status: FleetStatus,
  policy: () => Promise<WorkerPolicy>,
  logger: Logger,
): Promise<void> {
  try {
    recordFleetPeriod(metrics, period, status, await policy());
  } catch (error) {
    logger.warn(
      { event: "metrics.period_failed", fleet: status.fleet, err: error instanceof Error ? error.message : String(error) },
      "period metrics not set",
    );
  }
}
