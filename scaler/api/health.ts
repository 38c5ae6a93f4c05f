import { Hono } from "hono";
import { exposition, type MetricsSnapshot, type ScalerMetrics } from "../metrics.js";
import type { ScalerStore } from "../store/store.js";

/** Liveness (the process answers) and readiness (Redis takes writes). */
export function healthRoutes({ store }: { store: ScalerStore }): Hono {
  const routes = new Hono();
  routes.get("/healthz", (c) => c.json({ status: "ok" }));
  routes.get("/readyz", async (c) => {
    const readiness = await store.readiness();
    return readiness.ready ? c.json({ status: "ready" }) : c.json({ error: "unavailable", message: readiness.reason }, 503);
  });
  return routes;
}

export interface MetricsRouteDeps {
  metrics: ScalerMetrics;
  /** The check-in workers' metrics, served summed with this process's. */
  workerMetrics?: () => Promise<readonly MetricsSnapshot[]>;
}

/** The Prometheus metrics of the scaler, its check-in workers' included. */
export function metricsRoutes({ metrics, workerMetrics }: MetricsRouteDeps): Hono {
  const routes = new Hono();
  routes.get("/metrics", async (c) => {
    c.header("Content-Type", metrics.registry.contentType);
    return c.body(await exposition(metrics.registry, (await workerMetrics?.()) ?? []));
  });
  return routes;
}
