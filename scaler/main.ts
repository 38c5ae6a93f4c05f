import { once } from "node:events";
import { closeGracefully, createApp, listen } from "./app.js";
import { openFleetRuntime, type FleetRuntime } from "./loop/runtime.js";
import { createLogger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { loadSettings } from "./settings.js";
import { SidecarWorkers } from "./sidecarWorkers.js";
import { ScalerStore, connectRedis } from "./store/store.js";

const logger = createLogger("scaler");

async function main(): Promise<void> {
  const settings = await loadSettings();
  const redis = connectRedis(settings.redis.url, settings.redis.commandTimeoutMs);
  redis.on("error", (error: Error) => logger.warn({ event: "redis.error", err: error.message }, "redis connection problem"));
  redis.on("ready", () => logger.info({ event: "redis.ready" }, "redis connected"));
  const store = new ScalerStore(redis, {
    keyPrefix: settings.redis.keyPrefix,
    instanceTtl: settings.instanceTtl,
    retention: settings.retention,
  });
  const metrics = createMetrics(() => store.countsByGroup());
  let fleet: FleetRuntime | undefined;
  if (settings.fleet !== undefined) {
    // The fleet's state lives in Redis: wait for it rather than fail the first period.
    if (redis.status !== "ready") await once(redis, "ready");
    fleet = await openFleetRuntime(settings.fleet, { redis, keyPrefix: settings.redis.keyPrefix, store, logger });
  }
  const workers = await SidecarWorkers.start(settings, logger);
  const app = createApp({
    store,
    settings,
    metrics,
    logger,
    ...(fleet === undefined ? {} : { fleets: [fleet.view] }),
    ...(workers === undefined ? {} : { workerMetrics: () => workers.metrics() }),
  });

  const server = listen(app, settings.listen.host, settings.listen.port, (port) => {
    logger.info({ event: "listening", host: settings.listen.host, port }, "scaler listening");
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: "stopping", signal }, "stopping: no new connections, finishing in-flight requests");
    const workersStopped = workers?.stop() ?? Promise.resolve();
    const closed = closeGracefully(server, settings.shutdownGraceMs, () =>
      logger.warn({ event: "stop.deadline", graceMs: settings.shutdownGraceMs }, "in-flight requests did not finish in time"),
    );
    void closed
      .then(() => Promise.all([fleet?.controller.stop(), workersStopped]))
      .then(() => store.close())
      .then(() => {
        logger.info({ event: "stopped" }, "scaler stopped");
        process.exitCode = 0;
      });
  };
  // `on`, not `once`: the engine's process library re-raises a signal when it finds no other listener left, which
  // would kill the scaler in the middle of its graceful stop; `stopping` makes repeats harmless.
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));

  if (fleet !== undefined) {
    const { recovered } = await fleet.controller.start();
    logger.info({ event: "fleet.started", fleet: fleet.view.name, recovered }, "fleet loop started");
  }
}

main().catch((error: unknown) => {
  logger.fatal({ event: "start.failed", err: error instanceof Error ? error.message : String(error) }, "scaler could not start");
  // Open connections (Redis reconnecting) would keep a process that cannot work alive.
  process.exit(1);
});
