import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { enginePath } from "../../infra/toolchain.js";

/**
 * An isolated Pulumi environment for one test file: its own `file://` backend, PULUMI_HOME and passphrase,
 * update checks off. `dir` is the program's working directory.
 */
export interface PulumiSandbox {
  readonly dir: string;
  readonly backendUrl: string;
  /** Environment variables for `LocalWorkspace` (`envVars`) or a spawned `pulumi`. */
  readonly env: Record<string, string>;
  cleanup(): Promise<void>;
}

export async function createPulumiSandbox(): Promise<PulumiSandbox> {
  const dir = await mkdtemp(join(tmpdir(), "confscale-pulumi-"));
  const backendUrl = pathToFileURL(join(dir, "state")).href;
  await mkdir(join(dir, "state"), { recursive: true });
  await mkdir(join(dir, "home"), { recursive: true });
  // Dynamic providers run from the program's directory and load ./node_modules/@pulumi/pulumi, as in a real project.
  await symlink(fileURLToPath(new URL("../../node_modules", import.meta.url)), join(dir, "node_modules"), "dir");
  const env: Record<string, string> = {
    PULUMI_BACKEND_URL: backendUrl,
    PULUMI_HOME: join(dir, "home"),
    PULUMI_CONFIG_PASSPHRASE: "confscale-test-passphrase",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_SKIP_CONFIRMATIONS: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "false",
    PATH: enginePath(),
  };
  return {
    dir,
    backendUrl,
    env,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
