import { PulumiCommand } from "@pulumi/pulumi/automation/index.js";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";

/** The CLI version the pinned @pulumi/pulumi SDK is built against (the SDK rejects older CLIs). */
export const PULUMI_CLI_VERSION = "3.248.0";

/**
 * Where `npm run setup` keeps a Pulumi CLI it built (or installed): `<root>/bin/pulumi`.
 * Outside the repository, so a fresh clone reuses it and nothing built is ever committed.
 */
export function pulumiCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.CONFSCALE_PULUMI_ROOT ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "confscale", "pulumi");
}

export class PulumiCliMissingError extends Error {
  constructor(cause: unknown) {
    super(`no usable Pulumi CLI (>= ${PULUMI_CLI_VERSION}) found in ${pulumiCacheRoot()}/bin or on PATH: run \`npm run setup\``, { cause });
    this.name = "PulumiCliMissingError";
  }
}

/** The CLI setup prepared, else the one on PATH (an official install). */
export async function pulumiCommand(): Promise<PulumiCommand> {
  const root = pulumiCacheRoot();
  try {
    return existsSync(join(root, "bin", "pulumi")) ? await PulumiCommand.get({ root }) : await PulumiCommand.get();
  } catch (error) {
    throw new PulumiCliMissingError(error);
  }
}

/**
 * PATH for the engine: the CLI's own directory first, so it finds the plugins shipped beside it
 * (`pulumi-resource-pulumi-nodejs` runs dynamic providers such as the IONOS adapter).
 */
export function enginePath(env: NodeJS.ProcessEnv = process.env): string {
  const bin = join(pulumiCacheRoot(env), "bin");
  return existsSync(bin) ? [bin, env.PATH ?? ""].join(delimiter) : (env.PATH ?? "");
}
