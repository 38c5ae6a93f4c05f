/**
 * A check-in worker's process (see `sidecarWorkers.ts`): serves the sidecar protocol on the workers' shared port
 * with its own Redis connection, until its main process asks it to stop or is gone.
 */
import cluster from "node:cluster";
import { closeGracefully, createSidecarApp, listen } from "./app.js";
import { RepeatedFaults, createLogger } from "./log.js";
import { createMetrics } from "./metrics.js";
import type { FromSidecarWorker, SidecarWorkerSettings, ToSidecarWorker } from "./sidecarWorkers.js";
import { ScalerStore, redisOfSettings } from "./store/store.js";

const logger = createLogger("scaler").child({ worker: cluster.worker?.id });

function start(settings: SidecarWorkerSettings): void {
  const { client: redis, replication } = redisOfSettings(settings.redis);
  const faults = new RepeatedFaults(logger);
  redis.on("error", (error: Error) => faults.warn("redis.error", { err: error.message }, "redis connection problem"));
  const store = new ScalerStore(redis, {
    keyPrefix: settings.redis.keyPrefix,
    instanceTtl: settings.instanceTtl,
    retention: settings.retention,
    ...(replication === undefined ? {} : { replication }),
  });
  const metrics = createMetrics();
  const app = createSidecarApp({ store, settings, metrics, logger });
  const server = listen(app, settings.host, settings.port);
  server.on("error", (error: Error) => {
    logger.fatal({ event: "listen.failed", host: settings.host, port: settings.port, err: error.message }, "check-in worker cannot listen");
    process.exit(1);
  });

  let stopping = false;
  const stop = (reason: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: "stopping", reason }, "check-in worker stopping: finishing in-flight check-ins");
    void closeGracefully(server, settings.shutdownGraceMs)
      .then(() => store.close())
      .then(() => process.exit(0));
  };

  process.on("message", (message: ToSidecarWorker) => {
    if (message.type === "confscale:stop") stop("asked by the main process");
    if (message.type === "confscale:metrics") {
      void metrics.registry.getMetricsAsJSON().then((snapshot) => {
        if (process.connected)
          process.send?.({ type: "confscale:metrics", requestId: message.requestId, metrics: snapshot } satisfies FromSidecarWorker);
      });
    }
  });
  // The main process is gone (it crashed or was killed): nobody would stop or replace this one.
  process.on("disconnect", () => stop("main process gone"));
  // The main process stops the workers itself; a signal to the whole group must not cut a check-in short.
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

if (!cluster.isWorker) {
  logger.fatal({ event: "start.failed" }, "a check-in worker is started by the scaler (sidecar.workers), not by hand");
  process.exit(1);
}
const onSettings = (message: ToSidecarWorker) => {
  if (message.type !== "confscale:settings") return;
  process.off("message", onSettings);
  start(message.settings);
};
process.on("message", onSettings);
process.send?.({ type: "confscale:ready-for-settings" } satisfies FromSidecarWorker);
