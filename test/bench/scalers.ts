/** The scalers the policy bench compares: confscale's policy and the seed deployment's rules. */
import type { ServerSize, WorkerPolicy } from "../../infra/config.js";
import { decide } from "../../scaler/policy/decide.js";
import { AGREEMENT_WINDOW_MS } from "../../scaler/policy/load.js";
import { minimumOf, weekSlot } from "./calendar.js";
import type { Decision, ForecastPoint, GroupSnapshot, PolicyHistory, Reading, ServerSnapshot } from "../../scaler/policy/types.js";
import { MINUTE_MS, scaleliteLoad, type Scaler } from "./fleet-sim.js";

/** The group's load by slot of the week, as the decision loop keeps it (scaler/loop.ts): weekday and local minute. */
export type LoadProfile = Map<string, ForecastPoint>;

const WEEK_MS = 7 * 24 * 3_600_000;
/** As scaler/loop.ts: a slot's record is a forecast while at most a week and a day old. */
const FORECAST_MAX_AGE_MS = WEEK_MS + 24 * 3_600_000;

/** The recorded load of the slots just past and of the coming lead time, read as scaler/loop/decisions.ts reads it. */
export function forecastFrom(profile: LoadProfile, timeZone: string, now: number, aheadMs: number): ForecastPoint[] {
  const forecast: ForecastPoint[] = [];
  for (let index = 1; index <= Math.ceil(aheadMs / MINUTE_MS); index += 1) {
    const at = now + index * MINUTE_MS;
    const point = profile.get(weekSlot(at, timeZone));
    if (point !== undefined && point.at < now && at - point.at <= FORECAST_MAX_AGE_MS) forecast.push({ ...point, at });
  }
  return forecast;
}

function reading(value: number | null): Reading {
  return value === null ? { value: null, status: "missing" } : { value, status: "fresh" };
}

/**
 * confscale's policy, every minute. With a `profile` it reads its forecast from it and records each period's load
 * into it, as the decision loop does with the store; without one it decides on the trend alone (no history).
 */
export function confscaleScaler(name: string, policy: WorkerPolicy, profile?: LoadProfile): Scaler {
  const history: PolicyHistory = { samples: [], actions: [] };
  const readAhead = new Map<number, ForecastPoint>();
  return {
    name,
    intervalMinutes: 1,
    decide(servers, minute, now, metrics) {
      const ahead = profile === undefined ? [] : forecastFrom(profile, policy.timeZone, now, policy.leadTimeSeconds * 1000);
      // The minutes just past as last week saw them: their slots hold today's load by now, so what was read ahead is
      // kept, as the decision loop keeps it (scaler/loop/decisions.ts).
      for (const point of ahead) readAhead.set(point.at, point);
      for (const at of readAhead.keys()) if (at <= now - AGREEMENT_WINDOW_MS) readAhead.delete(at);
      history.forecast = [...[...readAhead.values()].filter((point) => point.at <= now), ...ahead];
      const snapshot: GroupSnapshot = {
        group: "bbb",
        takenAt: now,
        canPowerOff: true,
        servers: servers.map((server): ServerSnapshot => {
          const metric = metrics.get(server.id);
          const running = server.power === "running";
          let participants = 0;
          let videos = 0;
          let newestStart: number | null = null;
          for (const meeting of server.meetings.values()) {
            participants += meeting.participants;
            videos += meeting.videos;
            newestStart = Math.max(newestStart ?? -Infinity, meeting.startSecond);
          }
          return {
            id: server.id,
            size: server.size,
            power: server.power,
            bootedAt: server.bootedAt,
            resizedAt: server.resizedAt,
            scalelite:
              server.power === "stopped"
                ? null
                : { state: server.state, online: running, load: scaleliteLoad(server, minute), loadMultiplier: server.loadMultiplier },
            scaleliteStatus: "fresh",
            cpu: reading(metric?.cpu ?? null),
            memory: reading(metric?.memory ?? null),
            networkBytesPerSecond: reading(null),
            stress: reading(null),
            meetings: reading(running ? server.meetings.size : null),
            participants: reading(running ? participants : null),
            videos: reading(running ? videos : null),
            newestMeetingAt: !running ? undefined : newestStart === null ? null : now - minute * MINUTE_MS + newestStart * 1000,
            ...(server.warm === true ? { warm: true } : {}),
          };
        }),
      };
      const outcome = decide(snapshot, policy, history, now);
      if (profile !== undefined && outcome.profileLoad !== undefined && outcome.profileLoad !== null) {
        profile.set(weekSlot(now, policy.timeZone), { at: now, ...outcome.profileLoad });
      }
      const horizon = now - 2 * 3_600_000;
      history.samples = [...history.samples, outcome.sample].filter((sample) => sample.at > horizon);
      history.actions = [
        ...history.actions,
        ...outcome.decisions
          .filter((decision) => !decision.dryRun)
          .map((decision) => ({
            at: now,
            kind: decision.kind,
            server: decision.server,
            ...(decision.warm === true ? { warm: true } : {}),
          })),
      ].filter((action) => action.at > horizon);
      return { decisions: outcome.decisions, placement: outcome.placement };
    },
  };
}

const command = (kind: Decision["kind"], server: string, reason: string, targetSize?: ServerSize): Decision => ({
  kind,
  server,
  ...(targetSize === undefined ? {} : { targetSize }),
  reason,
  inputs: {},
  dryRun: false,
});

/**
 * The seed deployment's scaler, rule for rule (REFERENCE §4), every 5 minutes. Its servers are all declared by its
 * deployment (stopped when not needed), so it never waits for a create.
 */
export function seedScaler(policy: WorkerPolicy): Scaler {
  const thresholds = { cpu: { up: 0.35, down: 0.05 }, memory: { up: 0.35, down: 0.15 } };
  return {
    name: "seed rules",
    intervalMinutes: 5,
    decide(servers, _minute, now, metrics) {
      const decisions: Decision[] = [];
      const minimum = minimumOf(policy, now);
      const running = servers.filter((server) => server.power === "running");
      const stopped = servers.filter((server) => server.power === "stopped");
      const powered = servers.filter((server) => server.power !== "stopped").length;
      const averageCpu = running.reduce((sum, server) => sum + (metrics.get(server.id)?.cpu ?? 0), 0) / Math.max(1, running.length);
      const averageMemory = running.reduce((sum, server) => sum + (metrics.get(server.id)?.memory ?? 0), 0) / Math.max(1, running.length);
      const starts = powered < minimum ? minimum - powered : averageCpu > thresholds.cpu.up || averageMemory > thresholds.memory.up ? 1 : 0;
      for (const server of stopped.slice(0, starts))
        decisions.push(command("start", server.id, "cluster average over threshold or below window minimum"));
      let active = powered;
      for (const server of running) {
        const metric = metrics.get(server.id) ?? { cpu: 0, memory: 0 };
        const participants = [...server.meetings.values()].reduce((sum, meeting) => sum + meeting.participants, 0);
        if ((metric.cpu < thresholds.cpu.down || metric.memory < thresholds.memory.down) && participants === 0 && active > minimum) {
          decisions.push(command("stop", server.id, "low CPU or memory and no participants"));
          active -= 1;
          continue;
        }
        let { cores, ramGb } = server.size;
        if (metric.cpu > thresholds.cpu.up && cores < policy.maxSize.cores) cores += 1;
        else if (metric.cpu < thresholds.cpu.down && cores > policy.defaultSize.cores) cores -= 1;
        if (metric.memory > thresholds.memory.up && ramGb < policy.maxSize.ramGb) ramGb += 1;
        else if (metric.memory < thresholds.memory.down && ramGb > policy.defaultSize.ramGb) ramGb -= 1;
        if (cores !== server.size.cores || ramGb !== server.size.ramGb)
          decisions.push(command("resize", server.id, "±1 step", { cores, ramGb }));
      }
      return { decisions, placement: [] };
    },
  };
}
