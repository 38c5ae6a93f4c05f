/**
 * The `local` environment on the rehearsal lab, from the environment stack's own `pulumi up` (the real CLI, a file://
 * backend, the inline program of infra/workspace.ts) against the cloud API emulator outside the lab: the cloud's
 * servers are lab machines (lab-cloud.ts); the control server the up creates boots from the user data on its boot volume
 * behind the rules on its NIC, with what the stack's SSH steps would deliver (control-node.ts). Shared by the
 * rehearsal's end-to-end tests and the demo.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Stack } from "@pulumi/pulumi/automation/index.js";
import { z } from "zod";
import { parseEnvironmentConfig, type EnvironmentConfig } from "../../infra/config.js";
import { cloudCredentialsFrom } from "../../infra/clouds/index.js";
import { ionosPlacementSchema } from "../../infra/clouds/ionos/index.js";
import { renderControlNodeScalerSettings } from "../../infra/controlNode.js";
import { renderControlNodeSecretFiles } from "../../infra/templates.js";
import { pulumiCommand } from "../../infra/toolchain.js";
import { selectEnvironmentStack } from "../../infra/workspace.js";
import type { AuditEntry } from "../../scaler/store/schemas.js";
import { Emulator, type EmulatorOptions } from "../emulator/emulator.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";
import { ControlNode, type ControlNodeDelivery } from "./control-node.js";
import { LabCloud } from "./lab-cloud.js";
import { Lab, waitFor, type Machine } from "./lab.js";

export const ENV = "local";
const REPO = fileURLToPath(new URL("../..", import.meta.url));
const STACK_FILE = join(REPO, "stacks", "Pulumi.local.yaml");

export interface LocalSecrets {
  scaleliteSecret: string;
  grafanaAdminPassword: string;
  nodeExporterPassword: string;
}

/** The outputs of the environment's `pulumi up` that the control node's delivery and the operator use. */
export const StackOutputs = z.object({
  controlNodeAddress: z.string(),
  scalerApiToken: z.string(),
  workerPlacement: z.strictObject({
    cloud: z.literal("ionos"),
    region: z.string(),
    dnsZone: z.string().optional(),
    ionos: ionosPlacementSchema,
  }),
});

/** The fleet's status as the scaler serves it at /fleets/<fleet>. */
export const FleetStatusView = z.object({
  servers: z.array(
    z.object({
      name: z.string(),
      power: z.string(),
      phase: z.string(),
      cores: z.number(),
      ramGb: z.number(),
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
      held: z.array(z.string()),
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
  /** The outputs of the environment stack's `pulumi up`. */
  outputs: z.infer<typeof StackOutputs>;
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
  readyWorkers(): Promise<string[]>;
  audit(fleet?: string): Promise<AuditEntry[]>;
  /**
   * Resolves with the fleet's status once the scaler's first `up` has run (its `fleet.up` audit entry, which stays; the
   * status's last period is the next one's as soon as that runs).
   */
  firstFleetUp(timeoutMs: number, fleet?: string): Promise<FleetStatusView>;
  stop(): Promise<void>;
}

/** The environment's own project and stack file, as an operator has them, in a sandbox (test/e2e/environment-local.test.ts). */
async function localProject(sandbox: PulumiSandbox): Promise<void> {
  await mkdir(join(sandbox.dir, "stacks"));
  await copyFile(join(REPO, "Pulumi.yaml"), join(sandbox.dir, "Pulumi.yaml"));
  await copyFile(STACK_FILE, join(sandbox.dir, "stacks", "Pulumi.local.yaml"));
  await symlink(join(REPO, "infra"), join(sandbox.dir, "infra"), "dir");
}

/** The stack's config as the Pulumi runtime hands it to the program (`namespace:key` → string, structured as JSON). */
async function configOf(stack: Stack): Promise<EnvironmentConfig> {
  const all = await stack.getAllConfig();
  const raw = Object.fromEntries(Object.entries(all).map(([key, { value }]) => [key, value]));
  const secretKeys = new Set(Object.entries(all).flatMap(([key, { secret }]) => (secret ? [key] : [])));
  return parseEnvironmentConfig(ENV, raw, secretKeys);
}

/** `pulumi config set --secret`, the value on stdin: never on a command line. */
async function setSecretConfig(sandbox: PulumiSandbox, env: Record<string, string>, key: string, value: string): Promise<void> {
  const pulumi = (await pulumiCommand()).command;
  await new Promise<void>((resolve, reject) => {
    const child = execFile(
      pulumi,
      ["config", "set", "--secret", "--stack", ENV, key],
      { cwd: sandbox.dir, env },
      (error, _stdout, stderr) =>
        error === null ? resolve() : reject(new Error(`pulumi config set --secret ${key}: ${stderr}`, { cause: error })),
    );
    child.stdin?.end(value);
  });
}

export async function startLocalEnvironment(options: { emulator?: EmulatorOptions } = {}): Promise<LocalEnvironment> {
  const usable = await Lab.available();
  if (!usable.ok) throw new Error(usable.reason);
  let emulator: Emulator | undefined;
  let lab: Lab | undefined;
  let labCloud: LabCloud | undefined;
  const sandbox = await createPulumiSandbox();
  const stop = async () => {
    await labCloud?.close();
    await lab?.stop();
    await emulator?.stop();
    await sandbox.cleanup();
  };
  try {
    await localProject(sandbox);
    // The committed stack file's secrets (passphrase in the file's header comment) and the cloud's credentials.
    const engineEnv = { ...sandbox.env, PULUMI_CONFIG_PASSPHRASE: "confscale-local" };
    const committed = await configOf(await selectEnvironmentStack(ENV, { workDir: sandbox.dir, envVars: engineEnv }));
    const secrets: LocalSecrets = {
      scaleliteSecret: committed.scaleliteSecret,
      grafanaAdminPassword: committed.grafanaAdminPassword,
      nodeExporterPassword: committed.nodeExporterPassword,
    };
    // No data center yet: the environment stack creates its own, as on an empty IONOS contract.
    emulator = await Emulator.start({
      scaleliteSecret: secrets.scaleliteSecret,
      scalelitePollMs: 1_000,
      timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 },
      datacenter: null,
      ...options.emulator,
    });
    const cloudEnv = { IONOS_USERNAME: emulator.credentials.username, IONOS_PASSWORD: emulator.credentials.password };
    const stack = await selectEnvironmentStack(ENV, { workDir: sandbox.dir, envVars: { ...engineEnv, ...cloudEnv } });
    // What an operator sets: the cloud API's address (the emulator listens wherever the OS put it) and, as for
    // deployScaler, the fleet stack's backend (the control node's fleet-state volume) and passphrase.
    await stack.setConfig("confscale:ionos.endpoint", { value: emulator.cloudApiUrl }, true);
    await setSecretConfig(sandbox, engineEnv, "confscale:fleetBackendUrl", "file:///var/lib/confscale/state");
    await setSecretConfig(sandbox, engineEnv, "confscale:fleetPassphrase", randomBytes(16).toString("hex"));
    const config = await configOf(stack);
    const cloud = emulator;
    lab = await Lab.start();

    // The cloud powers the control server on during the up; it boots from its user data once the up has delivered.
    let booted: (value: { machine: Machine; userData: string }) => void = () => undefined;
    const controlServer = new Promise<{ machine: Machine; userData: string }>((resolve) => (booted = resolve));
    labCloud = LabCloud.attach(lab, emulator, {
      domain: config.domain,
      control: {
        serverName: `${ENV}-control`,
        machineName: "control",
        hostnames: [config.domain],
        boot: async (machine, userData) => booted({ machine, userData }),
      },
    });
    const up = await stack.up();
    if (up.summary.result !== "succeeded") throw new Error(`pulumi up of ${ENV}: ${up.summary.result}\n${up.stderr}`);
    const outputs = StackOutputs.parse(Object.fromEntries(Object.entries(up.outputs).map(([key, { value }]) => [key, value])));
    const { machine: control, userData } = await controlServer;
    const server = [...emulator.cloud.servers.values()].find((entry) => entry.name === `${ENV}-control`);
    if (server?.labels.get("confscale:role") !== "control") throw new Error(`${ENV}-control is not labelled confscale:role=control`);
    if (control.address !== outputs.controlNodeAddress) throw new Error(`the control machine is not at ${outputs.controlNodeAddress}`);

    // What the stack's SSH steps carry (infra/controlNode.ts), from this up: its config, the address and placement it
    // made. The local stack does not run those steps (deployScaler: false): see test/rehearsal/README.md.
    const delivery: ControlNodeDelivery = {
      secretFiles: renderControlNodeSecretFiles({
        scaleliteSecret: config.scaleliteSecret,
        grafanaAdminPassword: config.grafanaAdminPassword,
        nodeExporterPassword: config.nodeExporterPassword,
        fleetBackendUrl: config.fleetBackendUrl ?? "",
        fleetPassphrase: config.fleetPassphrase ?? "",
        cloudCredentials: cloudCredentialsFrom(cloudEnv),
      }),
      scalerSettings: renderControlNodeScalerSettings(ENV, config, outputs.controlNodeAddress, outputs.workerPlacement),
    };
    // The cloud's API answers on the control node where the stack's endpoint points, as api.ionos.com would anywhere.
    const cloudApiPort = Number(new URL(emulator.url).port);
    await control.serveFromOutside({ port: cloudApiPort }, { host: "127.0.0.1", port: cloudApiPort });
    await control.mkdir("/var/lib/confscale/state");
    const certificate = await lab.issueCertificate({ dns: [config.domain] });
    const node = await ControlNode.boot(control, { userData, delivery, scalelitePort: cloudApiPort, certificate });

    const curl = async (url: string) => {
      const { stdout } = await control.exec("curl", ["-sS", "-w", "\n%{http_code}", url]);
      const at = stdout.lastIndexOf("\n");
      return { status: stdout.slice(at + 1), body: stdout.slice(0, at) };
    };
    const api = async (path: string): Promise<unknown> => {
      // The token reaches curl in its config on stdin, never in its arguments.
      const { stdout } = await control.exec("curl", ["-sS", "-K", "-", `http://scaler:8080/api/v1${path}`], {
        input: `header = "Authorization: Bearer ${outputs.scalerApiToken}"\n`,
      });
      return JSON.parse(stdout) as unknown;
    };
    const fleetStatus = async (fleet = "bbb") => FleetStatusView.parse(JSON.parse((await curl(`http://scaler:8080/fleets/${fleet}`)).body));
    const AuditTrail = z.object({
      entries: z.array(z.looseObject({ at: z.number(), kind: z.string(), actor: z.string(), instanceId: z.string().optional() })),
    });
    // As much of the trail as the route gives (scaler/api/control.ts); before the scaler has written the fleet's trail
    // the route may answer 404 (scaler/store/audit.ts), which fails the parse.
    const readAudit = async (fleet: string) => AuditTrail.safeParse(await api(`/groups/${fleet}/audit?limit=1000`));
    const audit = async (fleet = "bbb") => {
      const trail = await readAudit(fleet);
      if (!trail.success) throw new Error(`fleet ${fleet}'s audit trail: ${trail.error.message}`);
      return trail.data.entries as AuditEntry[];
    };
    const firstFleetUp = async (timeoutMs: number, fleet = "bbb") => {
      await waitFor(
        "the scaler's first fleet up",
        async () => {
          const trail = await readAudit(fleet);
          return trail.success && trail.data.entries.some((entry) => entry.kind === "fleet.up") ? true : undefined;
        },
        timeoutMs,
      );
      return fleetStatus(fleet);
    };
    /** The workers that are scraped over TLS by Prometheus, checked in with the scaler and enabled and online in Scalelite. */
    const readyWorkers = async () => {
      const { body } = await curl("http://prometheus:9090/api/v1/targets?state=active");
      const up = Targets.parse(JSON.parse(body))
        .data.activeTargets.filter((target) => target.labels.job === "node-exporter" && target.health === "up")
        .map((target) => hostOf(target.scrapeUrl));
      const checkedIn = (await fleetStatus()).servers.filter((server) => server.lastCheckIn !== null).map((server) => server.name);
      const enabled = [...cloud.scalelite.servers.values()]
        .filter((entry) => entry.state === "enabled" && entry.online)
        .map((entry) => hostOf(entry.url));
      return up.filter((name) => checkedIn.includes(name) && enabled.includes(name));
    };
    const workersReady = async (names: readonly string[], timeoutMs = 150_000) => {
      await waitFor(
        `${names.join(", ")} scraped over TLS, checked in and enabled in Scalelite`,
        async () => {
          const ready = await readyWorkers();
          return names.every((name) => ready.includes(name)) ? true : undefined;
        },
        timeoutMs,
      );
    };
    return {
      emulator: cloud,
      outputs,
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
      readyWorkers,
      audit,
      firstFleetUp,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
