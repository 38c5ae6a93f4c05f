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
import { emulatedFleetTemplate, emulatedStackSettings, emulatorEndpoints, KEY_PREFIX, type EmulatorEndpoints } from "./fleetRig.js";
import { freeLoopbackPort } from "./ports.js";
import type { PulumiSandbox } from "./pulumi.js";

export const OPERATOR_TOKEN = "operator-token-for-the-jitsi-e2e-tests";
const SIGNALING = { xmppDomain: "meet.confscale.test", xmppHost: "127.0.0.1" };
const INSTANCE_TTL = { provisioningSeconds: 900, idleSeconds: 300, shuttingDownSeconds: 600 };
const RETENTION = { stressPoints: 5_000, stressSeconds: 3_600, auditEntries: 1_000, instanceAuditSeconds: 3_600, commandSeconds: 3_600 };

/**
 * The scaler's side of Jitsi groups on the emulator: one store on a clock the test moves (stress points and the
 * autoscaler's periods read it), the scaler's HTTP surface that the emulated sidecars check in to and operators call,
 * and a fleet per group on its own stack of the real Pulumi engine.
 */
export async function openJitsiRig(options: { emulator: Emulator; sandbox: PulumiSandbox; redisUrl: string; startAt?: number }) {
  const { emulator, sandbox } = options;
  let clock = options.startAt ?? Date.now();
  const now = () => clock;
  const { redis, store } = openJitsiStore(options.redisUrl, now);
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
      const opened = await openEmulatedJitsiFleet({ endpoints: emulatorEndpoints(emulator), sandbox, redis, store, now, group: config });
      await opened.fleet.start();
      fleets.push(opened.fleet);
      return opened;
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

/**
 * A Jitsi group's fleet on its own stack `<env>-jitsi-<group>` of the real engine, against the emulator reached through
 * its endpoints (so a child process can run one too), not started.
 */
export async function openEmulatedJitsiFleet(options: {
  endpoints: EmulatorEndpoints;
  sandbox: Pick<PulumiSandbox, "dir" | "backendUrl" | "env">;
  redis: Redis;
  store: ScalerStore;
  group: z.input<typeof jitsiGroupConfigSchema>;
  now?: () => number;
  env?: string;
  owner?: string;
  /** A long lease by default: on a loaded box an `up` can outlast a short one's renewals. */
  leaseTtlMs?: number;
}): Promise<{ fleet: JitsiFleet; group: JitsiGroupConfig }> {
  const { endpoints, sandbox } = options;
  const env = options.env ?? "e2e";
  const group = jitsiGroupConfigSchema.parse(options.group);
  const fleetName = jitsiFleetName(group.name);
  const fleetStack = await FleetStack.open({
    ...emulatedStackSettings(endpoints, sandbox, env),
    stackName: jitsiStackName(env, group.name),
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
        ...emulatedFleetTemplate(endpoints, env, fleetName),
        workload: { kind: "jitsi", group: group.name, component: group.type, signaling: SIGNALING },
      },
      defaultImage: "ubuntu:22.04",
      checkInDeadlineMs: 600_000,
    },
    {
      redis: options.redis,
      keyPrefix: KEY_PREFIX,
      lock: new FleetLock(options.redis, KEY_PREFIX, options.leaseTtlMs ?? 120_000),
      fleetStack,
      store: options.store,
      now: options.now ?? Date.now,
      log: createLogger("jitsi", "silent"),
      owner: options.owner ?? `test-${process.pid}`,
    },
  );
  return { fleet, group };
}

/** The scaler's store on its own connection, with the Jitsi rigs' prefix, TTLs and retention. */
export function openJitsiStore(redisUrl: string, now: () => number = Date.now): { redis: Redis; store: ScalerStore } {
  const redis = new Redis(redisUrl);
  return { redis, store: new ScalerStore(redis, { keyPrefix: KEY_PREFIX, instanceTtl: INSTANCE_TTL, retention: RETENTION, now }) };
}
