import type { WorkerPolicy } from "../infra/config.js";
import type { CycleReport, FleetActuator } from "./actuator/actuator.js";
import type { Logger } from "./log.js";
import { DecisionLoop, type DecisionAudit } from "./loop.js";
import type { PolicyOutcome } from "./policy/types.js";
import { BbbClient } from "./signals/bbb.js";
import { SignalGatherer } from "./signals/gather.js";
import type { PrometheusClient } from "./signals/prometheus.js";
import type { ScaleliteClient } from "./signals/scalelite.js";
import type { CheckIn, Observed } from "./signals/snapshot.js";

/** One period of a fleet: what the policy decided and what the actuator did with it. */
export interface FleetPeriod {
  outcome: PolicyOutcome;
  cycle: CycleReport;
}

export interface FleetControllerOptions {
  fleet: string;
  loop: DecisionLoop;
  actuator: FleetActuator;
  intervalMs: number;
  logger: Logger;
  /** Sees every period, e.g. for the status page. */
  onPeriod?: (period: FleetPeriod) => void;
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

  constructor(private readonly options: FleetControllerOptions) {}

  /** Takes the fleet lease and recovers an interrupted update; the first period brings an empty fleet to baseline. */
  async start(): Promise<{ recovered: boolean }> {
    const started = await this.options.actuator.start();
    this.timer = setInterval(() => this.runPeriod(), this.options.intervalMs);
    this.runPeriod();
    return started;
  }

  async period(): Promise<FleetPeriod> {
    const outcome = await this.options.loop.tick();
    const cycle = await this.options.actuator.cycle(outcome.decisions);
    const period = { outcome, cycle };
    this.lastPeriod = period;
    this.options.onPeriod?.(period);
    return period;
  }

  last(): FleetPeriod | undefined {
    return this.lastPeriod;
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    await this.options.actuator.stop();
  }

  private runPeriod(): void {
    // A long update is never overlapped by the next period: decisions wait for the fleet to settle.
    if (this.running !== undefined) return;
    this.running = this.period()
      .catch((error: unknown) => this.options.logger.error({ event: "fleet.period_failed", fleet: this.options.fleet, err: error }, "fleet period failed; the next one retries"))
      .finally(() => {
        this.running = undefined;
      });
  }
}

export interface FleetWiring {
  fleet: string;
  actuator: FleetActuator;
  audit: DecisionAudit;
  /** Read every period, so a reconfigured or paused fleet takes effect at the next one. */
  policy: () => Promise<WorkerPolicy>;
  prometheus: PrometheusClient;
  scalelite: ScaleliteClient;
  bbbSecret: string;
  /** False on clouds without power-off (DigitalOcean): scale-in destroys. */
  canPowerOff: boolean;
  /** A reading older than this is stale: shown, never a reason to scale in. */
  freshForMs: number;
  intervalMs: number;
  /** Sidecar check-ins per server; none when the fleet's servers run no sidecar. */
  checkIns?: () => Promise<ReadonlyMap<string, Observed<CheckIn>>>;
  now: () => number;
  logger: Logger;
  onPeriod?: (period: FleetPeriod) => void;
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
      return url === undefined ? undefined : new BbbClient({ baseUrl: url, secret: wiring.bbbSecret });
    },
    fleet: async () => wiring.actuator.members(),
    checkIns: wiring.checkIns ?? (async () => new Map()),
    now: wiring.now,
    logger: wiring.logger,
  });
  const loop = new DecisionLoop({
    group: wiring.fleet,
    gather: () => gatherer.snapshot(),
    policy: wiring.policy,
    audit: wiring.audit,
    intervalMs: wiring.intervalMs,
    now: wiring.now,
    logger: wiring.logger,
  });
  return new FleetController({
    fleet: wiring.fleet,
    loop,
    actuator: wiring.actuator,
    intervalMs: wiring.intervalMs,
    logger: wiring.logger,
    ...(wiring.onPeriod === undefined ? {} : { onPeriod: wiring.onPeriod }),
  });
}
