/**
 * The `local` environment on the rehearsal lab, as `pulumi up` of stacks/Pulumi.local.yaml would lay it out: the cloud
 * API emulator outside (the lab reaches it at the gateway), the control node a lab machine behind its rendered
 * firewall, booted from its rendered cloud-init with what `pulumi up` delivers over SSH (control-node.ts), and the
 * emulated cloud's servers as lab machines (lab-cloud.ts). Shared by the rehearsal's end-to-end tests and the demo.
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { parseEnvironmentConfig, type EnvironmentConfig } from "../../infra/config.js";
import { cloudCredentialsFrom } from "../../infra/clouds/index.js";
import type { Placement } from "../../infra/clouds/types.js";
import { renderControlNodeScalerSettings } from "../../infra/controlNode.js";
import { controlNodeFirewallRules } from "../../infra/firewall.js";
import { renderControlNodeSecretFiles, renderControlNodeUserData, scalerApiToken } from "../../infra/templates.js";
import type { AuditEntry } from "../../scaler/store/schemas.js";
import { Emulator, type EmulatorOptions } from "../emulator/emulator.js";
import { configMapFromStackFile } from "../harness/stackFile.js";
import { ControlNode, type ControlNodeDelivery } from "./control-node.js";
import { applyCloudFirewall } from "./firewall.js";
import { LabCloud } from "./lab-cloud.js";
import { Lab, waitFor, type Machine } from "./lab.js";

export const ENV = "local";
const STACK_FILE = new URL("../../stacks/Pulumi.local.yaml", import.meta.url).pathname;
/** The control node's lab address. */
export const CONTROL_ADDRESS = "198.18.0.2";

export interface LocalSecrets {
  scaleliteSecret: string;
  grafanaAdminPassword: string;
  nodeExporterPassword: string;
}

/** The local stack's config as `pulumi up` hands it to the program, with secrets an operator would set. */
export function localStack(secrets: LocalSecrets): EnvironmentConfig {
  const { raw, secretKeys } = configMapFromStackFile(STACK_FILE);
  for (const [key, value] of Object.entries(secrets)) raw[`confscale:${key}`] = value;
  return parseEnvironmentConfig(ENV, raw, secretKeys);
}

/** The fleet's status as the scaler serves it at /fleets/<fleet>. */
export const FleetStatusView = z.object({
  servers: z.array(
    z.object({
      name: z.string(),
      power: z.string(),
      phase: z.string(),
      cores: z.number(),
      lastCheckIn: z.string().nullable(),
      readings: z
        .object({ cpu: z.object({ value: z.number().nullable() }), memory: z.object({ value: z.number().nullable() }) })
        .optional(),
    }),
  ),
  lastPeriod: z
    .object({
      at: z.string(),
      update: z.unknown(),
      decisions: z.array(z.object({ kind: z.string(), server: z.string().nullable() })),
    })
    .nullable(),
});
export type FleetStatusView = z.infer<typeof FleetStatusView>;

/** Prometheus's active targets (GET /api/v1/targets). */
export const Targets = z.object({
  data: z.object({
    activeTargets: z.array(
      z.object({ labels: z.record(z.string(), z.string()), health: z.string(), lastError: z.string(), scrapeUrl: z.string() }),
    ),
  }),
});

/** The server name of a worker's URL (`https://bbb-1.<domain>:9100/metrics` → bbb-1). */
const hostOf = (url: string) => new URL(url).hostname.split(".")[0] ?? "";

export interface LocalEnvironment {
  emulator: Emulator;
  lab: Lab;
  control: Machine;
  node: ControlNode;
  config: EnvironmentConfig;
  delivery: ControlNodeDelivery;
  userData: string;
  labCloud: LabCloud;
  secrets: LocalSecrets;
  /** An HTTP GET from the control node: status code and body. */
  curl(url: string): Promise<{ status: string; body: string }>;
  /** A GET of the scaler's control API (/api/v1/…) from the control node with the scaler's own API token. */
  api(path: string): Promise<unknown>;
  fleetStatus(fleet?: string): Promise<FleetStatusView>;
  /** Resolves once each named worker is scraped by Prometheus (through http_sd, over TLS), has checked in and is enabled and online in Scalelite. */
  workersReady(names: readonly string[], timeoutMs?: number): Promise<void>;
  audit(fleet?: string): Promise<AuditEntry[]>;
  stop(): Promise<void>;
}

export async function startLocalEnvironment(options: { emulator?: EmulatorOptions } = {}): Promise<LocalEnvironment> {
  const usable = await Lab.available();
  if (!usable.ok) throw new Error(usable.reason);
  const secrets: LocalSecrets = {
    scaleliteSecret: randomBytes(32).toString("hex"),
    grafanaAdminPassword: randomBytes(12).toString("base64url"),
    nodeExporterPassword: randomBytes(18).toString("base64url"),
  };
  const emulator = await Emulator.start({
    scaleliteSecret: secrets.scaleliteSecret,
    scalelitePollMs: 1_000,
    timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 },
    ...options.emulator,
  });
  let lab: Lab | undefined;
  let labCloud: LabCloud | undefined;
  const stop = async () => {
    await labCloud?.close();
    await lab?.stop();
    await emulator.stop();
  };
  try {
    lab = await Lab.start();
    // The cloud's API is on the internet: the control node reaches it at the lab's gateway.
    const cloudApi = await lab.expose({ port: Number(new URL(emulator.url).port) });
    const config = localStack(secrets);
    const control = await lab.machine("control", { address: CONTROL_ADDRESS, hostnames: [config.domain] });
    await applyCloudFirewall(control, controlNodeFirewallRules(config.adminCidrs));
    labCloud = LabCloud.attach(lab, emulator, { domain: config.domain });
    const placement: Placement = {
      cloud: "ionos",
      region: config.region,
      ionos: { datacenterId: emulator.defaultDatacenterId ?? "", lanId: 1, endpoint: `${cloudApi.url}/cloudapi/v6`, pollIntervalMs: 100 },
    };
    const userData = renderControlNodeUserData({ env: ENV, domain: config.domain, fleetStack: `${ENV}-fleet` });
    const delivery: ControlNodeDelivery = {
      secretFiles: renderControlNodeSecretFiles({
        ...secrets,
        fleetBackendUrl: "file:///var/lib/confscale/state",
        fleetPassphrase: randomBytes(16).toString("hex"),
        cloudCredentials: cloudCredentialsFrom({
          IONOS_USERNAME: emulator.credentials.username,
          IONOS_PASSWORD: emulator.credentials.password,
        }),
      }),
      scalerSettings: renderControlNodeScalerSettings(ENV, config, control.address, placement),
    };
    // The file:// backend of the fleet stack lives on the fleet-state volume.
    await control.mkdir("/var/lib/confscale/state");
    const certificate = await lab.issueCertificate({ dns: [config.domain] });
    const node = await ControlNode.boot(control, { userData, delivery, scalelitePort: Number(new URL(emulator.url).port), certificate });

    const curl = async (url: string) => {
      const { stdout } = await control.exec("curl", ["-sS", "-w", "\n%{http_code}", url]);
      const at = stdout.lastIndexOf("\n");
      return { status: stdout.slice(at + 1), body: stdout.slice(0, at) };
    };
    const api = async (path: string): Promise<unknown> => {
      // The token reaches curl in its config on stdin, never in its arguments.
      const { stdout } = await control.exec("curl", ["-sS", "-K", "-", `http://scaler:8080/api/v1${path}`], {
        input: `header = "Authorization: Bearer ${scalerApiToken(secrets.scaleliteSecret)}"\n`,
      });
      return JSON.parse(stdout) as unknown;
    };
    const fleetStatus = async (fleet = "bbb") => FleetStatusView.parse(JSON.parse((await curl(`http://scaler:8080/fleets/${fleet}`)).body));
    const audit = async (fleet = "bbb") =>
      z
        .object({
          entries: z.array(z.looseObject({ at: z.number(), kind: z.string(), actor: z.string(), instanceId: z.string().optional() })),
        })
        .parse(await api(`/groups/${fleet}/audit?limit=500`)).entries as AuditEntry[];
    const workersReady = async (names: readonly string[], timeoutMs = 150_000) => {
      await waitFor(
        `${names.join(", ")} scraped over TLS, checked in and enabled in Scalelite`,
        async () => {
          const { body } = await curl("http://prometheus:9090/api/v1/targets?state=active");
          const up = Targets.parse(JSON.parse(body))
            .data.activeTargets.filter((target) => target.labels.job === "node-exporter" && target.health === "up")
            .map((target) => hostOf(target.scrapeUrl));
          const checkedIn = (await fleetStatus()).servers.filter((server) => server.lastCheckIn !== null).map((server) => server.name);
          const enabled = [...emulator.scalelite.servers.values()]
            .filter((entry) => entry.state === "enabled" && entry.online)
            .map((entry) => hostOf(entry.url));
          return names.every((name) => up.includes(name) && checkedIn.includes(name) && enabled.includes(name)) ? true : undefined;
        },
        timeoutMs,
      );
    };
    return {
      emulator,
      lab,
      control,
      node,
      config,
      delivery,
      userData,
      labCloud,
      secrets,
      curl,
      api,
      fleetStatus,
      workersReady,
      audit,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
