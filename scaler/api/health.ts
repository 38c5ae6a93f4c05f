import { Hono } from "hono";
import type { ScalerMetrics } from "../metrics.js";
import type { ScalerStore } from "../store/store.js";

/** Liveness (the process answers), readiness (Redis answers) and the Prometheus metrics. */
export function healthRoutes({ store, metrics }: { store: ScalerStore; metrics: ScalerMetrics }): Hono {
  const routes = new Hono();
  routes.get("/healthz", (c) => c.json({ status: "ok" }));
  routes.get("/readyz", async (c) =>
    (await store.ping()) ? c.json({ status: "ready" }) : c.json({ error: "unavailable", message: "redis unreachable" }, 503),
  );
  routes.get("/metrics", async (c) => {
    c.header("Content-Type", metrics.registry.contentType);
    return c.body(await metrics.registry.metrics());
  });
  return routes;
}
