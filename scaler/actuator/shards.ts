import { LocalWorkspace, type Workspace } from "@pulumi/pulumi/automation/index.js";
import { join } from "node:path";
import { fleetSpecSchema, type FleetSpec } from "../../infra/fleet.js";
import {
  causeSummary,
  FleetStack,
  FleetStackError,
  fleetWorkspaceOptions,
  type FleetStackSettings,
  type FleetUpdateReport,
  type ResourceStep,
  type ServerAddresses,
} from "./fleetStack.js";
import { ProgramHosts } from "./programHost.js";
import { migrateToShards } from "./shardMigration.js";

/**
 * Servers per shard. An `up` costs in proportion to the servers of the stacks it runs, so a change to one server costs
 * an `up` of at most this many. Fixed for good: a server's shard is a function of its name, and a server that moved to
 * another shard would be deleted by one stack and created by the other.
 */
export const SHARD_SIZE = 25;

/** Shard `up`s run at once; each is an engine, a language host and a provider process. */
const SHARD_PARALLEL = 3;

/** A full converging `up` (with refresh) of every shard this often, to find and undo drift. */
const CONVERGE_INTERVAL_MS = 3_600_000;

export interface ShardedFleetStackSettings extends FleetStackSettings {
  /** Servers per shard (SHARD_SIZE); tests use smaller shards to reach several with few servers. */
  shardSize?: number;
  /** Shard `up`s at once (3). */
  parallel?: number;
  /** How often `dueForUp()` asks for a full converging `up` of every shard (1 h). */
  convergeIntervalMs?: number;
}

/** What a sharded `up` did, with the stacks it ran. */
export interface ShardedUpdateReport extends FleetUpdateReport {
  addresses: ServerAddresses;
  stacks: string[];
  converged: boolean;
}

/**
 * The shard of a server: contiguous ranges of its name's number (`bbb-1`..`bbb-25` in shard 0), so that a scale-out
 * burst, whose names are consecutive, lands in one or two shards. A name without a number goes to shard 0.
 */
export function shardOf(name: string, shardSize: number): number {
  const number = /-(\d+)$/.exec(name)?.[1];
  return number === undefined ? 0 : Math.max(0, Math.floor((Number(number) - 1) / shardSize));
}

/** The stack of one shard of a fleet whose single stack would be `base`. */
export function shardStackName(base: string, shard: number): string {
  return `${base}-${shard}`;
}

/** A spec's servers in a shard, sorted by name so that equal shards compare equal whatever the fleet's order. */
function shardSpec(spec: FleetSpec, shard: number, shardSize: number): FleetSpec {
  const servers = spec.servers.filter((server) => shardOf(server.name, shardSize) === shard);
  return { ...spec, servers: servers.sort((a, b) => compareNames(a.name, b.name)) };
}

function compareNames(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

/**
 * Shards whose `up` failed, each with its own cause; every other shard of the update was applied (and its next `up`
 * runs only if its servers change again), while the failed ones run again on the next `up`.
 */
export class ShardUpError extends FleetStackError {
  constructor(
    readonly failures: FleetStackError[],
    /** The stacks of the same update that were applied. */
    readonly applied: string[],
  ) {
    super(
      failures.map((failure) => failure.stackName).join(", "),
      "up",
      new Error(
        failures.map((failure) => `${failure.stackName}: ${causeSummary(failure.cause)}`).join("\n") +
          (applied.length > 0 ? `\n(applied: ${applied.join(", ")})` : ""),
      ),
    );
    this.name = "ShardUpError";
  }
}

/** A server declared in one shard while another shard's stack holds it: the update would delete and recreate it. */
export class ShardMoveError extends Error {
  constructor(
    readonly server: string,
    readonly from: string,
    readonly to: string,
  ) {
    super(`server ${server} is held by stack ${from} but would be declared by ${to}: refusing to replace it`);
    this.name = "ShardMoveError";
  }
}

interface Shard {
  stack: FleetStack;
  /** JSON of the shard's spec as its last `up` applied it; undefined when unknown (a failed or recovered `up`). */
  applied: string | undefined;
  spec: FleetSpec | undefined;
  addresses: ServerAddresses;
}

/**
 * A fleet's servers in several stacks, `<base>-<shard>` (`<env>-fleet-0`, `<env>-fleet-1`, ...; the BBB fleet's only: a Jitsi group keeps its one stack): an `up` runs only
 * the shards whose servers changed, several at once, so a change costs what it changes. The fleet lease covers every
 * shard (one actuator per fleet); each shard is a FleetStack with its own engine lock, pending operations and outputs.
 */
export class ShardedFleetStack {
  /** What each shard stack holds, as last read or applied. */
  private readonly shards = new Map<number, Shard>();
  /** Shard stacks opened, kept across reloads. */
  private readonly stacks = new Map<number, FleetStack>();
  private loaded = false;
  private lastConverged = performance.now();
  /** Whether the update `stacksToUpdate` planned converges: the `up` that follows runs what it announced. */
  private plannedConverge: boolean | undefined;

  private constructor(
    /** The stack name a single-stack fleet had: `<env>-fleet`. */
    readonly name: string,
    private readonly settings: ShardedFleetStackSettings,
    /** The fleet project's workspace, which lists and removes its stacks. */
    private readonly workspace: Workspace,
    /** Where the shards' programs run: a process each (scaler/actuator/programHost.ts). */
    private readonly hosts: ProgramHosts,
  ) {}

  private get shardSize(): number {
    return this.settings.shardSize ?? SHARD_SIZE;
  }

  /** The fleet's shard stacks; nothing is read until `load()` (or the first call that needs the shards). */
  static async open(settings: ShardedFleetStackSettings): Promise<ShardedFleetStack> {
    const workspace = await LocalWorkspace.create(await fleetWorkspaceOptions(settings));
    const hosts = new ProgramHosts(settings.parallel ?? SHARD_PARALLEL);
    return new ShardedFleetStack(settings.stackName ?? `${settings.env}-fleet`, settings, workspace, hosts);
  }

  /** Stops the shards' program hosts (they also exit with this process). */
  close(): void {
    this.hosts.close();
  }

  /** The settings of a shard's stack, in a project directory of its own. */
  private shardSettings(shard: number): FleetStackSettings {
    const stackName = shardStackName(this.name, shard);
    // Its own directory: shards' engines run at once, and each workspace writes its project file on creation.
    return { ...this.settings, stackName, workDir: join(this.settings.workDir, stackName) };
  }

  /**
   * Reads every shard stack the backend holds and what each last applied; another holder of the lease may have changed
   * them, so the actuator calls it each time it takes the lease. A fleet still in its single stack `<base>` is moved
   * into shards first (scaler/actuator/shardMigration.ts). Only while holding the fleet lease.
   */
  async load(): Promise<void> {
    const names = (await this.workspace.listStacks()).map((summary) => summary.name.slice(summary.name.lastIndexOf("/") + 1));
    const pattern = new RegExp(`^${this.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-(\\d+)$`);
    let shards = names.flatMap((name) => {
      const match = pattern.exec(name);
      return match === null ? [] : [Number(match[1])];
    });
    this.shards.clear();
    // A shard stack another holder of the lease removed meanwhile is opened afresh if it is needed again.
    for (const shard of [...this.stacks.keys()].filter((known) => !shards.includes(known))) {
      this.stacks.delete(shard);
      this.hosts.forget(shardStackName(this.name, shard));
    }
    if (names.includes(this.name)) {
      shards = await migrateToShards({
        legacy: await FleetStack.open({ ...this.settings, stackName: this.name }),
        shardOf: (name) => shardOf(name, this.shardSize),
        openShard: async (shard) => (await this.shard(shard)).stack,
        removeLegacy: () => this.workspace.removeStack(this.name, { force: true }),
      });
    }
    await this.each(shards, async (shard) => {
      const state = await this.shard(shard);
      const { spec, addresses } = await state.stack.outputs();
      state.spec = spec;
      state.applied = spec === undefined ? undefined : JSON.stringify(shardSpec(spec, shard, this.shardSize));
      state.addresses = addresses;
    });
    this.loaded = true;
  }

  private async ensureLoaded(): Promise<void> {
    if (!this.loaded) await this.load();
  }

  /** A shard's stack, opened (and created in the backend) on first use, in a project directory of its own. */
  private async shard(shard: number): Promise<Shard> {
    const known = this.shards.get(shard);
    if (known !== undefined) return known;
    const stack = this.stacks.get(shard) ?? (await FleetStack.open(this.shardSettings(shard)));
    this.stacks.set(shard, stack);
    const created = this.shards.get(shard) ?? { stack, applied: undefined, spec: undefined, addresses: {} };
    this.shards.set(shard, created);
    return created;
  }

  /** Runs `task` for each shard, at most `parallel` at once; every task runs, then the first failure is thrown. */
  private async each(shards: number[], task: (shard: number) => Promise<void>): Promise<void> {
    const failures = await this.eachSettled(shards, task);
    if (failures.length > 0) throw failures[0]!.error;
  }

  /** Runs `task` for each shard, at most `parallel` at once, and returns the failures: one shard's stops no other. */
  private async eachSettled(shards: number[], task: (shard: number) => Promise<void>): Promise<{ shard: number; error: unknown }[]> {
    const queue = [...shards];
    const failures: { shard: number; error: unknown }[] = [];
    const worker = async () => {
      for (let shard = queue.shift(); shard !== undefined; shard = queue.shift()) {
        try {
          await task(shard);
        } catch (error) {
          failures.push({ shard, error });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(queue.length, this.settings.parallel ?? SHARD_PARALLEL) }, worker));
    return failures;
  }

  /** The shards a spec declares servers in, and those whose stacks hold servers now. */
  private shardsOf(spec: FleetSpec): number[] {
    const shards = new Set(this.shards.keys());
    for (const server of spec.servers) shards.add(shardOf(server.name, this.shardSize));
    return [...shards].sort((a, b) => a - b);
  }

  /** Whether a full converging `up` is due, or a shard's last `up` failed or was recovered: the next `up` must run. */
  dueForUp(): boolean {
    return this.convergeDue() || [...this.shards.values()].some((shard) => shard.applied === undefined);
  }

  /** The stacks the next `up(spec)` runs: the shards whose servers changed (every shard when a converge is due). */
  stacksToUpdate(spec: FleetSpec): string[] {
    this.plannedConverge = this.convergeDue();
    return this.changedShards(fleetSpecSchema.parse(spec), this.plannedConverge).map((shard) => shardStackName(this.name, shard));
  }

  private convergeDue(): boolean {
    return performance.now() - this.lastConverged >= (this.settings.convergeIntervalMs ?? CONVERGE_INTERVAL_MS);
  }

  private changedShards(spec: FleetSpec, converge: boolean): number[] {
    return this.shardsOf(spec).filter(
      (shard) => converge || this.shards.get(shard)?.applied !== JSON.stringify(shardSpec(spec, shard, this.shardSize)),
    );
  }

  /**
   * Brings the cloud to `spec`, running only the shards whose servers changed, `parallel` at a time. With `converge`
   * (or when the interval is due) every shard runs, refreshing from the cloud first: drift is found and undone.
   */
  async up(
    spec: FleetSpec,
    onStep?: (step: ResourceStep) => void,
    options: { parallel?: number; converge?: boolean; signal?: AbortSignal } = {},
  ): Promise<ShardedUpdateReport> {
    await this.ensureLoaded();
    const parsed = fleetSpecSchema.parse(spec);
    const converge = options.converge ?? this.plannedConverge ?? this.convergeDue();
    this.plannedConverge = undefined;
    const changed = this.changedShards(parsed, converge);
    this.refuseMoves(parsed);
    const started = performance.now();
    const reports: (FleetUpdateReport & { addresses: ServerAddresses })[] = [];
    const emptied: number[] = [];
    const failures = await this.eachSettled(changed, async (shard) => {
      const state = await this.shard(shard);
      const part = shardSpec(parsed, shard, this.shardSize);
      state.applied = undefined;
      const report = await this.hosts.up(this.shardSettings(shard), part, onStep, {
        ...(options.parallel === undefined ? {} : { parallel: options.parallel }),
        // A lost lease cancels every shard's engine (the actuator's signal).
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        refresh: converge,
      });
      reports.push(report);
      Object.assign(state, { applied: JSON.stringify(part), spec: part, addresses: report.addresses });
      if (part.servers.length === 0) emptied.push(shard);
    });
    // A shard left without servers holds only its provider: its stack goes, so converges do not keep running it.
    await this.each(emptied, async (shard) => {
      await this.removeEmpty(shard);
    });
    if (failures.length > 0) {
      const failed = new Set(failures.map((failure) => failure.shard));
      throw new ShardUpError(
        failures.map(({ shard, error }) =>
          error instanceof FleetStackError ? error : new FleetStackError(shardStackName(this.name, shard), "up", error),
        ),
        changed.filter((shard) => !failed.has(shard)).map((shard) => shardStackName(this.name, shard)),
      );
    }
    if (converge) this.lastConverged = performance.now();
    const summary: Record<string, number> = {};
    for (const report of reports) for (const [op, count] of Object.entries(report.summary)) summary[op] = (summary[op] ?? 0) + count;
    return {
      steps: reports.flatMap((report) => report.steps),
      durationMs: performance.now() - started,
      summary,
      addresses: this.addresses(),
      stacks: changed.map((shard) => shardStackName(this.name, shard)),
      converged: converge,
    };
  }

  private async removeEmpty(shard: number): Promise<void> {
    const state = this.shards.get(shard);
    if (state === undefined || state.spec?.servers.length !== 0) return;
    const name = shardStackName(this.name, shard);
    try {
      // Through the shard's own workspace, which also removes the stack's settings file from its directory.
      await state.stack.workspace.removeStack(name, { force: true });
    } catch (error) {
      throw new FleetStackError(name, "removal", error);
    }
    this.shards.delete(shard);
    this.stacks.delete(shard);
    this.hosts.forget(name);
  }

  /** A server must stay in the stack that holds it; declaring it in another would replace a running machine. */
  private refuseMoves(spec: FleetSpec): void {
    const holders = new Map<string, number>();
    for (const [shard, state] of this.shards) for (const server of state.spec?.servers ?? []) holders.set(server.name, shard);
    for (const server of spec.servers) {
      const holder = holders.get(server.name);
      const target = shardOf(server.name, this.shardSize);
      if (holder !== undefined && holder !== target)
        throw new ShardMoveError(server.name, shardStackName(this.name, holder), shardStackName(this.name, target));
    }
  }

  /** What `up(spec)` would change, summed over every shard, without changing anything. */
  async preview(spec: FleetSpec): Promise<Record<string, number>> {
    await this.ensureLoaded();
    const parsed = fleetSpecSchema.parse(spec);
    const summary: Record<string, number> = {};
    await this.each(this.shardsOf(parsed), async (shard) => {
      await this.shard(shard);
      const changes = await this.hosts.preview(this.shardSettings(shard), shardSpec(parsed, shard, this.shardSize));
      for (const [op, count] of Object.entries(changes)) summary[op] = (summary[op] ?? 0) + count;
    });
    return summary;
  }

  /** Reads the cloud's reality into every shard's state. */
  async refresh(): Promise<Record<string, number>> {
    await this.ensureLoaded();
    const summary: Record<string, number> = {};
    await this.each([...this.shards.keys()], async (shard) => {
      for (const [op, count] of Object.entries(await this.shards.get(shard)!.stack.refresh())) summary[op] = (summary[op] ?? 0) + count;
    });
    return summary;
  }

  /** The spec the shards last applied, as one fleet; undefined when no shard has applied one. */
  async appliedSpec(): Promise<FleetSpec | undefined> {
    await this.ensureLoaded();
    const specs = [...this.shards.values()].flatMap((shard) => (shard.spec === undefined ? [] : [shard.spec]));
    if (specs.length === 0) return undefined;
    const servers = specs.flatMap((spec) => spec.servers).sort((a, b) => compareNames(a.name, b.name));
    return { ...specs[0]!, servers };
  }

  /** Each server's cloud id and public address, from the shards' outputs. */
  async serverAddresses(): Promise<ServerAddresses> {
    await this.ensureLoaded();
    return this.addresses();
  }

  private addresses(): ServerAddresses {
    return Object.assign({}, ...[...this.shards.values()].map((shard) => shard.addresses)) as ServerAddresses;
  }

  /**
   * After a scaler died during an `up`: recovers the stacks it was running (every shard when they are not known),
   * each as FleetStack.recover does. Their next `up` runs whatever their spec is. Only while holding the fleet lease.
   */
  async recover(stacks?: readonly string[]): Promise<{ pendingOperations: number; refresh: Record<string, number>; stacks: string[] }> {
    await this.ensureLoaded();
    const shards = [...this.shards.keys()].filter((shard) => stacks === undefined || stacks.includes(shardStackName(this.name, shard)));
    let pendingOperations = 0;
    const refresh: Record<string, number> = {};
    await this.each(shards, async (shard) => {
      const state = this.shards.get(shard)!;
      const result = await state.stack.recover();
      state.applied = undefined;
      pendingOperations += result.pendingOperations;
      for (const [op, count] of Object.entries(result.refresh)) refresh[op] = (refresh[op] ?? 0) + count;
    });
    return { pendingOperations, refresh, stacks: shards.map((shard) => shardStackName(this.name, shard)) };
  }
}
