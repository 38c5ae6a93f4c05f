import { Redis } from "ioredis";
import { once } from "node:events";
import type { Server } from "node:http";
import type { z } from "zod";
import { workerPolicySchema, type WorkerPolicy } from "../../infra/config.js";
import type { Decision } from "../../scaler/policy/types.js";
import { listMachines } from "../../infra/clouds/index.js";
import type { FleetSpec } from "../../infra/fleet.js";
import { workerBbbSecret } from "../../infra/workerCredentials.js";
import { FleetActuator, type ActuatorSettings } from "../../scaler/actuator/actuator.js";
import { FleetStack, type FleetStackSettings } from "../../scaler/actuator/fleetStack.js";
import { ShardedFleetStack, type ShardedFleetStackSettings } from "../../scaler/actuator/shards.js";
import { FleetLock } from "../../scaler/actuator/lock.js";
import { createApp, listen } from "../../scaler/app.js";
import type { FleetPeriod } from "../../scaler/loop/controller.js";
import { openFleetRuntime } from "../../scaler/loop/runtime.js";
import { createLogger, type Logger } from "../../scaler/log.js";
import { createMetrics } from "../../scaler/metrics.js";
import { fleetSettingsSchema, parseSettings, type ApiToken } from "../../scaler/settings.js";
import { BbbClient } from "../../scaler/signals/bbb.js";
import { storeSidecarDrains } from "../../scaler/signals/checkins.js";
import { ScaleliteClient } from "../../scaler/signals/scalelite.js";
import { ScalerStore } from "../../scaler/store/store.js";
import type { Emulator } from "../emulator/emulator.js";
import type { PulumiSandbox } from "./pulumi.js";

/**
 * The closed-loop tests' fleet policy: up to four small servers that react within a few periods of the emulator's
 * clock, with each test's own changes on top.
 */
export function closedLoopPolicy(changes: Partial<z.input<typeof workerPolicySchema>> = {}): WorkerPolicy {
  return workerPolicySchema.parse({
    min: 1,
    max: 4,
    baseline: 1,
    defaultSize: { cores: 2, ramGb: 8 },
    maxSize: { cores: 4, ramGb: 16 },
    sustainPeriods: 2,
    graceSeconds: 120,
    leadTimeSeconds: 120,
    cooldownSeconds: { afterScaleOut: 120, afterScaleIn: 60, perServer: 120 },
    ...changes,
  });
}

export const KEY_PREFIX = "confscale:";
/** The closed loop's period in wall-clock time; the tests' Prometheus scrapes every second. */
const PERIOD_MS = 2_000;
const INSTANCE_TTL = { provisioningSeconds: 900, idleSeconds: 300, shuttingDownSeconds: 600 };
const RETENTION = { stressPoints: 100, stressSeconds: 3600, auditEntries: 1000, instanceAuditSeconds: 3600, commandSeconds: 3600 };

/** The scaler's store on a fresh connection, with the rig's key prefix, TTLs and retention. */
function openStore(redisUrl: string, commandTimeoutMs?: number): { redis: Redis; store: ScalerStore } {
  const redis = new Redis(redisUrl, commandTimeoutMs === undefined ? {} : { commandTimeout: commandTimeoutMs });
  return { redis, store: new ScalerStore(redis, { keyPrefix: KEY_PREFIX, instanceTtl: INSTANCE_TTL, retention: RETENTION }) };
}

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

function endpointsOf(emulator: Emulator | EmulatorEndpoints): EmulatorEndpoints {
  return "clock" in emulator ? emulatorEndpoints(emulator) : emulator;
}

/** The spec template of a fleet on the emulated IONOS cloud (in this process, or reached through its endpoints). */
export function emulatedFleetTemplate(emulator: Emulator | EmulatorEndpoints, env: string, fleet: string): Omit<FleetSpec, "servers"> {
  const endpoints = endpointsOf(emulator);
  return {
    env,
    fleet,
    placement: {
      cloud: "ionos",
      region: "de/fra",
      ionos: { datacenterId: endpoints.datacenterId, lanId: 1, endpoint: endpoints.cloudApiUrl, pollIntervalMs: 100 },
    },
    domain: "bbb.confscale.test",
    scalerUrl: "http://127.0.0.1:1/scaler",
    controlNodeIp: "127.0.0.1",
    adminCidrs: ["127.0.0.0/8"],
    sshPublicKeys: [],
  };
}

/** Where fleet settings find the emulator: each worker's BBB API and node-exporter under its own path on the emulator's one listener, and its Scalelite. */
export function emulatedFleetAddresses(emulator: Emulator | EmulatorEndpoints) {
  const endpoints = endpointsOf(emulator);
  return {
    bbbUrlTemplate: `${endpoints.url}/servers/{id}/bigbluebutton/api`,
    scrapeAddressTemplate: new URL(endpoints.url).host,
    scrapeMetricsPathTemplate: "/servers/{id}/metrics",
    scaleliteUrl: endpoints.scaleliteApiUrl,
  };
}

/** The secrets a fleet on the emulator reads from its environment, besides its Pulumi backend's. */
export function emulatedFleetSecrets(
  emulator: Emulator | EmulatorEndpoints,
  nodeExporterPassword = "node-exporter-password",
): Record<string, string> {
  const endpoints = endpointsOf(emulator);
  return {
    CONFSCALE_NODE_EXPORTER_PASSWORD: nodeExporterPassword,
    LOADBALANCER_SECRET: endpoints.scaleliteSecret,
    CONFSCALE_BBB_SECRET: endpoints.bbbSecret,
    IONOS_USERNAME: endpoints.username,
    IONOS_PASSWORD: endpoints.password,
  };
}

/** The `<env>-fleet` stack in a sandbox, its IONOS provider signed in to the emulator. */
export function openEmulatedFleetStack(
  emulator: Emulator | EmulatorEndpoints,
  sandbox: Pick<PulumiSandbox, "dir" | "backendUrl" | "env">,
  env = "e2e",
): Promise<FleetStack> {
  return FleetStack.open(emulatedStackSettings(emulator, sandbox, env));
}

/** A fleet stack's settings as the scaler gives them, its IONOS provider signed in to the emulator. */
export function emulatedStackSettings(
  emulator: Emulator | EmulatorEndpoints,
  sandbox: Pick<PulumiSandbox, "dir" | "backendUrl" | "env">,
  env: string,
): FleetStackSettings {
  const endpoints = endpointsOf(emulator);
  return {
    env,
    workDir: sandbox.dir,
    backendUrl: sandbox.backendUrl,
    passphrase: sandbox.env.PULUMI_CONFIG_PASSPHRASE!,
    nodeExporterPassword: "node-exporter-password",
    masterSecret: endpoints.bbbSecret,
    providerEnv: { ...sandbox.env, IONOS_USERNAME: endpoints.username, IONOS_PASSWORD: endpoints.password },
  };
}

/** The fleet's shard stacks `<env>-fleet-<n>` in a sandbox (scaler/actuator/shards.ts), as the scaler opens them. */
export function openEmulatedShardedFleetStack(
  emulator: Emulator | EmulatorEndpoints,
  sandbox: Pick<PulumiSandbox, "dir" | "backendUrl" | "env">,
  env = "e2e",
  options: Pick<ShardedFleetStackSettings, "shardSize" | "parallel" | "convergeIntervalMs"> = {},
): Promise<ShardedFleetStack> {
  return ShardedFleetStack.open({ ...emulatedStackSettings(emulator, sandbox, env), ...options });
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
  /** Redis commands slower than this fail, as the scaler's own connection's do. */
  commandTimeoutMs?: number;
  log?: Logger;
  /** Servers per shard stack (scaler/actuator/shards.ts SHARD_SIZE unless given). */
  shardSize?: number;
  /** Drains servers through the check-ins in the rig's store, in the fleet's group, as the scaler's fleet runtime does. */
  sidecars?: boolean;
}) {
  const { endpoints, sandbox } = options;
  const env = options.env ?? "e2e";
  const fleet = options.fleet ?? "bbb";
  const { redis, store } = openStore(options.redisUrl, options.commandTimeoutMs);
  if (options.sidecars === true && (await store.getGroup(fleet)) === undefined) {
    await store.createGroup(fleet, { instanceType: "bbb", desired: 1, policy: closedLoopPolicy(), allowScheduler: false }, "test");
  }
  const fleetStack = await openEmulatedShardedFleetStack(
    endpoints,
    sandbox,
    env,
    options.shardSize === undefined ? {} : { shardSize: options.shardSize },
  );
  const settings: ActuatorSettings = {
    fleet,
    namePrefix: fleet,
    image: "ubuntu:22.04",
    defaultSize: { cores: 2, ramGb: 8 },
    baseline: 0,
    template: emulatedFleetTemplate(endpoints, env, fleet),
    bbbUrl: ({ id }) => `${endpoints.url}/servers/${id}/bigbluebutton/api`,
    bbbSecretOf: (name) => workerBbbSecret(endpoints.bbbSecret, fleet, name),
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
    bbb: (baseUrl, name) => new BbbClient({ baseUrl, secret: workerBbbSecret(endpoints.bbbSecret, fleet, name) }),
    audit: ({ actor, ...entry }, server) => store.appendAudit(fleet, { ...entry, actor: actor ?? "actuator" }, server),
    now: options.now ?? Date.now,
    log: options.log ?? createLogger("actuator", "silent"),
    owner: options.owner ?? `test-${process.pid}`,
    inventory: (placement) => listMachines(placement, emulatedFleetSecrets(endpoints)),
    ...(options.sidecars === true ? { sidecars: storeSidecarDrains(store, fleet) } : {}),
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
 * A fleet's whole loop on the emulator as the scaler's entry point builds it (`openFleetRuntime` from fleet settings
 * and secrets), with a real Prometheus scraping it. With `scalerPort`, the scaler's HTTP surface listens there too,
 * serving the fleet's status and `http_sd` targets. The test drives the periods; the policy is the group's in Redis.
 */
export async function openClosedLoop(options: {
  emulator: Emulator;
  sandbox: PulumiSandbox;
  redisUrl: string;
  prometheusUrl: string;
  policy: WorkerPolicy;
  buildTimeoutSeconds?: number;
  scalerPort?: number;
  /** The fleet settings' `alerts` (scaler/alerts.ts). */
  alerts?: Record<string, unknown>;
  drainTimeoutSeconds?: number;
  /** The control API's tokens (`apiTokens` of the scaler's settings), for tests that act as an operator. */
  apiTokens?: ApiToken[];
}) {
  const { emulator, sandbox, policy } = options;
  const endpoints = emulatorEndpoints(emulator);
  const { redis, store } = openStore(options.redisUrl);
  const settings = fleetSettingsSchema.parse({
    template: emulatedFleetTemplate(endpoints, "e2e", "bbb"),
    image: "ubuntu:22.04",
    policy,
    intervalSeconds: PERIOD_MS / 1000,
    workDir: sandbox.dir,
    ...emulatedFleetAddresses(endpoints),
    prometheusUrl: options.prometheusUrl,
    // A short rate window: the test's Prometheus scrapes every second.
    prometheusRateWindow: "15s",
    // The emulated clock of these tests runs up to 60 times real time: the default build timeout (30 minutes) would be
    // 30 real seconds, which a first `up` and boot on a loaded machine can pass, and the actuator would replace the
    // server. A test of stuck builds sets its own.
    buildTimeoutSeconds: options.buildTimeoutSeconds ?? 4 * 3600,
    leaseTtlSeconds: 30,
    ...(options.alerts === undefined ? {} : { alerts: options.alerts }),
    ...(options.drainTimeoutSeconds === undefined ? {} : { drainTimeoutSeconds: options.drainTimeoutSeconds }),
  });
  const periods: FleetPeriod[] = [];
  // The runtime sets the fleet's metrics each period; the app serves them on /metrics.
  const metrics = createMetrics(() => store.countsByGroup());
  const { controller, view, actuator, alerter } = await openFleetRuntime(settings, {
    metrics,
    redis,
    keyPrefix: KEY_PREFIX,
    store,
    logger: createLogger("fleet", "silent"),
    now: () => emulator.clock.now(),
    onPeriod: (period) => periods.push(period),
    env: { ...sandbox.env, PULUMI_BACKEND_URL: sandbox.backendUrl, ...emulatedFleetSecrets(endpoints) },
  });
  let server: Server | undefined;
  if (options.scalerPort !== undefined) {
    const appSettings = parseSettings({
      redis: { url: options.redisUrl },
      sidecar: { keyBaseUrl: emulator.keyBaseUrl },
      apiTokens: options.apiTokens ?? [],
    });
    const app = createApp({
      store,
      settings: appSettings,
      metrics,
      fleets: [view],
      logger: createLogger("scaler", "silent"),
      now: () => emulator.clock.now(),
    });
    server = listen(app, "127.0.0.1", options.scalerPort);
    await once(server, "listening");
  }
  return {
    actuator,
    store,
    /** The fleet's Redis, for tests that lose its state. */
    redis,
    controller,
    alerter,
    periods,
    /** Changes the fleet's policy as an operator would through the API: the next period reads it. */
    setPolicy: async (changes: Partial<WorkerPolicy>) => {
      const group = await store.requireGroup("bbb");
      await store.replaceGroup(
        "bbb",
        {
          instanceType: group.instanceType,
          desired: group.desired,
          allowScheduler: group.allowScheduler,
          policy: { ...group.policy, ...changes },
        },
        "test",
      );
    },
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
      await controller.stop();
      redis.disconnect();
    },
  };
}

/** A policy decision as a test hands it to the actuator (not a dry run, with a reason naming its kind). */
export function decision(kind: Decision["kind"], server?: string, extra: Partial<Decision> = {}): Decision {
  return { kind, ...(server === undefined ? {} : { server }), reason: `test: ${kind}`, inputs: {}, dryRun: false, ...extra };
}
