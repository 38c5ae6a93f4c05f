import { serve, type ServerType } from "@hono/node-server";
import { Redis } from "ioredis";
import { once } from "node:events";
import type { WorkerPolicy } from "../../infra/config.js";
import { listServers } from "../../infra/clouds/ionos/operations.js";
import type { FleetSpec } from "../../infra/fleet.js";
import { FleetActuator, type ActuatorSettings } from "../../scaler/actuator/actuator.js";
import { FleetStack } from "../../scaler/actuator/fleetStack.js";
import { FleetLock } from "../../scaler/actuator/lock.js";
import { createApp } from "../../scaler/app.js";
import { createFleetController, fleetView, type FleetPeriod } from "../../scaler/fleetController.js";
import { parseSettings } from "../../scaler/settings.js";
import { createLogger } from "../../scaler/log.js";
import { PrometheusClient } from "../../scaler/signals/prometheus.js";
import { BbbClient } from "../../scaler/signals/bbb.js";
import { ScaleliteClient } from "../../scaler/signals/scalelite.js";
import { ScalerStore } from "../../scaler/store/store.js";
import type { Emulator } from "../emulator/emulator.js";
import type { PulumiSandbox } from "./pulumi.js";

export const KEY_PREFIX = "confscale:";
/** The closed loop's period in wall-clock time; the tests' Prometheus scrapes every second. */
const PERIOD_MS = 2_000;

/** What a process needs to reach an emulator, as plain JSON (a test hands it to a scaler it runs as a child). */
export interface EmulatorEndpoints {
  url: string;
  cloudApiUrl: string;
  datacenterId: string;
  username: string;
  password: string;
  scaleliteApiUrl: string;
  scaleliteSecret: string;
  bbbSecret: string;
}

export function emulatorEndpoints(emulator: Emulator): EmulatorEndpoints {
  return {
    url: emulator.url,
    cloudApiUrl: emulator.cloudApiUrl,
    datacenterId: emulator.defaultDatacenterId!,
    username: emulator.credentials.username,
    password: emulator.credentials.password,
    scaleliteApiUrl: emulator.scaleliteApiUrl,
    scaleliteSecret: emulator.scalelite.secret,
    bbbSecret: emulator.cloud.bbbSecret,
  };
}

/** The spec template of a fleet on the emulated IONOS cloud (in this process, or reached through its endpoints). */
export function emulatedFleetTemplate(emulator: Emulator | EmulatorEndpoints, env: string, fleet: string): Omit<FleetSpec, "servers"> {
  const endpoints = "clock" in emulator ? emulatorEndpoints(emulator) : emulator;
  return {
    env,
    fleet,
    placement: { cloud: "ionos", region: "de/fra", ionos: { datacenterId: endpoints.datacenterId, lanId: 1, endpoint: endpoints.cloudApiUrl, pollIntervalMs: 100 } },
    domain: "bbb.confscale.test",
    scalerUrl: "http://127.0.0.1:1/scaler",
    controlNodeIp: "127.0.0.1",
    adminCidrs: ["127.0.0.0/8"],
    sshPublicKeys: [],
  };
}

/** The `<env>-fleet` stack in a sandbox, its IONOS provider signed in to the emulator. */
export function openEmulatedFleetStack(emulator: Emulator | EmulatorEndpoints, sandbox: Pick<PulumiSandbox, "dir" | "backendUrl" | "env">, env = "e2e"): Promise<FleetStack> {
  const endpoints = "clock" in emulator ? emulatorEndpoints(emulator) : emulator;
  return FleetStack.open({
    env,
    workDir: sandbox.dir,
    backendUrl: sandbox.backendUrl,
    passphrase: sandbox.env.PULUMI_CONFIG_PASSPHRASE!,
    nodeExporterPassword: "node-exporter-password",
    bbbSecret: endpoints.bbbSecret,
    providerEnv: { ...sandbox.env, IONOS_USERNAME: endpoints.username, IONOS_PASSWORD: endpoints.password },
  });
}

/** Everything an actuator needs, wired to a real Redis, the real Pulumi engine and the emulator. */
export async function openEmulatedFleet(options: {
  endpoints: EmulatorEndpoints;
  sandbox: Pick<PulumiSandbox, "dir" | "backendUrl" | "env">;
  redisUrl: string;
  env?: string;
  fleet?: string;
  settings?: Partial<ActuatorSettings>;
  owner?: string;
  /** The fleet lease's time to live; a holder that dies loses the fleet after it. */
  leaseTtlMs?: number;
  now?: () => number;
}) {
  const { endpoints, sandbox } = options;
  const env = options.env ?? "e2e";
  const fleet = options.fleet ?? "bbb";
  const redis = new Redis(options.redisUrl);
  const store = new ScalerStore(redis, {
    keyPrefix: KEY_PREFIX,
    instanceTtl: { provisioningSeconds: 900, idleSeconds: 300, shuttingDownSeconds: 600 },
    retention: { stressPoints: 100, stressSeconds: 3600, auditEntries: 1000, instanceAuditSeconds: 3600, commandSeconds: 3600 },
  });
  const fleetStack = await openEmulatedFleetStack(endpoints, sandbox, env);
  const settings: ActuatorSettings = {
    fleet,
    namePrefix: fleet,
    image: "ubuntu:22.04",
    defaultSize: { cores: 2, ramGb: 8 },
    baseline: 0,
    template: emulatedFleetTemplate(endpoints, env, fleet),
    bbbUrl: ({ id }) => `${endpoints.url}/servers/${id}/bigbluebutton/api`,
    bbbSecret: endpoints.bbbSecret,
    drainTimeoutMs: 3_600_000,
    onDrainTimeout: "re-enable",
    buildTimeoutMs: 3_600_000,
    ...options.settings,
  };
  const actuator = new FleetActuator(settings, {
    redis,
    keyPrefix: KEY_PREFIX,
    lock: new FleetLock(redis, KEY_PREFIX, options.leaseTtlMs ?? 30_000),
    fleetStack,
    scalelite: new ScaleliteClient({ baseUrl: endpoints.scaleliteApiUrl, secret: endpoints.scaleliteSecret }),
    bbb: (baseUrl) => new BbbClient({ baseUrl, secret: endpoints.bbbSecret }),
    audit: ({ actor, ...entry }, server) => store.appendAudit(fleet, { ...entry, actor: actor ?? "actuator" }, server),
    now: options.now ?? Date.now,
    log: createLogger("actuator", "silent"),
    owner: options.owner ?? `test-${process.pid}`,
    inventory: (placement) => listServers({ endpoint: endpoints.cloudApiUrl, username: endpoints.username, password: endpoints.password }, placement.ionos!.datacenterId),
  });
  return {
    actuator,
    fleetStack,
    store,
    redis,
    close: async () => {
      await actuator.stop();
      redis.disconnect();
    },
  };
}

/**
 * A fleet's whole loop (signals, policy, actuator) on the emulator, with a real Prometheus scraping it. With
 * `scalerPort`, the scaler's HTTP surface listens there too, serving the fleet's status and `http_sd` targets.
 */
export async function openClosedLoop(options: {
  emulator: Emulator;
  sandbox: PulumiSandbox;
  redisUrl: string;
  prometheusUrl: string;
  policy: WorkerPolicy;
  settings?: Partial<ActuatorSettings>;
  scalerPort?: number;
}) {
  const { emulator, policy } = options;
  const rig = await openEmulatedFleet({
    ...options,
    endpoints: emulatorEndpoints(emulator),
    now: () => emulator.clock.now(),
    settings: { baseline: policy.baseline, defaultSize: policy.defaultSize, ...options.settings },
  });
  await rig.store.createGroup("bbb", { instanceType: "bbb", desired: policy.baseline, policy, allowScheduler: false }, "test");
  const periods: FleetPeriod[] = [];
  const controller = createFleetController({
    fleet: "bbb",
    actuator: rig.actuator,
    audit: rig.store,
    policy: async () => policy,
    // A short rate window: the test's Prometheus scrapes every second.
    prometheus: new PrometheusClient({ baseUrl: options.prometheusUrl, rateWindow: "15s" }),
    scalelite: new ScaleliteClient({ baseUrl: emulator.scaleliteApiUrl, secret: emulator.scalelite.secret }),
    bbbSecret: emulator.cloud.bbbSecret,
    canPowerOff: true,
    freshForMs: 5 * 60_000,
    intervalMs: PERIOD_MS,
    now: () => emulator.clock.now(),
    logger: createLogger("fleet", "silent"),
    onPeriod: (period) => periods.push(period),
  });
  let server: ServerType | undefined;
  if (options.scalerPort !== undefined) {
    const settings = parseSettings({ redis: { url: options.redisUrl }, sidecar: { keyBaseUrl: emulator.keyBaseUrl } });
    // The emulator serves every worker's node-exporter on its one listener, under the worker's own path.
    const view = fleetView(controller, rig.actuator, (worker) => ({ address: new URL(emulator.url).host, metricsPath: emulator.metricsPath(worker.id) }));
    const app = createApp({ store: rig.store, settings, fleets: [view], logger: createLogger("scaler", "silent") });
    server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: options.scalerPort });
    await once(server, "listening");
  }
  return {
    ...rig,
    controller,
    periods,
    /** One period at the controller's own cadence: Prometheus scrapes between periods, as it does in service. */
    period: async () => {
      const started = performance.now();
      const result = await controller.period();
      const left = PERIOD_MS - (performance.now() - started);
      if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
      return result;
    },
    close: async () => {
      if (server !== undefined) await new Promise((resolve) => server?.close(resolve));
      await rig.close();
    },
  };
}
