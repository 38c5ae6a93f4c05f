import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { LocalWorkspace, type Stack } from "@pulumi/pulumi/automation/index.js";
import { CONFIG_NAMESPACE } from "./config.js";
import { defineEnvironment } from "./environment.js";
import { enginePath, pulumiCommand } from "./toolchain.js";

export interface EnvironmentWorkspaceOptions {
  /** The project directory: its Pulumi.yaml and stacks/ hold the settings and stack config. */
  workDir: string;
  /** Backend, passphrase and cloud credentials; the process environment when omitted. */
  envVars?: Record<string, string>;
}

/** The directory of a `file://` backend URL with an absolute path; undefined for other backends. */
function fileBackendDirectory(backendUrl: string | undefined): string | undefined {
  if (backendUrl === undefined || !backendUrl.startsWith("file:///")) return undefined;
  return fileURLToPath(backendUrl.split("?")[0] ?? backendUrl);
}

/**
 * An environment stack running the environment program inline, so it needs no language host:
 * what `pulumi preview|up -s <env>` does in the project directory, callable from scripts and tests.
 */
export async function selectEnvironmentStack(stackName: string, options: EnvironmentWorkspaceOptions): Promise<Stack> {
  // The engine refuses a file:// backend whose directory is missing; a first preview on a fresh machine makes it.
  const backendDirectory = fileBackendDirectory(options.envVars?.PULUMI_BACKEND_URL ?? process.env.PULUMI_BACKEND_URL);
  if (backendDirectory !== undefined) await mkdir(backendDirectory, { recursive: true });
  return LocalWorkspace.createOrSelectStack(
    // The config namespace is the project name (Pulumi.yaml `name`).
    { stackName, projectName: CONFIG_NAMESPACE, program: async () => defineEnvironment() },
    {
      workDir: options.workDir,
      pulumiCommand: await pulumiCommand(),
      envVars: { PATH: enginePath(), ...options.envVars },
    },
  );
}
