import { heldText, type CycleReport, type FleetActuator, type SanityReport } from "../actuator/actuator.js";
import { FleetStartingError, type OperatorAction } from "../fleet/operator.js";
import type { FleetView } from "../fleet/view.js";
import type { PolicyHistoryStream } from "../fleet/history.js";
import type { Logger } from "../log.js";
import { DecisionLoop, type DecisionAudit, type LoadProfile } from "./decisions.js";
import type { GroupSnapshot, PolicyOutcome, ScalingPolicy, ServerSnapshot } from "../policy/types.js";
import { BbbClient } from "../signals/bbb.js";
import { SignalGatherer } from "../signals/gather.js";
import type { PrometheusClient } from "../signals/prometheus.js";
import type { ScaleliteClient } from "../signals/scalelite.js";
import type { CheckIn, Observed } from "../signals/snapshot.js";

/** The fleet stack is compared with the cloud and Scalelite at the first period and every this many after. */
const SANITY_EVERY_PERIODS = 10;

export { FleetStartingError };

/** Why the fleet is paused: the global kill switch or the fleet's own pause (each set through the API or the CLI). */
export interface FleetPause {
  scope: "global" | "fleet";
  /** Who set the global kill switch, when known. */
  by: string | null;
}

/** What the last period read of a server (absent for a server the policy does not see, such as a held one). */
export type ServerReadings = Pick<ServerSnapshot, "cpu" | "memory" | "meetings" | "participants" | "scalelite" | "scaleliteStatus"> & {
  /** When they were read (ms since epoch). */
  at: number;
};

export interface FleetStatus {
  fleet: string;
  /** Set while the fleet is paused: no decision and no action until it is resumed. */
  paused?: FleetPause | null;
  /** True while the fleet lease is awaited and an interrupted update is recovered. */
  starting: boolean;
  /** `lastCheckIn`: when the server's sidecar last checked in (ISO time), null when it never has since the scaler started. */
  servers: {
    name: string;
    cores: number;
    ramGb: number;
    power: string;
    phase: string;
    lastCheckIn: string | null;
    readings?: ServerReadings;
  }[];
  lastPeriod: {
    at: string;
    sample: PolicyOutcome["sample"];
    decisions: { kind: string; server: string | null; reason: string; dryRun: boolean }[];
    holds: string[];
    held: string[];
    update: { summary: Record<string, number>; durationMs: number } | null;
  } | null;
  /** The last comparison of the fleet stack with the cloud and Scalelite. */
  sanity: SanityReport | null;
}

/** One period of a fleet: what the policy decided and what the actuator did with it. */
export interface FleetPeriod {
  outcome: PolicyOutcome;
  cycle: CycleReport;
  /** What the policy saw of each server. */
  snapshot?: GroupSnapshot;
}

export interface FleetControllerOptions {
  fleet: string;
  loop: DecisionLoop;
  actuator: FleetActuator;
  intervalMs: number;
  logger: Logger;
  /** Sees every period, e.g. for the status page. */
  onPeriod?: (period: FleetPeriod) => void;
  /** When a server's sidecar last checked in, as the last period saw it. */
  lastCheckInAt?: (server: string) => number | undefined;
  /** Read at each period: while it answers a pause, the period neither decides nor acts. */
  pause?: () => Promise<FleetPause | null>;
  /** Where a pause and a resume are recorded. */
  audit?: DecisionAudit;
  now?: () => number;
  /** The snapshot the loop's last gather took. */
  lastSnapshot?: () => GroupSnapshot | undefined;
  /** Sees what made a period's actions fail (the period still fails), e.g. for an alert. */
  onActFailed?: (error: unknown) => void;
}

/**
 * gather → decide → act for one fleet, one period at a time: the loop records the policy's decisions with their
 * numbers, then the actuator carries them out before the next period looks at the fleet again, so no decision is
 * made on a state the previous one is still changing.
 */
export class FleetController {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private lastPeriod: FleetPeriod | undefined;
  private stopped = false;
  private periods = 0;
  private lastSanity: SanityReport | undefined;
  private paused: FleetPause | null = null;
  /** Periods and operator calls take turns: each sees the fleet as the one before left it. */
  private turns: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: FleetControllerOptions) {}

  get fleet(): string {
    return this.options.fleet;
  }

  /**
   * Takes the fleet lease (standing by while another scaler holds it) and recovers an interrupted update; the first
   * period brings an empty fleet to baseline.
   */
  async start(): Promise<{ recovered: boolean }> {
    let started: { recovered: boolean };
    try {
      started = await this.options.actuator.start();
    } catch (error) {
      // Stopped while it stood by for the lease: nothing was started.
      if (this.stopped) return { recovered: false };
      throw error;
    }
    // Stopped while it waited for the lease or recovered: leave without starting the periods.
    if (this.stopped) {
      await this.options.actuator.stop();
      return started;
    }
    this.timer = setInterval(() => this.runPeriod(), this.options.intervalMs);
    this.runPeriod();
    return started;
  }

  period(): Promise<FleetPeriod> {
    return this.inTurn(async () => {
      const pause = (await this.options.pause?.()) ?? null;
      await this.notePause(pause);
      if (pause !== null) return this.pausedPeriod(pause);
      // The lease first: the loop's history append is fenced by it, and a lease lost since is taken again here.
      await this.options.actuator.hold();
      const outcome = await this.options.loop.tick();
      const cycle = await this.options.actuator.cycle(outcome.decisions, outcome.placement).catch((error: unknown) => {
        this.options.onActFailed?.(error);
        throw error;
      });
      this.periods += 1;
      if (this.periods % SANITY_EVERY_PERIODS === 1) await this.checkSanity();
      const snapshot = this.options.lastSnapshot?.();
      const period = { outcome, cycle, ...(snapshot === undefined ? {} : { snapshot }) };
      this.lastPeriod = period;
      this.options.onPeriod?.(period);
      return period;
    });
  }

  /** A pause or a resume is logged and audited once, at the period that first sees it. */
  private async notePause(pause: FleetPause | null): Promise<void> {
    const was = this.paused;
    this.paused = pause;
    if ((was === null) === (pause === null) && (pause === null || was?.scope === pause.scope)) return;
    const { fleet } = this.options;
    const message =
      pause === null
        ? "resumed: the fleet decides and acts again"
        : `paused by the ${pause.scope === "global" ? "global kill switch" : "fleet's pause"}${pause.by === null ? "" : ` (${pause.by})`}: no decisions or actions until resumed`;
    this.options.logger.warn({ event: pause === null ? "fleet.resumed" : "fleet.paused", fleet, ...pause }, message);
    await this.options.audit?.appendAudit(fleet, {
      kind: pause === null ? "fleet.resumed" : "fleet.paused",
      actor: "decision-loop",
      message,
      ...(pause === null ? {} : { details: { ...pause } }),
    });
  }

  /** A period while paused: nothing gathered, decided or done; the outcome says why. */
  private pausedPeriod(pause: FleetPause): FleetPeriod {
    const at = this.options.now?.() ?? Date.now();
    const period: FleetPeriod = {
      outcome: {
        at,
        group: this.options.fleet,
        sample: { at, cpuCores: null, memoryGb: null, cpuUtilization: null, memoryUtilization: null, participants: null },
        decisions: [],
        placement: [],
        holds: [{ reason: `paused (${pause.scope}): no decisions or actions until resumed`, inputs: {} }],
      },
      cycle: { applied: [], held: [], update: null, registered: [], replaced: [], drainTimeouts: [], steered: [], recovered: false },
    };
    this.lastPeriod = period;
    this.options.onPeriod?.(period);
    return period;
  }

  /** A check that cannot read the cloud or Scalelite is logged and retried at its next turn; the period stands. */
  private async checkSanity(): Promise<void> {
    try {
      this.lastSanity = await this.options.actuator.sanity();
    } catch (error) {
      this.options.logger.warn(
        { event: "fleet.sanity_failed", fleet: this.options.fleet, err: error instanceof Error ? error.message : String(error) },
        "sanity check could not run",
      );
    }
  }

  /** An operator's action on one server, between two periods. */
  operate(server: string, action: OperatorAction, actor: string): Promise<{ server: string; phase: string }> {
    return this.inTurn(() => this.requireStarted().operate(server, action, actor));
  }

  /** A period now, at an operator's call; refused while the fleet is starting. */
  reconcile(): Promise<FleetPeriod> {
    this.requireStarted();
    return this.period();
  }

  /** What the fleet stack's next `up` would change, between two periods. */
  preview(): Promise<Record<string, number>> {
    return this.inTurn(() => this.requireStarted().preview());
  }

  private requireStarted(): FleetActuator {
    if (!this.options.actuator.started) throw new FleetStartingError(this.options.fleet);
    return this.options.actuator;
  }

  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const result = this.turns.then(work);
    this.turns = result.catch(() => undefined);
    return result;
  }

  last(): FleetPeriod | undefined {
    return this.lastPeriod;
  }

  /** The fleet at a glance: each server's size, power and phase, and what the last period decided and did. */
  status(): FleetStatus {
    if (!this.options.actuator.started)
      return { fleet: this.options.fleet, paused: this.paused, starting: true, servers: [], lastPeriod: null, sanity: null };
    const state = this.options.actuator.currentState();
    const period = this.lastPeriod;
    const seen = new Map(period?.snapshot?.servers.map((server) => [server.id, server]));
    const takenAt = period?.snapshot?.takenAt ?? 0;
    return {
      fleet: this.options.fleet,
      paused: this.paused,
      starting: false,
      servers: state.desired.servers.map((server) => ({
        name: server.name,
        cores: server.size.cores,
        ramGb: server.size.ramGb,
        power: server.power,
        phase: state.servers[server.name]?.phase ?? "unknown",
        lastCheckIn: isoOrNull(this.options.lastCheckInAt?.(server.name)),
        ...readingsOf(seen.get(server.name), takenAt),
      })),
      lastPeriod:
        period === undefined
          ? null
          : {
              at: new Date(period.outcome.at).toISOString(),
              sample: period.outcome.sample,
              decisions: period.outcome.decisions.map((decision) => ({
                kind: decision.kind,
                server: decision.server ?? null,
                reason: decision.reason,
                dryRun: decision.dryRun,
              })),
              holds: period.outcome.holds.map((hold) => hold.reason),
              held: period.cycle.held.map(heldText),
              update:
                period.cycle.update === null
                  ? null
                  : { summary: period.cycle.update.summary, durationMs: Math.round(period.cycle.update.durationMs) },
            },
      sanity: this.lastSanity ?? null,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    // Operator calls already queued finish before the lease goes, as the period in progress does.
    await this.running;
    await this.turns;
    await this.options.actuator.stop();
  }

  private runPeriod(): void {
    // A long update is never overlapped by the next period: decisions wait for the fleet to settle.
    if (this.running !== undefined) return;
    this.running = this.period()
      .catch((error: unknown) =>
        this.options.logger.error(
          { event: "fleet.period_failed", fleet: this.options.fleet, err: error },
          "fleet period failed; the next one retries",
        ),
      )
      .finally(() => {
        this.running = undefined;
      });
  }
}

function readingsOf(server: ServerSnapshot | undefined, at: number): { readings?: ServerReadings } {
  if (server === undefined) return {};
  const { cpu, memory, meetings, participants, scalelite, scaleliteStatus } = server;
  return { readings: { at, cpu, memory, meetings, participants, scalelite, scaleliteStatus } };
}

export interface FleetWiring {
  fleet: string;
  actuator: FleetActuator;
  audit: DecisionAudit;
  /** The policy's own history, fenced by the actuator's lease (scaler/fleet/history.ts). */
  history?: PolicyHistoryStream;
  /** Where the load is kept for next week's forecast. */
  loadProfile?: LoadProfile;
  /** Read every period, so a reconfigured or paused fleet takes effect at the next one. */
  policy: () => Promise<ScalingPolicy>;
  prometheus: PrometheusClient;
  scalelite: ScaleliteClient;
  /** A server's own BBB API secret (infra/workerCredentials.ts). */
  bbbSecretOf: (serverName: string) => string;
  /** False on clouds without power-off (DigitalOcean): scale-in destroys. */
  canPowerOff: boolean;
  /** A reading older than this is stale: shown, never a reason to scale in. */
  freshForMs: number;
  intervalMs: number;
  /** The global kill switch and the fleet's own pause, read at each period. */
  pause?: () => Promise<FleetPause | null>;
  /** Sidecar check-ins per server; none when the fleet's servers run no sidecar. */
  checkIns?: () => Promise<ReadonlyMap<string, Observed<CheckIn>>>;
  now: () => number;
  logger: Logger;
  onPeriod?: (period: FleetPeriod) => void;
  onActFailed?: (error: unknown) => void;
}

/**
 * The policy the decisions see while an operator holds servers: the policy does not see them, yet they still count
 * against the fleet's maximum; the minimum stands, so held servers may be replaced.
 */
export function withHeldServers(policy: ScalingPolicy, held: number): ScalingPolicy {
  return held === 0 ? policy : { ...policy, max: Math.max(policy.min, policy.max - held) };
}

/** The signals, the decision loop and the actuator of one fleet, put together. */
export function createFleetController(wiring: FleetWiring): FleetController {
  const gatherer = new SignalGatherer({
    group: wiring.fleet,
    canPowerOff: wiring.canPowerOff,
    freshForMs: wiring.freshForMs,
    prometheus: wiring.prometheus,
    scalelite: wiring.scalelite,
    bbbOf: (member) => {
      const url = wiring.actuator.bbbUrlOf(member.id);
      return url === undefined ? undefined : new BbbClient({ baseUrl: url, secret: wiring.bbbSecretOf(member.id) });
    },
    fleet: async () => wiring.actuator.members(),
    checkIns: wiring.checkIns ?? (async () => new Map()),
    now: wiring.now,
    logger: wiring.logger,
  });
  let snapshot: GroupSnapshot | undefined;
  const loop = new DecisionLoop({
    group: wiring.fleet,
    gather: async () => (snapshot = await gatherer.snapshot()),
    policy: async () => withHeldServers(await wiring.policy(), wiring.actuator.heldServers().length),
    audit: wiring.audit,
    ...(wiring.history === undefined ? {} : { history: wiring.history }),
    ...(wiring.loadProfile === undefined ? {} : { loadProfile: wiring.loadProfile }),
    intervalMs: wiring.intervalMs,
    now: wiring.now,
    logger: wiring.logger,
  });
  return new FleetController({
    fleet: wiring.fleet,
    lastCheckInAt: (server) => gatherer.lastCheckInAt(server),
    ...(wiring.pause === undefined ? {} : { pause: wiring.pause }),
    audit: wiring.audit,
    now: wiring.now,
    loop,
    actuator: wiring.actuator,
    intervalMs: wiring.intervalMs,
    logger: wiring.logger,
    ...(wiring.onPeriod === undefined ? {} : { onPeriod: wiring.onPeriod }),
    ...(wiring.onActFailed === undefined ? {} : { onActFailed: wiring.onActFailed }),
    lastSnapshot: () => snapshot,
  });
}

function isoOrNull(at: number | undefined): string | null {
  return at === undefined ? null : new Date(at).toISOString();
}

/** Where Prometheus scrapes a worker's node-exporter: by default its public address, port 9100. */
export type ScrapeAddress = (server: { name: string; id: string; publicIp: string }) => { address: string; metricsPath?: string };

/**
 * A fleet as the HTTP surface shows it. The `instance` label is always `<publicIp>:9100`, the name the policy's
 * metrics are keyed by, whatever address the scrape goes to.
 */
export function fleetView(
  controller: FleetController,
  actuator: FleetActuator,
  scrapeAddress: ScrapeAddress = (server) => ({ address: `${server.publicIp}:9100` }),
): FleetView<FleetStatus> {
  return {
    name: controller.fleet,
    status: () => controller.status(),
    operate: (server, action, actor) => controller.operate(server, action, actor),
    preview: () => controller.preview(),
    reconcile: async () => {
      await controller.reconcile();
      return controller.status();
    },
    scrapeTargets: () =>
      (actuator.started ? actuator.scrapeTargets() : []).map((server) => {
        const { address, metricsPath } = scrapeAddress(server);
        return {
          targets: [address],
          labels: {
            instance: `${server.publicIp}:9100`,
            server: server.name,
            ...(metricsPath === undefined ? {} : { __metrics_path__: metricsPath }),
          },
        };
      }),
  };
}
