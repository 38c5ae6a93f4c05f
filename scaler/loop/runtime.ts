import type { Redis } from "ioredis";
import { hostname } from "node:os";
import { CLOUD_CAPABILITIES, CLOUD_VARIABLES, listMachines } from "../../infra/clouds/index.js";
import { FleetActuator } from "../actuator/actuator.js";
import { FleetStackError } from "../actuator/fleetStack.js";
import { ShardedFleetStack } from "../actuator/shards.js";
import { Alerter, OverloadWatch, isAlertedAudit } from "../alerts.js";
import type { WorkerPolicy } from "../../infra/config.js";
import { FleetLock } from "../actuator/lock.js";
import { RedisPolicyHistory } from "../fleet/history.js";
import type { FleetView } from "../fleet/view.js";
import type { Logger } from "../log.js";
import { exportFleetPeriod, type ScalerMetrics } from "../metrics.js";
import type { FleetSettings } from "../settings.js";
import { BbbClient } from "../signals/bbb.js";
import { storeCheckIns, storeSidecarDrains } from "../signals/checkins.js";
import { PrometheusClient } from "../signals/prometheus.js";
import { ScaleliteClient } from "../signals/scalelite.js";
import type { ScalerStore } from "../store/store.js";
import { createFleetController, fleetView, type FleetController, type FleetPeriod, type FleetStatus } from "./controller.js";
import { HISTORY_RETENTION_MS } from "./decisions.js";
import { workerBbbSecret } from "../../infra/workerCredentials.js";

/** The environment variables a fleet needs, which never sit in a settings file. */
const SECRET_VARIABLES = [
  "PULUMI_BACKEND_URL",
  "PULUMI_CONFIG_PASSPHRASE",
  "CONFSCALE_NODE_EXPORTER_PASSWORD",
  "LOADBALANCER_SECRET",
  "CONFSCALE_BBB_SECRET",
] as const;

export class FleetSecretsMissingError extends Error {
  constructor(readonly variables: readonly string[]) {
    super(`the fleet settings need these environment variables, which are not set: ${variables.join(", ")}`);
    this.name = "FleetSecretsMissingError";
  }
}

/** Variables handed to the engine: the clouds' credentials and settings (infra/clouds/index.ts), the S3 backend's and the engine's own. */
const CLOUD_VARIABLE_NAMES = new Set(CLOUD_VARIABLES);
const ENGINE_VARIABLE = {
  test: (name: string) => CLOUD_VARIABLE_NAMES.has(name) || /^(AWS_|PULUMI_HOME$|PULUMI_SKIP_UPDATE_CHECK$)/.test(name),
};

/** The variables of `env` the engine is handed: the clouds' credentials and settings, the S3 backend's, the engine's own. */
export function engineVariables(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => ENGINE_VARIABLE.test(entry[0]) && entry[1] !== undefined),
  );
}

function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (match, key: string) => values[key] ?? match);
}

export interface FleetRuntime {
  controller: FleetController;
  view: FleetView<FleetStatus>;
  actuator: FleetActuator;
  /** The fleet's webhook alerts; `settled()` awaits those in flight. */
  alerter: Alerter;
}

/** What the fleet's runtime is wired to: the scaler's Redis and store, its logger, and where secrets and time come from. */
export interface FleetRuntimeDeps {
  redis: Redis;
  keyPrefix: string;
  store: ScalerStore;
  logger: Logger;
  /** Where the secrets and the cloud's credentials are read; the process environment by default. */
  env?: NodeJS.ProcessEnv;
  /** The clock of every decision and timeout; an emulated cloud brings its own. */
  now?: () => number;
  onPeriod?: (period: FleetPeriod) => void;
  /** Where each period's servers, readings, decisions and cost are exported for Prometheus. */
  metrics?: ScalerMetrics;
}

/** Builds the fleet's stack, actuator and loop from the settings and the environment's secrets. */
export async function openFleetRuntime(settings: FleetSettings, deps: FleetRuntimeDeps): Promise<FleetRuntime> {
  const env = deps.env ?? process.env;
  const now = deps.now ?? Date.now;
  const missing = SECRET_VARIABLES.filter((name) => (env[name] ?? "") === "");
  if (missing.length > 0) throw new FleetSecretsMissingError(missing);
  const secret = (name: (typeof SECRET_VARIABLES)[number]) => env[name] as string;
  const { template } = settings;
  const fleet = template.fleet;

  if ((await deps.store.getGroup(fleet)) === undefined) {
    await deps.store.createGroup(
      fleet,
      { instanceType: "bbb", desired: settings.policy.baseline, policy: settings.policy, allowScheduler: false },
      "settings",
    );
  }
  // The fleet's servers in shard stacks `<env>-fleet-<n>`: a change runs only its shard's `up`.
  const fleetStack = await ShardedFleetStack.open({
    env: template.env,
    convergeIntervalMs: settings.convergeIntervalSeconds * 1000,
    workDir: settings.workDir,
    backendUrl: secret("PULUMI_BACKEND_URL"),
    passphrase: secret("PULUMI_CONFIG_PASSPHRASE"),
    nodeExporterPassword: secret("CONFSCALE_NODE_EXPORTER_PASSWORD"),
    masterSecret: secret("CONFSCALE_BBB_SECRET"),
    providerEnv: engineVariables(env),
  });
  const scalelite = new ScaleliteClient({ baseUrl: settings.scaleliteUrl, secret: secret("LOADBALANCER_SECRET") });
  // Each worker has its own BBB secret, derived from the fleet's master secret (infra/workerCredentials.ts).
  const bbbSecretOf = (serverName: string) => workerBbbSecret(secret("CONFSCALE_BBB_SECRET"), fleet, serverName);
  const bbbUrl = (server: { name: string; id: string; publicIp: string }) =>
    fill(settings.bbbUrlTemplate, { ...server, domain: template.domain });
  const alerter = new Alerter({
    settings: settings.alerts,
    audit: ({ actor, ...entry }, server) => deps.store.appendAudit(fleet, { ...entry, actor }, server),
    now,
    logger: deps.logger,
  });
  const overloads = new OverloadWatch();
  const actuator = new FleetActuator(
    {
      fleet,
      namePrefix: fleet,
      image: settings.image,
      defaultSize: settings.policy.defaultSize,
      baseline: settings.policy.baseline,
      template,
      bbbUrl,
      bbbSecretOf,
      drainTimeoutMs: settings.drainTimeoutSeconds * 1000,
      onDrainTimeout: settings.onDrainTimeout,
      buildTimeoutMs: settings.buildTimeoutSeconds * 1000,
    },
    {
      redis: deps.redis,
      keyPrefix: deps.keyPrefix,
      lock: new FleetLock(deps.redis, deps.keyPrefix, settings.leaseTtlSeconds * 1000),
      fleetStack,
      scalelite,
      bbb: (baseUrl, serverName) => new BbbClient({ baseUrl, secret: bbbSecretOf(serverName) }),
      audit: async ({ actor, ...entry }, server) => {
        await deps.store.appendAudit(fleet, { ...entry, actor: actor ?? "actuator" }, server);
        if (isAlertedAudit(entry.kind))
          alerter.raise({ kind: entry.kind, fleet, ...(server === undefined ? {} : { server }), message: entry.message });
      },
      now,
      log: deps.logger,
      owner: `${hostname()}:${process.pid}`,
      // The sanity check reads the cloud itself, not the fleet stack's view of it.
      inventory: (placement) => listMachines(placement, env),
      // Workers' sidecars are drained through their check-in replies, and a stop waits for their confirmation.
      sidecars: storeSidecarDrains(deps.store, fleet),
    },
  );
  let lastPolicy: WorkerPolicy | undefined;
  const controller = createFleetController({
    fleet,
    actuator,
    audit: deps.store,
    history: new RedisPolicyHistory(deps.redis, deps.keyPrefix, {
      retentionMs: HISTORY_RETENTION_MS,
      fenceToken: () => actuator.leaseToken,
    }),
    loadProfile: deps.store,
    // The dated windows set through the API join the weekly ones; the policy keeps the higher minimum.
    policy: async () => {
      const [group, datedWindows] = await Promise.all([deps.store.requireGroup(fleet), deps.store.schedules.datedWindows(fleet)]);
      lastPolicy = group.policy;
      return { ...group.policy, datedWindows, image: settings.image };
    },
    prometheus: new PrometheusClient({ baseUrl: settings.prometheusUrl, rateWindow: settings.prometheusRateWindow }),
    scalelite,
    bbbSecretOf,
    pause: async () => {
      const [global, group] = await Promise.all([deps.store.getGlobalPause(), deps.store.requireGroup(fleet)]);
      if (global.paused) return { scope: "global", by: global.by ?? null };
      return group.paused || group.policy.paused ? { scope: "fleet", by: null } : null;
    },
    // The fleet's sidecars' check-ins, through the store's public read.
    checkIns: storeCheckIns(deps.store, fleet),
    canPowerOff: CLOUD_CAPABILITIES[template.placement.cloud].powerStates,
    freshForMs: settings.freshForSeconds * 1000,
    intervalMs: settings.intervalSeconds * 1000,
    now,
    logger: deps.logger,
    onActFailed: (error) => {
      if (error instanceof FleetStackError && error.operation === "up") alerter.raise({ kind: "up.failed", fleet, message: error.message });
    },
    onPeriod: (period) => {
      if (period.snapshot !== undefined && lastPolicy !== undefined) {
        const { thresholds, sustainPeriods } = lastPolicy;
        const limits = { cpu: thresholds.cpu.up, memory: thresholds.memory.up };
        for (const server of overloads.observe(period.snapshot.servers, limits, sustainPeriods))
          alerter.raise({ kind: "overload", fleet, server, message: `above the up-threshold for ${sustainPeriods} periods or more` });
      }
      if (deps.metrics !== undefined)
        void exportFleetPeriod(
          deps.metrics,
          period,
          controller.status(),
          async () => (await deps.store.requireGroup(fleet)).policy,
          deps.logger,
        );
      deps.onPeriod?.(period);
    },
  });
  const view = fleetView(controller, actuator, (server) => ({
    address: fill(settings.scrapeAddressTemplate, { ...server, domain: template.domain }),
    ...(settings.scrapeMetricsPathTemplate === undefined
      ? {}
      : { metricsPath: fill(settings.scrapeMetricsPathTemplate, { ...server, domain: template.domain }) }),
  }));
  return { controller, view, actuator, alerter };
}
