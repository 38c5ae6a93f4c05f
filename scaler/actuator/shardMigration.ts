import { execFile } from "node:child_process";
import { copyFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { FleetSpec } from "../../infra/fleet.js";
import { FleetStackError, type FleetStack } from "./fleetStack.js";

const run = promisify(execFile);

interface StateResource {
  urn: string;
  type: string;
  parent?: string;
}

/** What a fleet's move from its single stack into shards needs (scaler/actuator/shards.ts). */
export interface ShardMigration {
  /** The fleet's single stack, `<env>-fleet`, as fleets had before shards. */
  legacy: FleetStack;
  shardOf: (serverName: string) => number;
  openShard: (shard: number) => Promise<FleetStack>;
  /** Removes the single stack once it holds no server. */
  removeLegacy: () => Promise<void>;
}

/** The server a resource of the fleet program belongs to: its machine is named after it, its records `<name>-<kind>`. */
function serverOf(resourceName: string, servers: readonly string[]): string | undefined {
  return servers
    .filter(
      (server) => resourceName === server || (resourceName.startsWith(`${server}-`) && !/^\d/.test(resourceName.slice(server.length + 1))),
    )
    .sort((a, b) => b.length - a.length)[0];
}

/**
 * Moves a fleet's servers from its single stack into their shards' stacks with `pulumi state move`: no machine is
 * touched, each shard's first `up` then finds its servers unchanged, and the single stack is removed. Resumable: a
 * crash in the middle leaves the servers not yet moved in the single stack, whose outputs still hold the whole spec.
 * Runs under the fleet lease (the scaler opens its stacks only after taking it). Returns the shards it filled.
 */
export async function migrateToShards(migration: ShardMigration): Promise<number[]> {
  const { legacy } = migration;
  // An update the single stack's last holder left in flight: its lock and pending creates go first.
  await legacy.recover();
  const spec = await legacy.appliedSpec();
  const names = spec?.servers.map((server) => server.name) ?? [];
  const resources = ((await legacy.workspace.exportStack(legacy.name)).deployment as { resources?: StateResource[] }).resources ?? [];
  const shardOfUrn = new Map<string, number>();
  for (const resource of resources) {
    const parentShard = resource.parent === undefined ? undefined : shardOfUrn.get(resource.parent);
    const server = serverOf(resource.urn.slice(resource.urn.lastIndexOf("::") + 2), names);
    const shard = parentShard ?? (server === undefined ? undefined : migration.shardOf(server));
    if (shard !== undefined && resource.type !== "pulumi:pulumi:Stack" && !resource.type.startsWith("pulumi:providers:"))
      shardOfUrn.set(resource.urn, shard);
  }
  const shards = [...new Set(names.map(migration.shardOf))].sort((a, b) => a - b);
  for (const shard of shards) {
    const target = await migration.openShard(shard);
    const urns = [...shardOfUrn].filter(([, owner]) => owner === shard).map(([urn]) => urn);
    if (urns.length > 0) await stateMove(legacy, target, urns);
    // Its first `up` changes no machine and writes the outputs (its part of the spec) the scaler reads on start.
    if (spec !== undefined) await target.up(partOf(spec, shard, migration.shardOf));
  }
  await migration.removeLegacy();
  return shards;
}

function partOf(spec: FleetSpec, shard: number, shardOf: (name: string) => number): FleetSpec {
  return { ...spec, servers: spec.servers.filter((server) => shardOf(server.name) === shard) };
}

/**
 * `pulumi state move` from the single stack to a shard, run in the single stack's project directory with the
 * workspace's environment (the passphrase never on the command line); the shard's stack settings are copied there
 * so the CLI encrypts the moved state with the shard's own secrets salt.
 */
async function stateMove(source: FleetStack, target: FleetStack, urns: string[]): Promise<void> {
  const workspace = source.workspace;
  const settingsFile = `Pulumi.${target.name}.yaml`;
  await copyFile(join(target.workspace.workDir, settingsFile), join(workspace.workDir, settingsFile));
  try {
    await run(
      workspace.pulumiCommand.command,
      ["state", "move", "--source", source.name, "--dest", target.name, "--yes", "--non-interactive", ...urns],
      { cwd: workspace.workDir, env: { ...process.env, ...workspace.envVars }, maxBuffer: 64 * 1024 * 1024 },
    );
  } catch (error) {
    throw new FleetStackError(source.name, `state move to ${target.name}`, error);
  }
}
