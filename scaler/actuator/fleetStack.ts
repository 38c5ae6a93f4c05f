import {
  LocalWorkspace,
  type EngineEvent,
  type LocalWorkspaceOptions,
  type Stack,
  type Workspace,
} from "@pulumi/pulumi/automation/index.js";
import { existsSync } from "node:fs";
import { mkdir, symlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineFleet, FLEET_PROJECT, fleetSpecSchema, type FleetSecrets, type FleetSpec } from "../../infra/fleet.js";
import type { JitsiSecrets } from "../../infra/jitsi.js";
import { enginePath, pulumiCommand } from "../../infra/toolchain.js";

export interface FleetStackSettings {
  env: string;
  /** The stack's name; `<env>-fleet` unless given (a shard's, scaler/actuator/shards.ts; a Jitsi group's `<env>-jitsi-<group>`). */
  stackName?: string;
  /** The fleet project's directory (its Pulumi.yaml); dynamic providers run from here. */
  workDir: string;
  /** The fleet stack's backend: the cloud's S3-compatible storage, or a `file://` path on a persistent volume. */
  backendUrl: string;
  passphrase: string;
  nodeExporterPassword: string;
  /** The fleet's master secret; each worker gets only its own secrets derived from it (infra/workerCredentials.ts). */
  masterSecret: string;
  /** Provider credentials and settings (e.g. IONOS_TOKEN); handed to the engine only, never logged. */
  providerEnv?: Record<string, string>;
  /** A Jitsi group's XMPP passwords (infra/jitsi.ts jitsiSecretsFromEnv), for its workers' user data. */
  jitsiSecrets?: JitsiSecrets;
}

/** What the fleet program exports of each server; `sidecarKey` for Jitsi workers only (infra/jitsiSidecarKey.ts). */
export interface ServerOutputs {
  id: string;
  publicIp: string;
  sidecarKey?: { keyId: string; publicKeyPem: string };
}

/** One resource step of an update, as the engine reported it. */
export interface ResourceStep {
  name: string;
  type: string;
  op: string;
}

export interface FleetUpdateReport {
  steps: ResourceStep[];
  durationMs: number;
  /** Counts by operation (create, update, replace, delete, same). */
  summary: Record<string, number>;
}

/** Each server's outputs by name. */
export type ServerAddresses = Record<string, ServerOutputs>;

export class FleetStackError extends Error {
  constructor(
    readonly stackName: string,
    readonly operation: string,
    cause: unknown,
  ) {
    super(`${operation} of fleet stack ${stackName} failed: ${causeSummary(cause)}`, { cause });
    this.name = "FleetStackError";
  }
}

/**
 * What went wrong, in a few lines: the engine's `error:` lines when its output has them (they come after the progress
 * of every resource, which a long update prints first), else the message's first lines.
 */
export function causeSummary(cause: unknown): string {
  const message = cause instanceof Error ? cause.message : String(cause);
  const errors = [
    ...new Set(
      message
        .split("\n")
        .filter((line) => /\berror: /.test(line))
        .map((line) => line.trim()),
    ),
  ];
  return (errors.length > 0 ? errors : message.split("\n")).slice(0, 12).join("\n");
}

const STALE_SECRET_KEYS = [`${FLEET_PROJECT}:nodeExporterPassword`, `${FLEET_PROJECT}:bbbSecret`];

const nodeModules = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "node_modules");

/** The fleet project's workspace in `settings.workDir`, made ready for the engine (backend directory, node_modules). */
export async function fleetWorkspaceOptions(settings: FleetStackSettings): Promise<LocalWorkspaceOptions> {
  await mkdir(settings.workDir, { recursive: true });
  // A file:// backend is a directory the engine expects to exist; make it on first use.
  if (settings.backendUrl.startsWith("file://")) await mkdir(fileURLToPath(settings.backendUrl.split("?")[0]!), { recursive: true });
  // Dynamic providers (the IONOS adapter) load ./node_modules/@pulumi/pulumi from the project directory.
  if (!existsSync(join(settings.workDir, "node_modules"))) await symlink(nodeModules, join(settings.workDir, "node_modules"), "dir");
  return {
    workDir: settings.workDir,
    pulumiCommand: await pulumiCommand(),
    secretsProvider: "passphrase",
    projectSettings: { name: FLEET_PROJECT, runtime: "nodejs", backend: { url: settings.backendUrl } },
    envVars: {
      ...settings.providerEnv,
      PATH: enginePath(),
      PULUMI_CONFIG_PASSPHRASE: settings.passphrase,
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    },
  };
}

/** The `<env>-fleet` stack, run inline through the Automation API: the program is `defineFleet(spec)`. */
export class FleetStack {
  private constructor(
    readonly name: string,
    private readonly stack: Stack,
    /** What the inline program declares on its next run. */
    private readonly program: { spec?: FleetSpec },
  ) {}

  static async open(settings: FleetStackSettings): Promise<FleetStack> {
    const name = settings.stackName ?? `${settings.env}-fleet`;
    const program: { spec?: FleetSpec } = {};
    // Handed to the inline program in memory: `pulumi config set` would put them on the CLI's command line.
    const secrets: FleetSecrets = {
      nodeExporterPassword: settings.nodeExporterPassword,
      masterSecret: settings.masterSecret,
      ...(settings.jitsiSecrets === undefined ? {} : { jitsi: settings.jitsiSecrets }),
    };
    const stack = await LocalWorkspace.createOrSelectStack(
      {
        stackName: name,
        projectName: FLEET_PROJECT,
        program: async () => {
          if (program.spec === undefined) throw new Error("the fleet program ran without a spec");
          return defineFleet(program.spec, secrets, settings.providerEnv ?? process.env);
        },
      },
      await fleetWorkspaceOptions(settings),
    );
    // Stacks made before the secrets came in memory still hold them as config: drop them (only key names are passed).
    const stale = Object.keys(await stack.getAllConfig()).filter((key) => STALE_SECRET_KEYS.includes(key));
    if (stale.length > 0) await stack.removeAllConfig(stale);
    return new FleetStack(name, stack, program);
  }

  /**
   * Brings the cloud to `spec`; `onStep` sees each resource step as the engine finishes it. `parallel` caps the
   * engine's concurrent resource operations (the CLI's `--parallel`); unset, the engine's default applies. `signal`
   * cancels the update (the holder lost the fleet lease).
   */
  async up(
    spec: FleetSpec,
    onStep?: (step: ResourceStep) => void,
    options: { parallel?: number; refresh?: boolean; signal?: AbortSignal } = {},
  ): Promise<FleetUpdateReport & { addresses: ServerAddresses }> {
    this.program.spec = fleetSpecSchema.parse(spec);
    const steps: ResourceStep[] = [];
    const started = performance.now();
    try {
      const result = await this.stack.up({
        ...(options.parallel === undefined ? {} : { parallel: options.parallel }),
        ...(options.refresh === true ? { refresh: true } : {}),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        onEvent: (event) => {
          const step = stepOf(event);
          if (step === undefined) return;
          steps.push(step);
          onStep?.(step);
        },
      });
      return {
        steps,
        durationMs: performance.now() - started,
        summary: { ...result.summary.resourceChanges },
        // Each server's cloud id and public address after the update, from its outputs.
        addresses: (result.outputs.servers?.value ?? {}) as ServerAddresses,
      };
    } catch (error) {
      throw new FleetStackError(this.name, "up", error);
    }
  }

  /** What `up(spec)` would change, without changing anything. */
  async preview(spec: FleetSpec): Promise<Record<string, number>> {
    this.program.spec = fleetSpecSchema.parse(spec);
    try {
      return { ...(await this.stack.preview()).changeSummary };
    } catch (error) {
      throw new FleetStackError(this.name, "preview", error);
    }
  }

  /** Reads the cloud's reality into the stack's state (after a crash, or to find drift). */
  async refresh(): Promise<Record<string, number>> {
    try {
      return { ...(await this.stack.refresh()).summary.resourceChanges };
    } catch (error) {
      throw new FleetStackError(this.name, "refresh", error);
    }
  }

  /** The spec the last successful `up` applied, from the stack's outputs; undefined for a new stack. */
  async appliedSpec(): Promise<FleetSpec | undefined> {
    const outputs = await this.stack.outputs();
    const spec = outputs.spec?.value;
    return spec === undefined ? undefined : fleetSpecSchema.parse(spec);
  }

  /** Each server's cloud id and public address, from the stack's outputs. */
  async serverAddresses(): Promise<ServerAddresses> {
    return (await this.outputs()).addresses;
  }

  /** The applied spec and the addresses, read with one engine command. */
  async outputs(): Promise<{ spec: FleetSpec | undefined; addresses: ServerAddresses }> {
    const outputs = await this.stack.outputs();
    const spec = outputs.spec?.value;
    return {
      spec: spec === undefined ? undefined : fleetSpecSchema.parse(spec),
      addresses: (outputs.servers?.value ?? {}) as ServerAddresses,
    };
  }

  /** The project's workspace: lists and removes the fleet's stacks (scaler/actuator/shards.ts). */
  get workspace(): Workspace {
    return this.stack.workspace;
  }

  /**
   * After a scaler died during an `up`: removes the engine's stale lock, drops the creates it never saw finish
   * (the IONOS adapter adopts a machine such a create left behind, by its name and ownership labels) and reads the
   * cloud's reality into the state. Call it only while holding the fleet lease: no other `up` can be running.
   */
  async recover(): Promise<{ pendingOperations: number; refresh: Record<string, number> }> {
    try {
      const state = await this.stack.exportStack();
      const pending = (state.deployment as { pending_operations?: unknown[] }).pending_operations ?? [];
      await this.stack.cancel();
      const refreshed = await this.stack.refresh({ clearPendingCreates: true });
      return { pendingOperations: pending.length, refresh: { ...refreshed.summary.resourceChanges } };
    } catch (error) {
      throw new FleetStackError(this.name, "recovery", error);
    }
  }
}

function stepOf(event: EngineEvent): ResourceStep | undefined {
  const metadata = event.resOutputsEvent?.metadata;
  if (metadata === undefined || metadata.type === "pulumi:pulumi:Stack" || metadata.type.startsWith("pulumi:providers:")) return undefined;
  return { name: metadata.urn.slice(metadata.urn.lastIndexOf("::") + 2), type: metadata.type, op: metadata.op };
}
