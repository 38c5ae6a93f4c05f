import { hostname } from "node:os";
import { jitsiSecretsFromEnv, type JitsiConfig } from "../../infra/jitsi.js";
import { FleetStack } from "../actuator/fleetStack.js";
import { JitsiFleet, jitsiFleetName, jitsiStackName } from "../actuator/jitsiFleet.js";
import { FleetLock } from "../actuator/lock.js";
import type { JitsiFleetStatus } from "../fleet/jitsiGroup.js";
import type { FleetView } from "../fleet/view.js";
import { recordJitsiPeriod } from "../metrics.js";
import { metricOf } from "../policy/jitsi.js";
import type { JitsiFleetSettings } from "../settings.js";
import { FleetSecretsMissingError, engineVariables, type FleetRuntimeDeps } from "./runtime.js";

/** The secrets every Jitsi group's stack needs (the same as the BBB fleet's stack). */
const SECRET_VARIABLES = [
  "PULUMI_BACKEND_URL",
  "PULUMI_CONFIG_PASSPHRASE",
  "CONFSCALE_NODE_EXPORTER_PASSWORD",
  "CONFSCALE_BBB_SECRET",
] as const;

/** Sanity runs every this many periods. */
const SANITY_EVERY = 10;

export interface JitsiRuntime {
  fleets: JitsiFleet[];
  /** Each group's fleet as `/fleets/jitsi-<group>` and `/api/v1/fleets` show it. */
  views: FleetView<JitsiFleetStatus>[];
  /** Starts every group's fleet and its periods. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * One fleet per Jitsi group of the settings' `jitsi` block, each on its own stack `<env>-jitsi-<group>` with the
 * placement and template of the settings' `jitsiFleet` section (or the BBB fleet's `fleet` section, a superset of it),
 * run every `intervalSeconds`.
 */
export async function openJitsiRuntime(
  fleetSettings: JitsiFleetSettings,
  jitsi: JitsiConfig,
  deps: Omit<FleetRuntimeDeps, "onPeriod"> & {
    /** Where Prometheus scrapes a machine (the fleet section's scrapeAddressTemplate); `<name>.<domain>:9100` by default. */
    scrapeAddress?: (server: { name: string; id: string; publicIp: string }) => { address: string; metricsPath?: string };
  },
): Promise<JitsiRuntime> {
  const env = deps.env ?? process.env;
  const missing = SECRET_VARIABLES.filter((name) => (env[name] ?? "") === "");
  if (missing.length > 0) throw new FleetSecretsMissingError(missing);
  const secret = (name: (typeof SECRET_VARIABLES)[number]) => env[name] as string;
  const { template } = fleetSettings;
  const fleets: JitsiFleet[] = [];
  for (const group of jitsi.groups) {
    const fleet = jitsiFleetName(group.name);
    const fleetStack = await FleetStack.open({
      env: template.env,
      stackName: jitsiStackName(template.env, group.name),
      workDir: fleetSettings.workDir,
      backendUrl: secret("PULUMI_BACKEND_URL"),
      passphrase: secret("PULUMI_CONFIG_PASSPHRASE"),
      nodeExporterPassword: secret("CONFSCALE_NODE_EXPORTER_PASSWORD"),
      masterSecret: secret("CONFSCALE_BBB_SECRET"),
      providerEnv: engineVariables(env),
      jitsiSecrets: jitsiSecretsFromEnv(env),
    });
    fleets.push(
      new JitsiFleet(
        {
          group,
          template: {
            ...template,
            fleet,
            workload: { kind: "jitsi", group: group.name, component: group.type, signaling: jitsi.signaling },
          },
          defaultImage: fleetSettings.image,
          checkInDeadlineMs: fleetSettings.buildTimeoutSeconds * 1000,
          ...(deps.scrapeAddress === undefined ? {} : { scrapeAddress: deps.scrapeAddress }),
        },
        {
          redis: deps.redis,
          keyPrefix: deps.keyPrefix,
          lock: new FleetLock(deps.redis, deps.keyPrefix, fleetSettings.leaseTtlSeconds * 1000),
          fleetStack,
          store: deps.store,
          now: deps.now ?? Date.now,
          log: deps.logger,
          owner: `${hostname()}:${process.pid}`,
        },
      ),
    );
  }
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let periods = 0;
  let running: Promise<void> = Promise.resolve();
  const runPeriod = async () => {
    periods += 1;
    for (const fleet of fleets) {
      try {
        const report = await fleet.period();
        const { group } = fleet;
        if (deps.metrics !== undefined)
          recordJitsiPeriod(deps.metrics, fleet.status(), group.scaling, metricOf(group.type), (deps.now ?? Date.now)());
        if (report.actions.length > 0 || report.autoscale?.kind === "change")
          deps.logger.info(
            { event: "jitsi.period", fleet: fleet.fleet, desired: report.desired, actions: report.actions },
            "jitsi group scaled",
          );
        if (periods % SANITY_EVERY === 0) await fleet.sanity();
      } catch (error) {
        // One group's failure (the engine, Redis) leaves the others going; the next period tries again.
        deps.logger.error({ event: "jitsi.period_failed", fleet: fleet.fleet, err: error }, "jitsi group period failed");
      }
    }
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = runPeriod().finally(schedule);
    }, fleetSettings.intervalSeconds * 1000);
  };
  return {
    fleets,
    views: fleets.map((fleet) => fleet.view()),
    async start() {
      for (const fleet of fleets) await fleet.start();
      schedule();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      for (const fleet of fleets) await fleet.stop();
    },
  };
}
