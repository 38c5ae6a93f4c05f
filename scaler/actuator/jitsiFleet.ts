import type { Redis } from "ioredis";
import { workerPolicySchema } from "../../infra/config.js";
import type { FleetTemplate } from "../../infra/fleet.js";
import type { JitsiGroupConfig } from "../../infra/jitsi.js";
import type { JitsiFleetStatus, JitsiGroupStore, JitsiInstance } from "../fleet/jitsiGroup.js";
import type { FleetView } from "../fleet/view.js";
import { ServerActionConflictError } from "../fleet/operator.js";
import { FleetStateStore, setPhase, type FleetState } from "../fleet/state.js";
import type { Logger } from "../log.js";
import {
  autoscale,
  figuresPerPeriod,
  jitsiSanity,
  metricOf,
  reconcile,
  type AutoscaleOutcome,
  type JitsiAction,
  type JitsiMember,
  type JitsiSanityFindings,
} from "../policy/jitsi.js";
import { adopt, newFleet } from "./adopt.js";
import type { FleetStack, FleetUpdateReport, ServerOutputs } from "./fleetStack.js";
import { LeaseKeeper } from "./lease.js";
import { ActuatorNotStartedError } from "./actuator.js";
import { FleetLeaseLostError, type FleetLease, type FleetLock } from "./lock.js";

export { jitsiFleetName } from "../../infra/jitsi.js";

/** A Jitsi group's stack: `<env>-jitsi-<group>`, holding the fleet `jitsi-<group>` (infra/jitsi.ts's jitsiFleetName). */
export function jitsiStackName(env: string, group: string): string {
  return `${env}-jitsi-${group}`;
}

export interface JitsiFleetSettings {
  group: JitsiGroupConfig;
  /** The fleet's template: placement, scaler URL, ... with `fleet` = jitsiFleetName and the Jitsi workload. */
  template: FleetTemplate;
  /** The machine image when the group names none. */
  defaultImage: string;
  /** Sanity reports a machine whose sidecar has not checked in this long after its launch. */
  checkInDeadlineMs: number;
  /** Where Prometheus scrapes a machine's node-exporter: the name its certificate carries, `<name>.<domain>:9100` by default. */
  scrapeAddress?: (server: { name: string; id: string; publicIp: string }) => { address: string; metricsPath?: string };
}

export interface JitsiFleetDeps {
  redis: Redis;
  keyPrefix: string;
  lock: FleetLock;
  fleetStack: FleetStack;
  store: JitsiGroupStore;
  now: () => number;
  log: Logger;
  owner: string;
}

/** What one period did, for the audit trail and tests. */
export interface JitsiPeriodReport {
  paused: boolean;
  /** The group's figure of the period just ended (average stress, or available recorders); undefined without reports. */
  figure?: number | undefined;
  autoscale: AutoscaleOutcome | null;
  desired: number;
  actions: JitsiAction[];
  update: FleetUpdateReport | null;
}

const ACTOR = "actuator";

/**
 * One Jitsi group as a fleet of the same fleet stack machinery as the BBB fleet (the Automation API under the fleet
 * lease, fenced state in Redis, audit): each period it reads the group's sidecar check-ins, lets the autoscaler move
 * the desired count (scaler/policy/jitsi.ts), and brings the fleet to it, scale-in through the sidecar's graceful
 * shutdown (the command rides a check-in reply; the machine is destroyed once the sidecar reports on
 * /sidecar/shutdown that it is done, or after the group's gracefulShutdownSeconds).
 */
export class JitsiFleet {
  readonly fleet: string;
  private readonly leases: LeaseKeeper;
  private readonly states: FleetStateStore;
  private state: FleetState | undefined;
  private applied: FleetState["desired"] | undefined;
  private addresses: Record<string, ServerOutputs> = {};
  /** Periods, previews and sanity checks take turns: an operator's call never runs beside the timer's period. */
  private turn: Promise<unknown> = Promise.resolve();
  private lastPeriod: JitsiFleetStatus["lastPeriod"] = null;
  private lastSanity: JitsiFleetStatus["sanity"] = null;
  private instances: readonly JitsiInstance[] = [];

  constructor(
    private readonly settings: JitsiFleetSettings,
    private readonly deps: JitsiFleetDeps,
  ) {
    this.fleet = settings.template.fleet;
    this.states = new FleetStateStore(deps.redis, deps.keyPrefix);
    this.leases = new LeaseKeeper(deps.lock, this.fleet, deps.owner, deps.log);
  }

  /** The group's settings. */
  get group(): JitsiGroupConfig {
    return this.settings.group;
  }

  /** The group's id in the store: the name its sidecars report. */
  get groupId(): string {
    return this.settings.group.name;
  }

  /**
   * Creates the group in the store from its config when it is not there yet, takes the lease and loads the fleet,
   * recovering an update a crashed holder left in flight as the BBB fleet's actuator does.
   */
  async start(): Promise<{ recovered: boolean }> {
    const { group } = this.settings;
    if ((await this.deps.store.getGroup(group.name)) === undefined) {
      const size = group.size;
      await this.deps.store.createGroup(
        group.name,
        {
          instanceType: group.type,
          desired: group.scaling.desiredCount,
          policy: workerPolicySchema.parse({
            min: group.scaling.minDesired,
            max: group.scaling.maxDesired,
            baseline: group.scaling.desiredCount,
            defaultSize: size,
            maxSize: size,
          }),
          allowScheduler: group.enableScheduler,
        },
        "settings",
      );
    }
    const lease = await this.leases.acquireWhenFree(2 * this.leases.ttlMs);
    return this.load(lease);
  }

  async stop(): Promise<void> {
    await this.leases.release();
  }

  /** Reads the fleet as the lease's previous holder left it; an `up` it left in flight is recovered first. */
  private async load(lease: FleetLease): Promise<{ recovered: boolean }> {
    let stored = await this.states.load(this.fleet);
    let recovered = false;
    if (stored?.updateInFlight != null && stored.updateInFlight.token !== lease.token) {
      // The same path as the BBB fleet (scaler/actuator/actuator.ts): stale engine lock cancelled, pending creates
      // dropped and the machines they left adopted by name and ownership labels, state refreshed.
      const result = await this.deps.fleetStack.recover();
      await this.audit("recovered", "an update interrupted by a crash was recovered: stale lock removed, state refreshed", {
        ...result,
        interruptedToken: stored.updateInFlight.token,
      });
      this.deps.log.warn({ event: "fleet.recovered", fleet: this.fleet, ...result }, "recovered an interrupted update");
      stored = { ...stored, updateInFlight: null };
      recovered = true;
    }
    this.applied = await this.deps.fleetStack.appliedSpec();
    const origin = {
      namePrefix: this.fleet,
      image: this.image,
      defaultSize: this.settings.group.size,
      baseline: 0,
      template: this.settings.template,
    };
    this.state = stored ?? (this.applied === undefined ? newFleet(origin, this.deps.now()) : adopt(origin, this.applied, this.deps.now()));
    this.addresses = await this.deps.fleetStack.serverAddresses();
    await this.publishSidecarKeys(this.addresses);
    await this.save();
    return { recovered };
  }

  /** Each worker's sidecar key, for the token check (scaler/api/asap.ts): a destroyed worker's key goes with it. */
  private async publishSidecarKeys(servers: Record<string, ServerOutputs>): Promise<void> {
    const keys = Object.values(servers).flatMap((server) => (server.sidecarKey === undefined ? [] : [server.sidecarKey]));
    await this.deps.store.publishSidecarKeys(this.fleet, keys);
  }

  private get image(): string {
    return this.settings.group.image ?? this.settings.defaultImage;
  }

  currentState(): FleetState {
    return structuredClone(this.requireState());
  }

  /** The machines and their cloud ids (what a sidecar reports as its instanceId). */
  machines(): { name: string; id: string | undefined; phase: string }[] {
    const state = this.requireState();
    return state.desired.servers.map((server) => ({
      name: server.name,
      id: this.addresses[server.name]?.id,
      phase: state.servers[server.name]?.phase ?? "booting",
    }));
  }

  /** One period: read, let the autoscaler speak, bring the fleet to the desired count. */
  period(): Promise<JitsiPeriodReport> {
    return this.exclusive(async () => {
      const report = await this.runPeriod();
      this.lastPeriod = {
        at: new Date(this.deps.now()).toISOString(),
        paused: report.paused,
        desired: report.desired,
        figure: report.figure ?? null,
        autoscale: report.autoscale === null ? null : { kind: report.autoscale.kind, reason: report.autoscale.reason },
        actions: report.actions.map((action) => ({
          kind: action.kind,
          server: "name" in action ? action.name : null,
          reason: action.reason,
        })),
        update: report.update === null ? null : { summary: report.update.summary, durationMs: report.update.durationMs },
      };
      return report;
    });
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.turn.then(work, work);
    this.turn = run.catch(() => undefined);
    return run;
  }

  private async runPeriod(): Promise<JitsiPeriodReport> {
    const { lease, reacquired } = await this.leases.hold();
    if (reacquired) await this.load(lease);
    const state = this.requireState();
    const { store, now: clock } = this.deps;
    const { group } = this.settings;
    const now = clock();
    const report: JitsiPeriodReport = { paused: false, autoscale: null, desired: 0, actions: [], update: null };

    const [stored, instances] = await Promise.all([store.requireGroup(group.name), store.listInstances(group.name)]);
    this.instances = instances;
    report.desired = stored.desired;
    if (await store.isPaused(group.name)) {
      report.paused = true;
      return report;
    }
    const members = this.members(state, instances, now);
    const inService = members.filter((member) => member.phase === "launched");
    const leaving = new Set(
      members.flatMap((member) => (member.phase === "shutting_down" && member.checkIn ? [member.checkIn.instanceId] : [])),
    );

    const { scaling } = group;
    const periodMs = scaling.scalePeriod * 1000;
    const periods = Math.max(scaling.scaleUpPeriodsCount, scaling.scaleDownPeriodsCount);
    const points = (await store.stressSeries(group.name, now - periods * periodMs))
      .filter((point) => !leaving.has(point.instanceId))
      .map((point) => ({ at: point.at, instanceId: point.instanceId, value: point.stress }));
    const metric = metricOf(group.type);
    const figures = figuresPerPeriod(points, { metric, now, periodMs, periods });
    report.figure = figures[0];
    report.autoscale = autoscale({
      metric,
      scaling,
      enableAutoScale: group.enableAutoScale,
      desired: stored.desired,
      count: inService.length,
      figures,
      graceUntil: stored.updatedAt + group.gracePeriodTTLSec * 1000,
      now,
    });
    if (report.autoscale.kind === "change") {
      const change = await store.setDesired(group.name, report.autoscale.desired, "autoscaler");
      report.desired = change.to;
      await this.audit(`autoscale.${report.autoscale.direction}`, report.autoscale.reason, {
        from: change.from,
        to: change.to,
        figures: report.autoscale.figures,
      });
    }

    report.actions = reconcile({ desired: report.desired, members, now, gracefulShutdownMs: group.gracefulShutdownSeconds * 1000 });
    for (const action of report.actions) await this.apply(action, state, now);
    if (JSON.stringify(this.applied) !== JSON.stringify(state.desired)) report.update = await this.update(state, instances);
    await this.save();
    return report;
  }

  /** The fleet's machines as the policy sees them, each with its sidecar's last check-in; a first check-in makes it active. */
  private members(state: FleetState, instances: readonly JitsiInstance[], now: number): JitsiMember[] {
    return state.desired.servers.map((server) => {
      const record = state.servers[server.name]!;
      const id = this.addresses[server.name]?.id;
      const instance = instances.find(
        (candidate) => candidate.state !== "provisioning" && (candidate.instanceId === id || candidate.instanceId === server.name),
      );
      if (instance !== undefined && record.phase === "booting") {
        delete record.adopted;
        setPhase(record, "active", now);
      }
      return {
        name: server.name,
        phase: record.phase === "draining" ? "shutting_down" : "launched",
        since: record.since,
        ...(instance === undefined
          ? {}
          : {
              checkIn: {
                instanceId: instance.instanceId,
                load: instance.stress,
                shuttingDown: instance.state === "shutting_down",
                shutdownRequested: instance.shutdownRequested,
                ...(instance.shutdownConfirmedAt === undefined ? {} : { shutdownConfirmedAt: instance.shutdownConfirmedAt }),
              },
            }),
      };
    });
  }

  private async apply(action: JitsiAction, state: FleetState, now: number): Promise<void> {
    switch (action.kind) {
      case "launch":
        for (let count = 0; count < action.count; count += 1) {
          const name = `${this.fleet}-${state.nextIndex}`;
          state.nextIndex += 1;
          state.desired.servers.push({ name, size: this.settings.group.size, power: "running", image: this.image });
          state.servers[name] = { phase: "booting", since: now, scaleliteId: null, bootedAt: now, resizedAt: null };
          await this.audit("act.launch", action.reason, { server: name });
        }
        return;
      case "shutdown":
        // Recorded as `shutdown.requested` in the instance's trail; its next check-in reply carries it.
        await this.deps.store.requestShutdown(this.groupId, [action.instanceId], ACTOR);
        setPhase(state.servers[action.name]!, "draining", now);
        await this.audit("act.shutdown", action.reason, { server: action.name }, action.instanceId);
        return;
      case "retire":
        setPhase(state.servers[action.name]!, "draining", now);
        await this.audit("act.retire", action.reason, { server: action.name }, this.addresses[action.name]?.id);
        return;
      case "destroy":
        state.desired.servers = state.desired.servers.filter((server) => server.name !== action.name);
        delete state.servers[action.name];
        await this.audit("act.destroy", action.reason, { server: action.name }, this.addresses[action.name]?.id);
        return;
    }
  }

  private async update(state: FleetState, instances: readonly JitsiInstance[]): Promise<FleetUpdateReport> {
    const lease = this.leases.current;
    if (lease === undefined) throw new FleetLeaseLostError(this.fleet, this.leases.lastToken ?? 0);
    state.updateInFlight = { token: lease.token, startedAt: this.deps.now() };
    await this.save();
    try {
      const report = await this.deps.fleetStack.up(state.desired);
      await this.audit("fleet.up", `fleet stack updated in ${Math.round(report.durationMs)} ms`, { summary: report.summary });
      this.applied = structuredClone(state.desired);
      const before = this.addresses;
      this.addresses = await this.deps.fleetStack.serverAddresses();
      await this.publishSidecarKeys(this.addresses);
      // A machine just created counts as provisioning until its sidecar first reports.
      for (const [name, address] of Object.entries(this.addresses)) {
        if (before[name] !== undefined || instances.some((instance) => instance.instanceId === address.id)) continue;
        await this.deps.store.registerProvisioning(this.groupId, address.id, { name, instanceType: this.settings.group.type }, ACTOR);
      }
      return report;
    } finally {
      state.updateInFlight = null;
    }
  }

  /** Sidecars of the group that are no machine of the fleet, and machines whose sidecar never checked in. */
  sanity(): Promise<JitsiSanityFindings> {
    return this.exclusive(async () => {
      const findings = await this.runSanity();
      this.lastSanity = { at: new Date(this.deps.now()).toISOString(), ...findings };
      return findings;
    });
  }

  /** What `up` of the fleet as it stands would change, without changing anything. */
  preview(): Promise<Record<string, number>> {
    return this.exclusive(() => this.deps.fleetStack.preview(this.requireState().desired));
  }

  /** The fleet as the HTTP surface shows it (`GET /fleets/<fleet>`). */
  status(): JitsiFleetStatus {
    const { group } = this.settings;
    const base = { fleet: this.fleet, group: group.name, component: group.type };
    if (this.state === undefined) return { ...base, starting: true, servers: [], lastPeriod: null, sanity: null };
    const state = this.state;
    return {
      ...base,
      starting: false,
      servers: state.desired.servers.map((server) => {
        const id = this.addresses[server.name]?.id ?? null;
        const instance = this.instances.find((candidate) => candidate.instanceId === id || candidate.instanceId === server.name);
        return {
          name: server.name,
          id,
          cores: server.size.cores,
          ramGb: server.size.ramGb,
          power: server.power,
          phase: state.servers[server.name]?.phase ?? "unknown",
          sidecar:
            instance === undefined
              ? null
              : {
                  state: instance.state,
                  stress: instance.stress,
                  shutdownRequested: instance.shutdownRequested,
                  shutdownConfirmedAt:
                    instance.shutdownConfirmedAt === undefined ? null : new Date(instance.shutdownConfirmedAt).toISOString(),
                },
        };
      }),
      lastPeriod: this.lastPeriod,
      sanity: this.lastSanity,
    };
  }

  /** Prometheus `http_sd` targets of the fleet's machines the stack has created. */
  scrapeTargets(): { targets: string[]; labels: Record<string, string> }[] {
    if (this.state === undefined) return [];
    const domain = this.settings.template.domain;
    const scrape =
      this.settings.scrapeAddress ??
      ((server: { name: string }): { address: string; metricsPath?: string } => ({ address: `${server.name}.${domain}:9100` }));
    return this.state.desired.servers.flatMap((server) => {
      const address = this.addresses[server.name];
      if (address === undefined || server.power !== "running") return [];
      const { address: target, metricsPath } = scrape({ name: server.name, id: address.id, publicIp: address.publicIp });
      return [
        {
          targets: [target],
          labels: {
            instance: `${address.publicIp}:9100`,
            server: server.name,
            ...(metricsPath === undefined ? {} : { __metrics_path__: metricsPath }),
          },
        },
      ];
    });
  }

  /** The fleet under `/fleets` and `/api/v1/fleets`: status, preview, a period now and scrape targets. */
  view(): FleetView<JitsiFleetStatus> {
    return {
      name: this.fleet,
      status: () => this.status(),
      operate: (server, action) =>
        Promise.reject(
          new ServerActionConflictError(
            server,
            action,
            `${this.fleet} is a Jitsi group: its machines leave through the sidecar's graceful shutdown (PUT /api/v1/groups/${this.groupId}/desired); cordon, enable and panic are Scalelite's`,
          ),
        ),
      preview: () => this.preview(),
      reconcile: async () => {
        await this.period();
        return this.status();
      },
      scrapeTargets: () => this.scrapeTargets(),
    };
  }

  private async runSanity(): Promise<JitsiSanityFindings> {
    const state = this.requireState();
    // Provisioning entries are the fleet's own launches; a confirmed shutdown lingers until its TTL but reports no more.
    const instances = (await this.deps.store.listInstances(this.groupId)).filter(
      (instance) => instance.state !== "provisioning" && instance.shutdownConfirmedAt === undefined,
    );
    const checkedIn = new Set(instances.map((instance) => instance.instanceId));
    const findings = jitsiSanity({
      members: state.desired.servers.map((server) => {
        const id = this.addresses[server.name]?.id;
        const record = state.servers[server.name];
        return {
          name: server.name,
          instanceId: id,
          launchedAt: record?.bootedAt ?? record?.since ?? this.deps.now(),
          checkedIn: record?.phase === "active" || (id !== undefined && checkedIn.has(id)) || checkedIn.has(server.name),
        };
      }),
      liveInstanceIds: [...checkedIn],
      now: this.deps.now(),
      checkInDeadlineMs: this.settings.checkInDeadlineMs,
    });
    if (findings.untracked.length > 0 || findings.silent.length > 0) {
      await this.audit("sanity", `${findings.untracked.length} untracked sidecars, ${findings.silent.length} machines never checked in`, {
        ...findings,
      });
    }
    return findings;
  }

  private async audit(kind: string, message: string, details: Record<string, unknown>, instanceId?: string): Promise<void> {
    await this.deps.store.appendAudit(
      this.groupId,
      { kind, actor: ACTOR, message, details: { fleet: this.fleet, ...details } },
      instanceId,
    );
  }

  private async save(): Promise<void> {
    const lease = this.leases.current;
    if (lease === undefined) throw new FleetLeaseLostError(this.fleet, this.leases.lastToken ?? 0);
    await this.states.save(this.fleet, lease.token, this.requireState());
  }

  private requireState(): FleetState {
    if (this.state === undefined) throw new ActuatorNotStartedError(this.fleet);
    return this.state;
  }
}
