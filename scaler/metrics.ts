import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { GroupReport } from "./store/schemas.js";

export interface ScalerMetrics {
  registry: Registry;
  httpRequestDuration: Histogram<"method" | "route" | "status">;
  checkIns: Counter<"group" | "instance_type" | "kind">;
  checkInsRefused: Counter<"kind" | "reason">;
  /** Counted by the decision loop: one per decision it takes (scale out, scale in, resize, hold). */
  decisions: Counter<"group" | "decision">;
  /** Counted by the actuator: one per action it runs, by outcome. */
  actions: Counter<"group" | "action" | "outcome">;
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
