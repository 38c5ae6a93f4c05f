import { Redis } from "ioredis";
import type { WorkerPolicy } from "../../infra/config.js";
import type { FleetSpec } from "../../infra/fleet.js";
import { FleetActuator, type ActuatorSettings } from "../../scaler/actuator/actuator.js";
import { FleetStack } from "../../scaler/actuator/fleetStack.js";
import { FleetLock } from "../../scaler/actuator/lock.js";
import { createFleetController, type FleetPeriod } from "../../scaler/fleetController.js";
import { createLogger } from "../../scaler/log.js";
import { PrometheusClient } from "../../scaler/signals/prometheus.js";
import { BbbClient } from "../../scaler/signals/bbb.js";
import { ScaleliteClient } from "../../scaler/signals/scalelite.js";
import { ScalerStore } from "../../scaler/store/store.js";
import type { Emulator } from "../emulator/emulator.js";
import type { PulumiSandbox } from "./pulumi.js";

export const KEY_PREFIX = "confscale:";

/** The spec template of a fleet on the emulated IONOS cloud. */
export function emulatedFleetTemplate(emulator: Emulator, env: string, fleet: string): Omit<FleetSpec, "servers"> {
  return {
    env,
    fleet,
    placement: { cloud: "ionos", region: "de/fra", ionos: { datacenterId: emulator.defaultDatacenterId!, lanId: 1, endpoint: emulator.cloudApiUrl, pollIntervalMs: 100 } },
    domain: "bbb.confscale.test",
    scalerUrl: "http://127.0.0.1:1/scaler",
    controlNodeIp: "127.0.0.1",
    adminCidrs: ["127.0.0.0/8"],
    sshPublicKeys: [],
  };
}

/** Everything an actuator needs, wired to a real Redis, the real Pulumi engine and the emulator. */
export async function openEmulatedFleet(options: {
  emulator: Emulator;
  sandbox: PulumiSandbox;
  redisUrl: string;
  env?: string;
  fleet?: string;
  settings?: Partial<ActuatorSettings>;
  owner?: string;
}) {
  const { emulator, sandbox } = options;
  const env = options.env ?? "e2e";
  const fleet = options.fleet ?? "bbb";
  const redis = new Redis(options.redisUrl);
  const store = new ScalerStore(redis, {
    keyPrefix: KEY_PREFIX,
    instanceTtl: { provisioningSeconds: 900, idleSeconds: 300, shuttingDownSeconds: 600 },
    retention: { stressPoints: 100, stressSeconds: 3600, auditEntries: 1000, instanceAuditSeconds: 3600, commandSeconds: 3600 },
  });
  const fleetStack = await FleetStack.open({
    env,
    workDir: sandbox.dir,
    backendUrl: sandbox.backendUrl,
    passphrase: sandbox.env.PULUMI_CONFIG_PASSPHRASE!,
    nodeExporterPassword: "node-exporter-password",
    providerEnv: { ...sandbox.env, IONOS_USERNAME: emulator.credentials.username, IONOS_PASSWORD: emulator.credentials.password },
  });
  const settings: ActuatorSettings = {
    fleet,
    namePrefix: fleet,
    image: "ubuntu:22.04",
    defaultSize: { cores: 2, ramGb: 8 },
    baseline: 0,
    template: emulatedFleetTemplate(emulator, env, fleet),
    bbbUrl: ({ id }) => emulator.bbbUrl(id),
    bbbSecret: emulator.cloud.bbbSecret,
    drainTimeoutMs: 3_600_000,
    onDrainTimeout: "re-enable",
    buildTimeoutMs: 3_600_000,
    ...options.settings,
  };
  const actuator = new FleetActuator(settings, {
    redis,
    keyPrefix: KEY_PREFIX,
    lock: new FleetLock(redis, KEY_PREFIX, 30_000),
    fleetStack,
    scalelite: new ScaleliteClient({ baseUrl: emulator.scaleliteApiUrl, secret: emulator.scalelite.secret }),
    bbb: (baseUrl) => new BbbClient({ baseUrl, secret: emulator.cloud.bbbSecret }),
    audit: (entry, server) => store.appendAudit(fleet, { ...entry, actor: "actuator" }, server),
    now: () => emulator.clock.now(),
    log: createLogger("actuator", "silent"),
    owner: options.owner ?? `test-${process.pid}`,
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

/** A fleet's whole loop (signals, policy, actuator) on the emulator, with a real Prometheus scraping it. */
export async function openClosedLoop(options: { emulator: Emulator; sandbox: PulumiSandbox; redisUrl: string; prometheusUrl: string; policy: WorkerPolicy; settings?: Partial<ActuatorSettings> }) {
  const { emulator, policy } = options;
  const rig = await openEmulatedFleet({ ...options, settings: { baseline: policy.baseline, defaultSize: policy.defaultSize, ...options.settings } });
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
    intervalMs: 2_000,
    now: () => emulator.clock.now(),
    logger: createLogger("fleet", "silent"),
    onPeriod: (period) => periods.push(period),
  });
  return { ...rig, controller, periods };
}
