import { getRequestListener } from "@hono/node-server";
import { Hono } from "hono";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { matchedRoutes } from "hono/route";
import { AsapVerifier } from "./api/asap.js";
import { FleetServerNotFoundError, FleetStartingError, ServerActionConflictError } from "./fleet/operator.js";
import { controlRoutes } from "./api/control.js";
import type { FleetView } from "./fleet/view.js";
import { healthRoutes, metricsRoutes } from "./api/health.js";
import { HttpError } from "./api/http.js";
import { sidecarHandler, type ErrorAnswer, type SidecarHandler, type SidecarHandlerDeps } from "./api/sidecar.js";
import { statusPage } from "./api/status-page.js";
import { createLogger, type Logger } from "./log.js";
import { MetricsUnavailableError, createMetrics, type MetricsSnapshot, type ScalerMetrics } from "./metrics.js";
import type { Settings } from "./settings.js";
import { StoreConflictError, StoreUnavailableError } from "./store/errors.js";
import type { ScalerStore } from "./store/store.js";

export interface AppDeps {
  store: ScalerStore;
  settings: Pick<Settings, "apiTokens" | "sidecar">;
  /** Shared with the decision loop and actuator, which count their decisions and actions on it. */
  metrics?: ScalerMetrics;
  logger?: Logger;
  asap?: AsapVerifier;
  /** The fleets this scaler drives: their status and Prometheus `http_sd` targets. */
  fleets?: readonly FleetView[];
  /** The check-in workers' metrics, which `/metrics` serves summed with this process's. */
  workerMetrics?: () => Promise<readonly MetricsSnapshot[]>;
}

/** What the HTTP surface shows of a fleet the scaler drives, and what operators can do with it (scaler/fleet/view.ts). */
export type { FleetView };

const CONFLICT_STATUS = {
  group_not_found: 404,
  instance_not_found: 404,
  group_exists: 409,
  instance_type_mismatch: 409,
  out_of_range: 400,
} as const;

/**
 * The scaler's HTTP surface, without a listener (`listen` serves it): the sidecar protocol's check-ins, and the Hono
 * app of everything else.
 */
export interface HttpSurface {
  app: Hono;
  sidecar: SidecarHandler;
}

/** Everything the scaler serves: `main.ts` listens with it, as tests and the demo do. */
export function createApp(deps: AppDeps): HttpSurface {
  const { store, settings } = deps;
  const logger = deps.logger ?? createLogger("scaler");
  const metrics = deps.metrics ?? createMetrics(() => store.countsByGroup());
  const asap = deps.asap ?? new AsapVerifier(settings.sidecar);
  const app = measuredApp(metrics, logger);

  app.route("/", healthRoutes({ store }));
  app.route("/", metricsRoutes({ metrics, ...(deps.workerMetrics === undefined ? {} : { workerMetrics: deps.workerMetrics }) }));
  app.route("/api/v1", controlRoutes({ store, tokens: settings.apiTokens, fleets: deps.fleets ?? [] }));
  app.get("/", async (c) => c.html(await statusPage(store)));
  const fleets = new Map((deps.fleets ?? []).map((fleet) => [fleet.name, fleet]));
  app.get("/fleets", (c) => c.json([...fleets.values()].map((fleet) => fleet.status())));
  app.get("/fleets/:name", (c) => {
    const fleet = fleets.get(c.req.param("name"));
    return fleet === undefined ? c.json({ error: "not_found", message: `no fleet ${c.req.param("name")}` }, 404) : c.json(fleet.status());
  });
  // Prometheus `http_sd_configs` of a fleet's workers (node-exporter with TLS and basic auth on each).
  app.get("/fleets/:name/targets", (c) => {
    const fleet = fleets.get(c.req.param("name"));
    return fleet === undefined
      ? c.json({ error: "not_found", message: `no fleet ${c.req.param("name")}` }, 404)
      : c.json(fleet.scrapeTargets());
  });
  return { app, sidecar: sidecarCalls({ store, asap, metrics, logger, maxBodyBytes: settings.sidecar.maxBodyBytes }) };
}

export interface SidecarAppDeps {
  store: ScalerStore;
  settings: Pick<Settings, "sidecar">;
  metrics: ScalerMetrics;
  logger: Logger;
}

/** What a check-in worker serves: the sidecar protocol and its own liveness and readiness, nothing an operator uses. */
export function createSidecarApp({ store, settings, metrics, logger }: SidecarAppDeps): HttpSurface {
  const app = measuredApp(metrics, logger);
  app.route("/", healthRoutes({ store }));
  return {
    app,
    sidecar: sidecarCalls({
      store,
      asap: new AsapVerifier(settings.sidecar),
      metrics,
      logger,
      maxBodyBytes: settings.sidecar.maxBodyBytes,
    }),
  };
}

/** The sidecar calls, their errors answered as every other route's. */
function sidecarCalls(deps: Omit<SidecarHandlerDeps, "answerError">): SidecarHandler {
  return sidecarHandler({ ...deps, answerError: (error, path) => errorAnswer(error, path, deps.logger) });
}

/** An app that times every request into the metrics and answers every error as JSON with the status it calls for. */
function measuredApp(metrics: ScalerMetrics, logger: Logger): Hono {
  const app = new Hono();
  app.use("*", async (c, next) => {
    const started = performance.now();
    await next();
    const last = matchedRoutes(c).at(-1);
    const route = last === undefined || last.method === "ALL" ? "unmatched" : last.path;
    metrics.httpRequestDuration.observe(
      { method: c.req.method, route, status: String(c.res.status) },
      (performance.now() - started) / 1000,
    );
  });

  app.notFound((c) => c.json({ error: "not_found", message: `no route ${c.req.method} ${c.req.path}` }, 404));

  app.onError((error, c) => {
    const { status, body } = errorAnswer(error, c.req.path, logger);
    return c.json(body, status);
  });

  return app;
}

/** The status and JSON body an error is answered with; the ones nobody expects are logged. */
function errorAnswer(error: unknown, path: string, logger: Logger): ErrorAnswer {
  if (error instanceof HttpError) return { status: error.status, body: error.body() };
  if (error instanceof StoreConflictError) {
    return {
      status: CONFLICT_STATUS[error.code],
      body: { error: error.code, message: error.message, issues: [{ field: error.field, message: error.message }] },
    };
  }
  if (error instanceof FleetServerNotFoundError)
    return {
      status: 404,
      body: { error: "server_not_found", message: error.message, issues: [{ field: "server", message: "unknown server" }] },
    };
  if (error instanceof ServerActionConflictError)
    return { status: 409, body: { error: "conflict", message: error.message, issues: [{ field: "server", message: error.message }] } };
  if (error instanceof FleetStartingError) return { status: 503, body: { error: "starting", message: error.message } };
  if (error instanceof StoreUnavailableError) {
    logger.warn({ event: "redis.unavailable", operation: error.operation, path, err: error.message }, "redis unavailable");
    return { status: 503, body: { error: "unavailable", message: "state store (redis) unavailable, retry later" } };
  }
  if (error instanceof MetricsUnavailableError) {
    logger.warn({ event: "metrics.unavailable", err: error.message }, "check-in workers' metrics unavailable");
    return { status: 503, body: { error: "unavailable", message: error.message } };
  }
  logger.error({ event: "request.failed", path, err: error }, "request failed");
  return { status: 500, body: { error: "internal", message: "internal error" } };
}

/**
 * Longer than a reverse proxy keeps an idle upstream connection (Caddy: 2 minutes) and than a sidecar waits between
 * reports: with Node's 5 s, the server closes connections the proxy or sidecar is about to reuse, and those requests
 * fail with a reset.
 */
const KEEP_ALIVE_TIMEOUT_MS = 130_000;

/**
 * Stops a listener gracefully: no new connections, idle keep-alive connections closed now (they would hold it open
 * until a client's next call), in-flight requests given `graceMs` before their connections are cut
 * (`onDeadline` says so). Resolves once the listener is closed.
 */
export function closeGracefully(server: Server, graceMs: number, onDeadline?: () => void): Promise<void> {
  const deadline = setTimeout(() => {
    onDeadline?.();
    server.closeAllConnections();
  }, graceMs);
  deadline.unref();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  return closed;
}

/** Serves an HTTP surface over HTTP/1.1 on `host:port`; `onListening` gets the bound port. */
export function listen({ app, sidecar }: HttpSurface, host: string, port: number, onListening?: (port: number) => void): Server {
  const honoListener = getRequestListener(app.fetch);
  const server = createServer((request, response) => {
    const kind = sidecar.callOf(request);
    if (kind === undefined) void honoListener(request, response);
    else void sidecar.serve(request, response, kind);
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.listen(port, host, () => onListening?.((server.address() as AddressInfo).port));
  return server;
}
