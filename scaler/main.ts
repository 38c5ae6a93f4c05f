import { once } from "node:events";
import { closeGracefully, createApp, listen } from "./app.js";
import { parseCommandLine } from "./commandLine.js";
import { openJitsiRuntime, type JitsiRuntime } from "./loop/jitsi.js";
import { openFleetRuntime, type FleetRuntime } from "./loop/runtime.js";
import { RepeatedFaults, createLogger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { loadSettings } from "./settings.js";
import { SidecarWorkers } from "./sidecarWorkers.js";
import { ScalerStore, redisOfSettings } from "./store/store.js";

parseCommandLine(
  {
    name: "npm run scaler",
    usage: `usage: npm run scaler            (in the scaler's container: node --import tsx scaler/main.ts)
  The scaler takes no flags: its settings come from a YAML or JSON file named by SCALER_CONFIG, overridden by the
  environment. Required: redis.url (SCALER_REDIS_URL) and sidecar.keyBaseUrl (SCALER_ASAP_KEY_BASE_URL).
  Also read: SCALER_LISTEN_HOST, SCALER_LISTEN_PORT, SCALER_KEY_PREFIX, SCALER_API_TOKENS (name:role:token,…),
  SCALER_SIDECAR_WORKERS, SCALER_SIDECAR_PORT, SCALER_REDIS_SENTINELS (host:port,…), SCALER_REDIS_SENTINEL_NAME,
  LOG_LEVEL. A fleet section in the file needs PULUMI_BACKEND_URL,
  PULUMI_CONFIG_PASSPHRASE, CONFSCALE_NODE_EXPORTER_PASSWORD, LOADBALANCER_SECRET, CONFSCALE_BBB_SECRET and the
  cloud's credentials; Jitsi groups (jitsi, with fleet or jitsiFleet) the same but LOADBALANCER_SECRET.
  README.md lists every setting.`,
    flags: {},
  },
  () => undefined,
);

const logger = createLogger("scaler");

async function main(): Promise<void> {
  const settings = await loadSettings();
  const { client: redis, replication } = redisOfSettings(settings.redis);
  const faults = new RepeatedFaults(logger);
  redis.on("error", (error: Error) => faults.warn("redis.error", { err: error.message }, "redis connection problem"));
  redis.on("ready", () => logger.info({ event: "redis.ready" }, "redis connected"));
  const store = new ScalerStore(redis, {
    keyPrefix: settings.redis.keyPrefix,
    instanceTtl: settings.instanceTtl,
    retention: settings.retention,
    ...(replication === undefined ? {} : { replication }),
  });
  const metrics = createMetrics(() => store.countsByGroup());
  let fleet: FleetRuntime | undefined;
  if (settings.fleet !== undefined) {
    // The fleet's state lives in Redis: wait for it rather than fail the first period.
    if (redis.status !== "ready") await once(redis, "ready");
    fleet = await openFleetRuntime(settings.fleet, { redis, keyPrefix: settings.redis.keyPrefix, store, logger, metrics });
  }
  let jitsi: JitsiRuntime | undefined;
  // Beside the BBB fleet, or instead of it (a Jitsi-only environment has no fleet section).
  const jitsiFleet = settings.jitsiFleet ?? settings.fleet;
  if (jitsiFleet !== undefined && settings.jitsi !== undefined) {
    if (redis.status !== "ready") await once(redis, "ready");
    jitsi = await openJitsiRuntime(jitsiFleet, settings.jitsi, { redis, keyPrefix: settings.redis.keyPrefix, store, logger, metrics });
  }
  const workers = await SidecarWorkers.start(settings, logger);
  const app = createApp({
    store,
    settings,
    metrics,
    logger,
    ...(fleet === undefined ? {} : { fleets: [fleet.view] }),
    ...(jitsi === undefined ? {} : { jitsiFleets: jitsi.views }),
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
      .then(() => Promise.all([fleet?.controller.stop(), jitsi?.stop(), workersStopped]))
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
    // A standby waits here, serving check-ins and the API, until the leader's lease is released or expires.
    const { recovered } = await fleet.controller.start();
    if (!stopping) logger.info({ event: "fleet.started", fleet: fleet.view.name, recovered }, "fleet loop started");
  }
  if (jitsi !== undefined) {
    await jitsi.start();
    logger.info({ event: "jitsi.started", fleets: jitsi.fleets.map((entry) => entry.fleet) }, "jitsi groups started");
  }
}

main().catch((error: unknown) => {
  logger.fatal({ event: "start.failed", err: error instanceof Error ? error.message : String(error) }, "scaler could not start");
  // Open connections (Redis reconnecting) would keep a process that cannot work alive.
  process.exit(1);
});
