import type { Redis } from "ioredis";
import { CLOUD_CAPABILITIES } from "../../infra/clouds/index.js";
import type { ListedMachine, Placement } from "../../infra/clouds/types.js";
import type { ServerSize } from "../../infra/config.js";
import type { FleetServer, FleetSpec, FleetTemplate } from "../../infra/fleet.js";
import type { Logger } from "../log.js";
import { MalformedDecisionError, commandOf, type PolicyCommand } from "../policy/commands.js";
import type { Decision, PlacementChange } from "../policy/types.js";
import type { BbbClient } from "../signals/bbb.js";
import type { ScaleliteClient, ScaleliteServer } from "../signals/scalelite.js";
import { heldServersOf, membersOf, type FleetMember } from "../fleet/members.js";
import type { FleetUpdateReport } from "./fleetStack.js";
import type { ShardedFleetStack } from "./shards.js";
import { LeaseKeeper } from "./lease.js";
import type { SidecarDrains } from "../fleet/sidecars.js";
import { FleetLeaseLostError, type FleetLease, type FleetLock } from "./lock.js";
import type { OperatorAction } from "../fleet/operator.js";
import { FleetStateStore, setPhase, type FleetState, type ServerRecord } from "../fleet/state.js";
import { adopt, newFleet } from "./adopt.js";
import { operate, withdrawSidecarDrain } from "./operatorActions.js";
import { linkAdopted, register, scaleliteServers, setLoadMultipliers } from "./registration.js";
import { sanity, type SanityReport } from "./sanity.js";

export type { SanityReport } from "./sanity.js";

export interface ActuatorSettings {
  fleet: string;
  /** Prefix of new server names: `<prefix>-<n>`. */
  namePrefix: string;
  image: string;
  defaultSize: ServerSize;
  /** Servers the first reconcile of an empty fleet creates. */
  baseline: number;
  template: FleetTemplate;
  /** The BBB API base URL of a server, e.g. https://<name>.<domain>/bigbluebutton/api */
  bbbUrl: (server: { name: string; id: string; publicIp: string }) => string;
  /** A server's own BBB API secret (infra/workerCredentials.ts), which Scalelite is given for it. */
  bbbSecretOf: (serverName: string) => string;
  /** A server cordoned this long with meetings still on it has timed out its drain. */
  drainTimeoutMs: number;
  /** At a drain timeout: take the server back (meetings kept), or end its meetings; never a silent kill. */
  onDrainTimeout: "re-enable" | "end-meetings";
  /** A server whose BBB API has not answered this long after it was started is replaced. */
  buildTimeoutMs: number;
}

export interface ActuatorDeps {
  redis: Redis;
  keyPrefix: string;
  lock: FleetLock;
  fleetStack: ShardedFleetStack;
  scalelite: ScaleliteClient;
  /** A client of a server's BBB API, signing with that server's own secret. */
  bbb: (baseUrl: string, serverName: string) => BbbClient;
  /** Records an entry in the fleet's (and the server's) audit trail; its actor is the actuator unless named. */
  audit: (entry: { kind: string; message: string; details?: Record<string, unknown>; actor?: string }, server?: string) => Promise<void>;
  now: () => number;
  log: Logger;
  /** Who holds the lease, for the lock's value and the audit trail (host and pid). */
  owner: string;
  /** The machines of the fleet's placement with their labels, read from the cloud itself (for the sanity check). */
  inventory?: (placement: Placement) => Promise<ListedMachine[]>;
  /**
   * The servers' worker sidecars (scaler/fleet/sidecars.ts). A server whose sidecar checks in is sent the drain
   * command with its cordon and is stopped or destroyed only once its sidecar has confirmed its last meeting ended.
   */
  sidecars?: SidecarDrains;
}

/** A decision the actuator did not carry out this cycle, and why (the policy decides it again if it still holds). */
export interface HeldDecision {
  decision: Decision;
  reason: string;
}

/** A held decision as people read it: `stop bbb-2 held: 1 meeting on the server`. */
export function heldText({ decision, reason }: HeldDecision): string {
  return `${decision.kind}${decision.server === undefined ? "" : ` ${decision.server}`} held: ${reason}`;
}

/** What one cycle did, for the audit trail, the status page and tests. */
export interface CycleReport {
  applied: Decision[];
  held: HeldDecision[];
  update: FleetUpdateReport | null;
  registered: string[];
  replaced: string[];
  drainTimeouts: string[];
  /** Load multipliers set in Scalelite this cycle: a live resize's new share, or the policy's steering. */
  steered: { server: string; loadMultiplier: number }[];
  recovered: boolean;
}

export class ActuatorNotStartedError extends Error {
  constructor(fleet: string) {
    super(`the actuator of fleet ${fleet} holds no lease: call start() first`);
    this.name = "ActuatorNotStartedError";
  }
}

/**
 * Turns decisions into servers: one `up` of the fleet stack per cycle under the fleet lease, with drain before every
 * stop, destroy and shrink (Scalelite cordon, then zero meetings in BBB `getMeetings`, and for a stop or destroy of a
 * server whose sidecar checks in, the sidecar's own report that its last meeting ended), registration after every
 * create and start (`addServer` → BBB answers → `enable`), and recovery of an update a crash interrupted.
 */
export class FleetActuator {
  private readonly leases: LeaseKeeper;
  private stopped = false;
  /** Aborts a standby's wait for the lease when the actuator is stopped. */
  private stopping = new AbortController();
  private state: FleetState | undefined;
  private addresses: Record<string, { id: string; publicIp: string }> = {};
  /** What the fleet stack last applied, kept in memory so a period without changes runs no engine command. */
  private applied: FleetSpec | undefined;
  private readonly states: FleetStateStore;

  constructor(
    private readonly settings: ActuatorSettings,
    private readonly deps: ActuatorDeps,
  ) {
    this.states = new FleetStateStore(deps.redis, deps.keyPrefix);
    this.leases = new LeaseKeeper(deps.lock, settings.fleet, deps.owner, deps.log);
  }

  /**
   * Takes the fleet lease and loads the fleet's state: from Redis, else from the stack's outputs (Redis was lost),
   * else a new fleet at its baseline. An update left in flight by a dead holder is recovered first.
   */
  async start(): Promise<{ recovered: boolean }> {
    this.stopped = false;
    if (this.stopping.signal.aborted) this.stopping = new AbortController();
    // A standby: as long as another scaler holds the lease, wait; a dead holder's lease expires within its TTL.
    const lease = await this.leases.acquireWhenFree(Infinity, this.stopping.signal);
    return this.load(lease);
  }

  /** Reads the fleet as the lease's previous holder left it, recovering an update it left in flight. */
  private async load(lease: FleetLease): Promise<{ recovered: boolean }> {
    const { fleet } = this.settings;
    // The shard stacks as the lease's previous holder left them (a single-stack fleet is moved into shards here).
    await this.deps.fleetStack.load();
    let state = await this.states.load(fleet);
    let recovered = false;
    if (state?.updateInFlight != null && state.updateInFlight.token !== lease.token) {
      const result = await this.deps.fleetStack.recover(state.updateInFlight.stacks);
      await this.deps.audit({
        kind: "recovered",
        message: "an update interrupted by a crash was recovered: stale lock removed, state refreshed",
        details: { ...result, interruptedToken: state.updateInFlight.token },
      });
      this.deps.log.warn({ event: "fleet.recovered", fleet, ...result }, "recovered an interrupted update");
      state = { ...state, updateInFlight: null };
      recovered = true;
    }
    this.applied = await this.deps.fleetStack.appliedSpec();
    if (state === undefined)
      state = this.applied === undefined ? newFleet(this.settings, this.deps.now()) : adopt(this.settings, this.applied, this.deps.now());
    this.state = state;
    this.addresses = await this.deps.fleetStack.serverAddresses();
    await this.save();
    return { recovered };
  }

  /** False until `start()` has taken the lease and loaded the fleet; a lease lost for a while does not unload it. */
  get started(): boolean {
    return this.state !== undefined && !this.stopped;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort(new Error(`fleet ${this.settings.fleet}: actuator stopped`));
    await this.leases.release();
  }

  /** The token of the lease held now: the fence of the fleet's other writers (the decision loop's history). */
  get leaseToken(): number | undefined {
    return this.leases.current?.token;
  }

  /** Holds the lease for the period about to begin (see holdLease); the decision loop's writes are fenced by it. */
  async hold(): Promise<void> {
    await this.holdLease();
  }

  /**
   * The lease for this period: renewed, or taken again after it was lost, in which case the fleet is read again
   * from Redis (another holder may have changed it meanwhile). Another holder's lease makes this throw.
   */
  private async holdLease(): Promise<FleetLease> {
    if (this.stopped || this.state === undefined) throw new ActuatorNotStartedError(this.settings.fleet);
    const { lease, reacquired } = await this.leases.hold();
    if (reacquired) await this.load(lease);
    return lease;
  }

  /** The fleet as the snapshot needs it (scaler/fleet/members.ts). */
  members(): FleetMember[] {
    return membersOf(this.requireState(), this.addresses);
  }

  /** The BBB API of a server the fleet stack has an address for. */
  bbbUrlOf(name: string): string | undefined {
    const address = this.addresses[name];
    return address === undefined ? undefined : this.settings.bbbUrl({ name, ...address });
  }

  /** Prometheus `http_sd` targets of the fleet's running workers. */
  scrapeTargets(): { name: string; id: string; publicIp: string }[] {
    const state = this.requireState();
    return state.desired.servers
      .filter((server) => server.power === "running" && this.addresses[server.name] !== undefined)
      .map((server) => ({ name: server.name, ...this.addresses[server.name]! }));
  }

  /** Servers an operator has taken out of the policy's hands. */
  heldServers(): string[] {
    return heldServersOf(this.requireState());
  }

  /**
   * An operator's action on one server, in Scalelite: cordon (no new meetings; running ones go on) and panic (its
   * meetings are ended) hold the server out of the policy's hands; enable gives it back, taking meetings again.
   */
  async operate(name: string, action: OperatorAction, actor: string): Promise<{ server: string; phase: string }> {
    await this.holdLease();
    return operate(this.settings.fleet, this.deps, this.requireState(), { name, action, actor }, () => this.save());
  }

  /** What an `up` of the present desired spec would change, without changing anything. */
  async preview(): Promise<Record<string, number>> {
    return this.deps.fleetStack.preview(this.requireState().desired);
  }

  currentState(): FleetState {
    return structuredClone(this.requireState());
  }

  /**
   * One cycle: apply the decisions, bring the cloud to the spec, register, drain, time out what is stuck, and set the
   * Scalelite load multipliers the policy steers placement with.
   */
  async cycle(decisions: readonly Decision[], placement: readonly PlacementChange[] = []): Promise<CycleReport> {
    const lease = await this.holdLease();
    const state = this.requireState();
    const report: CycleReport = {
      applied: [],
      held: [],
      update: null,
      registered: [],
      replaced: [],
      drainTimeouts: [],
      steered: [],
      recovered: false,
    };
    const scalelite = await scaleliteServers(this.deps);
    await linkAdopted(this.settings, this.deps, this.addresses, state, scalelite);
    const toDeregister: string[] = [];

    for (const decision of decisions) {
      if (decision.dryRun) continue;
      const command = commandOrRefusal(decision);
      const reason = typeof command === "string" ? command : await this.apply(command, state, scalelite, toDeregister);
      const held = reason === undefined ? undefined : { decision, reason };
      if (held === undefined) report.applied.push(decision);
      else report.held.push(held);
      await this.deps.audit(
        {
          kind: held === undefined ? `act.${decision.kind}` : "act.held",
          message: held === undefined ? decision.reason : heldText(held),
          details: { decision },
        },
        decision.server,
      );
    }
    await this.timeOutDrains(state, report);
    await this.replaceStuckBuilds(state, report, toDeregister);

    if (JSON.stringify(this.applied) !== JSON.stringify(state.desired) || this.deps.fleetStack.dueForUp()) {
      report.update = await this.update(lease, state);
    }
    for (const scaleliteId of toDeregister) {
      await this.deps.scalelite.deleteServer(scaleliteId);
    }
    const resized = new Set(
      report.applied.flatMap((decision) => (decision.kind === "resize" && decision.server !== undefined ? [decision.server] : [])),
    );
    await setLoadMultipliers(this.settings, this.deps, this.addresses, state, scalelite, report, resized, placement);
    await register(this.settings, this.deps, this.addresses, state, scalelite, report);
    await this.save();
    return report;
  }

  private async apply(
    command: PolicyCommand,
    state: FleetState,
    scalelite: Map<string, ScaleliteServer>,
    toDeregister: string[],
  ): Promise<string | undefined> {
    const now = this.deps.now();
    if (command.kind === "create") {
      const name = `${this.settings.namePrefix}-${state.nextIndex}`;
      state.nextIndex += 1;
      state.desired.servers.push({
        name,
        size: command.targetSize ?? this.settings.defaultSize,
        power: "running",
        image: this.settings.image,
      });
      state.servers[name] = {
        phase: "booting",
        since: now,
        scaleliteId: null,
        bootedAt: null,
        resizedAt: null,
        ...(command.warm === true ? { warm: true } : {}),
      };
      return undefined;
    }
    const server = state.desired.servers.find((candidate) => candidate.name === command.server);
    const record = server === undefined ? undefined : state.servers[server.name];
    if (server === undefined || record === undefined) return `no server ${command.server} in fleet ${this.settings.fleet}`;
    // Held since the snapshot the decision was made from (an operator's cordon, or adopted cordoned): not the policy's.
    if (record.phase === "held") return "held for an operator: out of the policy's hands until an operator enables it";
    const registration = record.scaleliteId === null ? undefined : scalelite.get(record.scaleliteId);

    switch (command.kind) {
      case "start":
        if (command.targetSize !== undefined) server.size = command.targetSize;
        server.power = "running";
        setPhase(record, "booting", now);
        delete record.adopted;
        return undefined;
      case "drain":
        await this.beginDrain(server.name, record, registration?.id, now);
        return undefined;
      case "enable": {
        if (registration !== undefined) await this.deps.scalelite.setState(registration.id, "enable");
        const wasDraining = record.phase === "draining";
        setPhase(record, "active", now);
        if (wasDraining) await withdrawSidecarDrain(this.settings.fleet, this.deps, server.name);
        return undefined;
      }
      case "resize": {
        const target = command.targetSize;
        const grows = target.cores >= server.size.cores && target.ramGb >= server.size.ramGb;
        if (!grows || !CLOUD_CAPABILITIES[this.settings.template.placement.cloud].liveResize) {
          // A shrink (or a resize that reboots) would cut meetings: only an empty server goes, cordoned first.
          const busy = await this.meetingsOn(server);
          if (busy !== 0) return busy === undefined ? "BBB getMeetings did not answer" : meetingsText(busy);
          if (registration !== undefined) await this.deps.scalelite.setState(registration.id, "cordon");
          setPhase(record, "resizing", now);
        }
        server.size = target;
        record.resizedAt = now;
        return undefined;
      }
      case "stop":
      case "destroy": {
        if (record.adopted === true && record.phase === "booting" && registration !== undefined) {
          // It may be serving: drained first, as the policy drains any serving server, and the stop held until then.
          delete record.adopted;
          await this.beginDrain(server.name, record, registration.id, now);
          return "adopted after Redis lost the fleet's state, it may be serving: cordoned and draining first";
        }
        // The meeting race: Scalelite may have placed a meeting since the policy looked. BBB has the last word.
        const busy = await this.meetingsOn(server);
        // A server not enabled in Scalelite since it was created or started (a launch called off) has had no meeting:
        // a BBB that does not answer yet is still installing, and its sidecar has nothing to drain (a drain command
        // would stay on it, and drain it, if it went on to serve). One adopted but in no Scalelite registration still
        // waits for its BBB and its sidecar.
        const neverEnabled = record.phase === "booting" && record.adopted !== true;
        if (busy === undefined && !neverEnabled) return "BBB getMeetings did not answer";
        if (busy !== undefined && busy !== 0) return meetingsText(busy);
        const sidecar = neverEnabled ? undefined : await this.sidecarNotDrained(server.name);
        if (sidecar !== undefined) return sidecar;
        if (command.kind === "stop") {
          // Its drain is over: a command left in the store would drain the worker again the day it is started.
          await withdrawSidecarDrain(this.settings.fleet, this.deps, server.name);
          server.power = "stopped";
          setPhase(record, "stopped", now);
          record.bootedAt = null;
        } else {
          state.desired.servers = state.desired.servers.filter((candidate) => candidate.name !== server.name);
          delete state.servers[server.name];
          if (record.scaleliteId !== null && registration !== undefined) toDeregister.push(record.scaleliteId);
        }
        return undefined;
      }
    }
  }

  /** Meetings on a server by its own BBB API; undefined when it does not answer (never read as zero). */
  private async meetingsOn(server: FleetServer): Promise<number | undefined> {
    const address = this.addresses[server.name];
    if (address === undefined || server.power === "stopped") return 0;
    try {
      return (await this.deps.bbb(this.settings.bbbUrl({ name: server.name, ...address }), server.name).getMeetings()).meetings;
    } catch {
      return undefined;
    }
  }

  /** A drain: out of Scalelite's placement, its sidecar told; it is stopped once its last meeting has ended. */
  private async beginDrain(name: string, record: ServerRecord, scaleliteId: string | undefined, now: number): Promise<void> {
    if (scaleliteId !== undefined) await this.deps.scalelite.setState(scaleliteId, "cordon");
    setPhase(record, "draining", now);
    await this.sidecarNotDrained(name);
  }

  /**
   * Why a server's sidecar keeps it from going, or undefined when nothing does (no sidecar checks in for it, or it has
   * confirmed its drain ended). A sidecar not yet told to drain is told now, whichever decision got here first.
   */
  private async sidecarNotDrained(name: string): Promise<string | undefined> {
    const sidecars = this.deps.sidecars;
    if (sidecars === undefined) return undefined;
    let sidecar;
    try {
      sidecar = await sidecars.of(name);
      if (sidecar === undefined || sidecar.drained) return undefined;
      // The store records the request (`shutdown.requested`) and its delivery in the server's audit trail.
      if (!sidecar.drainRequested) await sidecars.requestDrain(sidecar.instanceId);
    } catch (error) {
      // The store is the scaler's own Redis: unread, the sidecar is not known to be done, so the server stays.
      this.deps.log.warn(
        { event: "fleet.sidecar_unreadable", fleet: this.settings.fleet, server: name, err: error },
        "sidecar state unread",
      );
      return "its sidecar's drain state could not be read";
    }
    return "its sidecar has not yet reported its last meeting ended";
  }

  private async timeOutDrains(state: FleetState, report: CycleReport): Promise<void> {
    const now = this.deps.now();
    for (const [name, record] of Object.entries(state.servers)) {
      if (record.phase !== "draining" || now - record.since < this.settings.drainTimeoutMs || record.scaleliteId === null) continue;
      if (this.settings.onDrainTimeout === "re-enable") {
        await this.deps.scalelite.setState(record.scaleliteId, "enable");
        setPhase(record, "active", now);
        await withdrawSidecarDrain(this.settings.fleet, this.deps, name);
        await this.deps.audit(
          {
            kind: "drain.timeout",
            message: "drain timed out with meetings still running: server taken back, meetings kept",
            details: { drainMs: now - record.since },
          },
          name,
        );
      } else {
        await this.deps.scalelite.panicServer(record.scaleliteId);
        await this.deps.audit(
          {
            kind: "drain.timeout",
            message: "drain timed out: meetings ended by the policy's onDrainTimeout=end-meetings",
            details: { drainMs: now - record.since },
          },
          name,
        );
      }
      report.drainTimeouts.push(name);
    }
  }

  /** A server that never became healthy is replaced: destroyed and a new one created, as a decision with its reason. */
  private async replaceStuckBuilds(state: FleetState, report: CycleReport, toDeregister: string[]): Promise<void> {
    const now = this.deps.now();
    for (const server of [...state.desired.servers]) {
      const record = state.servers[server.name];
      if (
        record === undefined ||
        record.phase !== "booting" ||
        server.power !== "running" ||
        now - record.since < this.settings.buildTimeoutMs
      )
        continue;
      state.desired.servers = state.desired.servers.filter((candidate) => candidate.name !== server.name);
      delete state.servers[server.name];
      if (record.scaleliteId !== null) toDeregister.push(record.scaleliteId);
      const replacement = `${this.settings.namePrefix}-${state.nextIndex}`;
      state.nextIndex += 1;
      state.desired.servers.push({ ...server, name: replacement });
      // A replacement for the warm pool is stopped once installed, as the one it replaces would have been.
      state.servers[replacement] = {
        phase: "booting",
        since: now,
        scaleliteId: null,
        bootedAt: null,
        resizedAt: null,
        ...(record.warm === true ? { warm: true } : {}),
      };
      report.replaced.push(server.name);
      await this.deps.audit(
        {
          kind: "act.replace",
          message: `not healthy ${Math.round((now - record.since) / 1000)} s after start (build timeout ${this.settings.buildTimeoutMs / 1000} s): replaced by ${replacement}`,
          details: { replacement },
        },
        server.name,
      );
    }
  }

  private async update(lease: FleetLease, state: FleetState): Promise<FleetUpdateReport> {
    // The stacks it runs: a restart after a crash recovers those (scaler/actuator/shards.ts).
    state.updateInFlight = { token: lease.token, startedAt: this.deps.now(), stacks: this.deps.fleetStack.stacksToUpdate(state.desired) };
    await this.save();
    try {
      // A lease lost meanwhile stops the engine: another scaler may hold the fleet now.
      const report = await this.deps.fleetStack.up(
        state.desired,
        (step) => this.deps.log.info({ event: "fleet.step", fleet: this.settings.fleet, ...step }, `${step.op} ${step.name}`),
        { signal: this.leases.signal },
      );
      await this.deps.audit({
        kind: "fleet.up",
        message: `fleet stack updated in ${Math.round(report.durationMs)} ms`,
        details: { summary: report.summary, steps: report.steps },
      });
      this.applied = structuredClone(state.desired);
      this.addresses = await this.deps.fleetStack.serverAddresses();
      return report;
    } finally {
      state.updateInFlight = null;
    }
  }

  /**
   * Compares the fleet stack with the cloud and with Scalelite and records what disagrees. It never deletes: a
   * machine without this fleet's ownership labels is not ours, and one with them is for an operator to look at.
   */
  async sanity(): Promise<SanityReport> {
    return sanity(this.settings, this.deps, this.addresses, this.requireState());
  }

  private async save(): Promise<void> {
    await this.states.save(this.settings.fleet, this.requireLease().token, this.requireState());
  }

  /** The lease for a write; lost since the period began, the write is refused here rather than by the fence. */
  private requireLease(): FleetLease {
    const lease = this.leases.current;
    if (lease !== undefined) return lease;
    if (this.leases.lastToken === undefined) throw new ActuatorNotStartedError(this.settings.fleet);
    throw new FleetLeaseLostError(this.settings.fleet, this.leases.lastToken);
  }

  private requireState(): FleetState {
    if (this.state === undefined) throw new ActuatorNotStartedError(this.settings.fleet);
    return this.state;
  }
}

const meetingsText = (count: number) => `${count} meeting${count === 1 ? "" : "s"} on the server`;

/** The typed command of a decision, or why it cannot be carried out. */
function commandOrRefusal(decision: Decision): PolicyCommand | string {
  try {
    return commandOf(decision);
  } catch (error) {
    if (error instanceof MalformedDecisionError) return error.message;
    throw error;
  }
}
