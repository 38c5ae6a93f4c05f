import { Redis } from "ioredis";
import { once } from "node:events";
import type { Server } from "node:http";
import type { z } from "zod";
import { jitsiGroupConfigSchema, type JitsiGroupConfig } from "../../infra/jitsi.js";
import { FleetStack } from "../../scaler/actuator/fleetStack.js";
import { JitsiFleet, jitsiFleetName, jitsiStackName } from "../../scaler/actuator/jitsiFleet.js";
import { FleetLock } from "../../scaler/actuator/lock.js";
import { createApp, listen } from "../../scaler/app.js";
import { createLogger } from "../../scaler/log.js";
import { parseSettings } from "../../scaler/settings.js";
import { ScalerStore } from "../../scaler/store/store.js";
import type { Emulator } from "../emulator/emulator.js";
import { emulatedFleetTemplate, KEY_PREFIX } from "./fleetRig.js";
import { freeLoopbackPort } from "./ports.js";
import type { PulumiSandbox } from "./pulumi.js";

export const OPERATOR_TOKEN = "operator-token-for-the-jitsi-e2e-tests";
const SIGNALING = { xmppDomain: "meet.confscale.test", xmppHost: "127.0.0.1" };

/**
 * The scaler's side of Jitsi groups on the emulator: one store on a clock the test moves (stress points and the
 * autoscaler's periods read it), the scaler's HTTP surface that the emulated sidecars check in to and operators call,
 * and a fleet per group on its own stack of the real Pulumi engine.
 */
export async function openJitsiRig(options: { emulator: Emulator; sandbox: PulumiSandbox; redisUrl: string; startAt?: number }) {
  const { emulator, sandbox } = options;
  let clock = options.startAt ?? Date.now();
  const now = () => clock;
  const redis = new Redis(options.redisUrl);
  const store = new ScalerStore(redis, {
    keyPrefix: KEY_PREFIX,
    instanceTtl: { provisioningSeconds: 900, idleSeconds: 300, shuttingDownSeconds: 600 },
    retention: { stressPoints: 5_000, stressSeconds: 3_600, auditEntries: 1_000, instanceAuditSeconds: 3_600, commandSeconds: 3_600 },
    now,
  });
  const port = await freeLoopbackPort();
  const settings = parseSettings({
    redis: { url: options.redisUrl },
    sidecar: { keyBaseUrl: emulator.keyBaseUrl },
    apiTokens: [{ name: "ops", role: "operator", token: OPERATOR_TOKEN }],
  });
  const server: Server = listen(createApp({ store, settings, logger: createLogger("scaler", "silent"), now }), "127.0.0.1", port);
  await once(server, "listening");
  const fleets: JitsiFleet[] = [];

  return {
    store,
    redis,
    url: `http://127.0.0.1:${port}`,
    now,
    /** Moves the scaler's clock. */
    advance: (ms: number) => {
      clock += ms;
    },
    /** A group's fleet on its own stack `e2e-jitsi-<group>`, started (lease taken, group created from its config). */
    openGroup: async (config: z.input<typeof jitsiGroupConfigSchema>): Promise<{ fleet: JitsiFleet; group: JitsiGroupConfig }> => {
      const group = jitsiGroupConfigSchema.parse(config);
      const fleetName = jitsiFleetName(group.name);
      const fleetStack = await FleetStack.open({
        env: "e2e",
        stackName: jitsiStackName("e2e", group.name),
        workDir: sandbox.dir,
        backendUrl: sandbox.backendUrl,
        passphrase: sandbox.env.PULUMI_CONFIG_PASSPHRASE!,
        nodeExporterPassword: "node-exporter-password",
        masterSecret: emulator.cloud.bbbSecret,
        providerEnv: { ...sandbox.env, IONOS_USERNAME: emulator.credentials.username, IONOS_PASSWORD: emulator.credentials.password },
        jitsiSecrets: {
          jitsiJvbPassword: "jvb-xmpp-password",
          jitsiJibriPassword: "jibri-xmpp-password",
          jitsiRecorderPassword: "recorder-xmpp-password",
        },
      });
      const fleet = new JitsiFleet(
        {
          group,
          template: {
            ...emulatedFleetTemplate(emulator, "e2e", fleetName),
            workload: { kind: "jitsi", group: group.name, component: group.type, signaling: SIGNALING },
          },
          defaultImage: "ubuntu:22.04",
          checkInDeadlineMs: 600_000,
        },
        {
          redis,
          keyPrefix: KEY_PREFIX,
          // A long lease: on a loaded box an `up` can outlast a short one's renewals.
          lock: new FleetLock(redis, KEY_PREFIX, 120_000),
          fleetStack,
          store,
          now,
          log: createLogger("jitsi", "silent"),
          owner: `test-${process.pid}`,
        },
      );
      await fleet.start();
      fleets.push(fleet);
      return { fleet, group };
    },
    close: async () => {
      for (const fleet of fleets) await fleet.stop();
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      await closed;
      redis.disconnect();
    },
  };
}
