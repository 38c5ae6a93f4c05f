import type { Logger } from "../log.js";
import { MemoryPolicyHistory, historyEntryOf, policyHistoryOf, type PolicyHistoryStream } from "../fleet/history.js";
import { decide } from "../policy/decide.js";
import { AGREEMENT_WINDOW_MS } from "../policy/load.js";
import { localClock } from "../policy/timeWindows.js";
import type { ForecastPoint, GroupSnapshot, PolicyOutcome, ScalingPolicy } from "../policy/types.js";

/**
 * Where decisions are recorded for people: the audit trail of `scaler/store` (ScalerStore satisfies it). The
 * policy's history is not read back from it (see `history`).
 */
export interface DecisionAudit {
  appendAudit(
    groupId: string,
    entry: { kind: string; actor: string; message?: string; details?: Record<string, unknown>; at?: number },
    instanceId?: string,
  ): Promise<void>;
  readAudit(groupId: string, options?: { limit?: number }): Promise<{ at: number; kind: string; details?: Record<string, unknown> }[]>;
}

/** Where the group's load is kept by slot of the week, for the forecast a week later (ScalerStore satisfies it). */
export interface LoadProfile {
  recordLoad(groupId: string, slot: string, point: ForecastPoint): Promise<void>;
  readLoad(groupId: string, slots: readonly string[]): Promise<(ForecastPoint | undefined)[]>;
}

const MINUTE_MS = 60_000;
const WEEK_MS = 7 * 24 * 3_600_000;
/** A slot's load is last week's when it was recorded at most this long ago; older, the term or timetable may have changed. */
const FORECAST_MAX_AGE_MS = WEEK_MS + 24 * 3_600_000;

/** The slot of the week of `at`: its weekday and minute in the policy's time zone, so bells stay put across daylight saving. */
function weekSlot(at: number, timeZone: string): string {
  const clock = localClock(at, timeZone);
  return `${clock.day} ${clock.time}`;
}

/** The load recorded a week ago at each minute of the next `aheadMs`, for the policy's forecast. */
async function forecastFrom(profile: LoadProfile, group: string, timeZone: string, now: number, aheadMs: number): Promise<ForecastPoint[]> {
  const times = Array.from({ length: Math.ceil(aheadMs / MINUTE_MS) }, (_, index) => now + (index + 1) * MINUTE_MS);
  const recorded = await profile.readLoad(
    group,
    times.map((at) => weekSlot(at, timeZone)),
  );
  const forecast: ForecastPoint[] = [];
  times.forEach((at, index) => {
    const point = recorded[index];
    if (point !== undefined && point.at < now && at - point.at <= FORECAST_MAX_AGE_MS)
      forecast.push({ at, cpuCores: point.cpuCores, memoryGb: point.memoryGb });
  });
  return forecast;
}

export const OUTCOME_KIND = "policy-outcome";
const ACTOR = "decision-loop";
/** How long the in-memory history keeps a period: longer than any cooldown, launch-rate window or sustain span. */
export const HISTORY_RETENTION_MS = 24 * 3_600_000;

export interface DecisionLoopOptions {
  group: string;
  gather: () => Promise<GroupSnapshot>;
  /** Read every period, so a reconfigured or paused group takes effect at the next one. */
  policy: () => Promise<ScalingPolicy>;
  audit: DecisionAudit;
  /**
   * The policy's own history, kept apart from the audit trail (scaler/fleet/history.ts); in memory when not given,
   * so a loop without Redis remembers only its own periods.
   */
  history?: PolicyHistoryStream;
  /** Where each period's load is recorded and read back a week later as the forecast; without it, no forecast. */
  loadProfile?: LoadProfile;
  intervalMs: number;
  /** Periods of history kept for sustained thresholds, trends and cooldowns. */
  historyPeriods?: number;
  now: () => number;
  logger: Logger;
}

/** gather → decide → record, every `intervalMs`. Acting on the recorded decisions is the actuator's job. */
export class DecisionLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  private readonly history: PolicyHistoryStream;
  /** Forecast points read ahead, by the minute they stand for, kept while that minute is within the agreement window. */
  private readonly readAhead = new Map<number, ForecastPoint>();

  constructor(private readonly options: DecisionLoopOptions) {
    this.history = options.history ?? new MemoryPolicyHistory(HISTORY_RETENTION_MS);
  }

  /** One period. Throws when gathering or recording fails; `start()` logs that and carries on. */
  async tick(): Promise<PolicyOutcome> {
    const { options } = this;
    const [snapshot, policy] = await Promise.all([options.gather(), options.policy()]);
    // Enough periods to cover the cooldowns and the launch-rate window, whatever the interval.
    const windowMs =
      Math.max(policy.cooldownSeconds.afterScaleOut, policy.cooldownSeconds.perServer, policy.launchRate.perSeconds, policy.graceSeconds) *
      1000;
    const periods = options.historyPeriods ?? Math.max(policy.sustainPeriods + 1, Math.ceil(windowMs / options.intervalMs) + 1);
    const history = policyHistoryOf(await this.history.newest(options.group, periods));
    const now = options.now();
    if (options.loadProfile !== undefined) {
      const ahead = await forecastFrom(options.loadProfile, options.group, policy.timeZone, now, policy.leadTimeSeconds * 1000);
      // The minutes just past as last week saw them, for the policy to compare today with: their slots hold today's
      // load by now, so what was read ahead is kept (in memory: after a restart the comparison waits a window).
      for (const point of ahead) this.readAhead.set(point.at, point);
      for (const at of this.readAhead.keys()) if (at <= now - AGREEMENT_WINDOW_MS) this.readAhead.delete(at);
      history.forecast = [...[...this.readAhead.values()].filter((point) => point.at <= now), ...ahead];
    }
    const outcome = decide(snapshot, policy, history, now);
    await this.history.append(options.group, historyEntryOf(outcome));
    await options.audit.appendAudit(options.group, {
      kind: OUTCOME_KIND,
      actor: ACTOR,
      at: now,
      message: summary(outcome),
      details: outcome as unknown as Record<string, unknown>,
    });
    // What the policy says the slot should keep: today's load, or on a holiday last week's (PolicyOutcome.profileLoad).
    const kept = outcome.profileLoad;
    if (options.loadProfile !== undefined && kept !== undefined && kept !== null) {
      await options.loadProfile.recordLoad(options.group, weekSlot(now, policy.timeZone), { at: now, ...kept });
    }
    for (const decision of outcome.decisions) {
      if (decision.server === undefined) continue;
      await options.audit.appendAudit(
        options.group,
        {
          kind: `decision.${decision.kind}`,
          actor: ACTOR,
          at: now,
          message: decision.reason,
          details: decision as unknown as Record<string, unknown>,
        },
        decision.server,
      );
    }
    options.logger.info(
      {
        group: options.group,
        decisions: outcome.decisions.length,
        placement: outcome.placement.length,
        holds: outcome.holds.length,
        sample: outcome.sample,
      },
      summary(outcome),
    );
    return outcome;
  }

  start(): void {
    if (this.timer !== undefined) return;
    const run = () => {
      // A slow period is never overlapped by the next one.
      if (this.running !== undefined) return;
      this.running = this.tick()
        .catch((error: unknown) =>
          this.options.logger.error({ group: this.options.group, err: error }, "decision period failed; the next one retries"),
        )
        .finally(() => {
          this.running = undefined;
        });
    };
    this.timer = setInterval(run, this.options.intervalMs);
    run();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}

function summary(outcome: PolicyOutcome): string {
  const steering = outcome.placement.length === 0 ? "" : `; Scalelite multiplier of ${outcome.placement.length} server(s) steered`;
  if (outcome.decisions.length === 0)
    return (outcome.holds.length === 0 ? "no change" : `held: ${outcome.holds.map((hold) => hold.reason).join("; ")}`) + steering;
  const counts = new Map<string, number>();
  for (const decision of outcome.decisions) counts.set(decision.kind, (counts.get(decision.kind) ?? 0) + 1);
  return [...counts].map(([kind, count]) => `${kind} ×${count}`).join(", ") + (outcome.decisions[0]?.dryRun ? " (dry run)" : "") + steering;
}
