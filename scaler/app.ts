import { getRequestListener } from "@hono/node-server";
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { matchedRoutes } from "hono/route";
import { sidecarVerifier, type AsapVerifier } from "./api/asap.js";
import { publicKeyRoutes, sidecarKeyRoutes } from "./api/keys.js";
import { sidecarBundleRoutes } from "./api/sidecarBundle.js";
import { workerKeyId } from "../infra/workerCredentials.js";
import { FleetServerNotFoundError, FleetStartingError, ServerActionConflictError } from "./fleet/operator.js";
import { controlRoutes } from "./api/control.js";
import type { FleetView as FleetViewOf } from "./fleet/view.js";
import type { JitsiFleetStatus } from "./fleet/jitsiGroup.js";
import type { FleetStatus } from "./loop/controller.js";
import { healthRoutes, metricsRoutes } from "./api/health.js";
import { hookRoutes } from "./api/schedules.js";
import { CLIENT_GONE_STATUS, ClientGoneError, HttpError } from "./api/http.js";
import { sidecarHandler, type ErrorAnswer, type SidecarHandler, type SidecarHandlerDeps } from "./api/sidecar.js";
import { fleetPage, fleetPageData, statusPage } from "./api/status-page.js";
import { RepeatedFaults, createLogger, type Logger } from "./log.js";
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
  /** The fleets of its Jitsi groups (jitsi-<group>): their status, preview, a period now and scrape targets. */
  jitsiFleets?: readonly FleetViewOf<JitsiFleetStatus>[];
  /** The check-in workers' metrics, which `/metrics` serves summed with this process's. */
  workerMetrics?: () => Promise<readonly MetricsSnapshot[]>;
  /** The fleets' clock (an emulated cloud brings its own), for the time windows the status pages show. */
  now?: () => number;
}

/** What the HTTP surface shows of a fleet the scaler drives, and what operators can do with it (scaler/fleet/view.ts). */
export type FleetView = FleetViewOf<FleetStatus>;

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
  const asap = deps.asap ?? sidecarVerifier(settings.sidecar, store);
  const faults = new RepeatedFaults(logger);
  const app = measuredApp(metrics, logger, faults);

  app.route("/", healthRoutes({ store }));
  app.route("/", metricsRoutes({ metrics, ...(deps.workerMetrics === undefined ? {} : { workerMetrics: deps.workerMetrics }) }));
  app.route("/api/v1/sidecar-keys", sidecarKeyRoutes({ asap, tokens: settings.apiTokens }));
  app.route("/", sidecarBundleRoutes());
  app.route("/", publicKeyRoutes({ asap, workerKeyIds: () => workerKeyIds(deps.fleets ?? []) }));
  app.route("/hooks", hookRoutes(store));
  app.route("/api/v1", controlRoutes({ store, tokens: settings.apiTokens, fleets: [...(deps.fleets ?? []), ...(deps.jitsiFleets ?? [])] }));
  const fleets = new Map((deps.fleets ?? []).map((fleet) => [fleet.name, fleet]));
  const jitsiFleets = new Map((deps.jitsiFleets ?? []).map((fleet) => [fleet.name, fleet]));
  const now = deps.now ?? Date.now;
  // A browser asks for HTML and gets the page a person reads; scripts and Prometheus get JSON.
  const wantsHtml = (accept: string | undefined) => (accept ?? "").includes("text/html");
  app.get("/", async (c) =>
    c.html(await statusPage(store, await Promise.all([...fleets.values()].map((fleet) => fleetPageData(store, fleet.status(), now()))))),
  );
  app.get("/fleets", (c) => c.json([...fleets.values(), ...jitsiFleets.values()].map((fleet) => fleet.status())));
  app.get("/fleets/:name", async (c) => {
    // A Jitsi group's fleet answers JSON only; its group's sidecars are on the status page (`/`).
    const jitsiFleet = jitsiFleets.get(c.req.param("name"));
    if (jitsiFleet !== undefined) return c.json(jitsiFleet.status());
    const fleet = fleets.get(c.req.param("name"));
    if (fleet === undefined) return c.json({ error: "not_found", message: `no fleet ${c.req.param("name")}` }, 404);
    return wantsHtml(c.req.header("accept"))
      ? c.html(fleetPage(await fleetPageData(store, fleet.status(), now())))
      : c.json(fleet.status());
  });
  // Prometheus `http_sd_configs` of a fleet's workers (node-exporter with TLS and basic auth on each).
  app.get("/fleets/:name/targets", (c) => {
    const fleet = fleets.get(c.req.param("name")) ?? jitsiFleets.get(c.req.param("name"));
    return fleet === undefined
      ? c.json({ error: "not_found", message: `no fleet ${c.req.param("name")}` }, 404)
      : c.json(fleet.scrapeTargets());
  });
  return { app, sidecar: sidecarCalls({ store, asap, metrics, logger, maxBodyBytes: settings.sidecar.maxBodyBytes }, faults) };
}

export interface SidecarAppDeps {
  store: ScalerStore;
  settings: Pick<Settings, "sidecar">;
  metrics: ScalerMetrics;
  logger: Logger;
}

/** What a check-in worker serves: the sidecar protocol and its own liveness and readiness, nothing an operator uses. */
export function createSidecarApp({ store, settings, metrics, logger }: SidecarAppDeps): HttpSurface {
  const faults = new RepeatedFaults(logger);
  const app = measuredApp(metrics, logger, faults);
  app.route("/", healthRoutes({ store }));
  return {
    app,
    sidecar: sidecarCalls(
      {
        store,
        asap: sidecarVerifier(settings.sidecar, store),
        metrics,
        logger,
        maxBodyBytes: settings.sidecar.maxBodyBytes,
      },
      faults,
    ),
  };
}

/** The sidecar key ids of the fleets' workers. */
function workerKeyIds(fleets: readonly FleetView[]): string[] {
  return fleets.flatMap((fleet) =>
    fleet.scrapeTargets().flatMap(({ labels }) => (labels.server === undefined ? [] : [workerKeyId(fleet.name, labels.server)])),
  );
}

/** The sidecar calls, their errors answered as every other route's. */
function sidecarCalls(deps: Omit<SidecarHandlerDeps, "answerError">, faults: RepeatedFaults): SidecarHandler {
  return sidecarHandler({ ...deps, answerError: (error, path) => errorAnswer(error, path, deps.logger, faults) });
}

/** An app that times every request into the metrics and answers every error as JSON with the status it calls for. */
function measuredApp(metrics: ScalerMetrics, logger: Logger, faults: RepeatedFaults): Hono {
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
    // A hook's path is its credential (scaler/api/schedules.ts): never logged.
    const path = c.req.path.replace(/^\/hooks\/[^/]+/, "/hooks/<token>");
    const { status, body } = errorAnswer(error, path, logger, faults);
    return c.json(body, status);
  });

  return app;
}

/**
 * The status and JSON body an error is answered with; the ones nobody expects are logged, faults that repeat (Redis
 * away) once per interval.
 */
function errorAnswer(error: unknown, path: string, logger: Logger, faults: RepeatedFaults): ErrorAnswer {
  if (error instanceof HttpError) return { status: error.status, body: error.body() };
  if (error instanceof ClientGoneError) {
    logger.debug({ event: "request.client_gone", path }, error.message);
    return { status: CLIENT_GONE_STATUS as ContentfulStatusCode, body: { error: "client_gone", message: error.message } };
  }
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
    faults.warn("redis.unavailable", { operation: error.operation, path, err: error.message }, "redis unavailable");
    return { status: 503, body: { error: "unavailable", message: `state store: ${error.reason}; retry later` } };
  }
  if (error instanceof MetricsUnavailableError) {
    faults.warn("metrics.unavailable", { err: error.message }, "check-in workers' metrics unavailable");
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

/** The responses a listener has in flight, and whether it is stopping: kept on the server `listen` made. */
interface Drain {
  stopping: boolean;
  inFlight: Set<ServerResponse>;
}
const DRAIN = Symbol("drain");
type DrainableServer = Server & { [DRAIN]?: Drain };

/**
 * Stops a listener gracefully: no new connections; idle keep-alive connections closed now and each busy one once its
 * answer is sent, which says `Connection: close` (a client that keeps sending on a kept-alive connection would hold
 * the listener open for the whole grace); in-flight requests given `graceMs` before their connections are cut
 * (`onDeadline` says so). Resolves once the listener is closed.
 */
export function closeGracefully(server: Server, graceMs: number, onDeadline?: () => void): Promise<void> {
  const deadline = setTimeout(() => {
    onDeadline?.();
    server.closeAllConnections();
  }, graceMs);
  deadline.unref();
  const drain = (server as DrainableServer)[DRAIN];
  if (drain !== undefined) {
    drain.stopping = true;
    for (const response of drain.inFlight) closeAfter(response);
  }
  const closed = new Promise<void>((resolve) =>
    server.close(() => {
      clearTimeout(deadline);
      resolve();
    }),
  );
  server.closeIdleConnections();
  return closed;
}

/** Asks for the connection to be closed once this answer is sent, unless its head is out already. */
function closeAfter(response: ServerResponse): void {
  if (!response.headersSent) response.setHeader("connection", "close");
}

/** Serves an HTTP surface over HTTP/1.1 on `host:port`; `onListening` gets the bound port. */
export function listen({ app, sidecar }: HttpSurface, host: string, port: number, onListening?: (port: number) => void): Server {
  const honoListener = getRequestListener(app.fetch);
  const drain: Drain = { stopping: false, inFlight: new Set() };
  const server: DrainableServer = createServer((request, response) => {
    drain.inFlight.add(response);
    response.once("close", () => {
      drain.inFlight.delete(response);
      // A connection whose answer went out with its head before the stop began is idle now: close it.
      if (drain.stopping) setImmediate(() => server.closeIdleConnections());
    });
    if (drain.stopping) closeAfter(response);
    const kind = sidecar.callOf(request);
    if (kind === undefined) void honoListener(request, response);
    else void sidecar.serve(request, response, kind);
  });
  server[DRAIN] = drain;
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.listen(port, host, () => onListening?.((server.address() as AddressInfo).port));
  return server;
}
