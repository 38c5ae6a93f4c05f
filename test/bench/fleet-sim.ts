/**
 * The simulated fleet every row of the policy bench runs on: servers that boot, take meetings, grow and stop, billed
 * by the minute, with overload measured the same way for every row. Meetings go where the scaler places them, or as
 * Scalelite places them: the least loaded enabled server, load = participants (at least 15 for a meeting younger
 * than 15 minutes) times the server's load multiplier.
 */
import type { ServerSize, WorkerPolicy } from "../../infra/config.js";
import { sizeLoadMultiplier } from "../../scaler/policy/placement.js";
import type { Decision, PlacementChange } from "../../scaler/policy/types.js";
import { localToUtc, minimumOf, spanMinutes } from "./calendar.js";
import { isOverloaded, serverDemand, utilization, type MeetingLoad } from "./load-model.js";
import type { Span } from "./scenarios.js";

/**
 * Minutes from a create until the server takes meetings: a bare Ubuntu image, then bbb-install. The README of
 * github.com/bigbluebutton/bbb-install puts a full install "under 30 minutes" depending on the download speed; its
 * issue #536 (2022) measured "about 15 minutes" on a large machine. The cloud's provisioning, the first boot,
 * cloud-init and the certificate come on top.
 */
export const STOCK_CREATE_MINUTES = 30;
/**
 * Minutes from a create from a baked worker image (BigBlueButton installed once per version, a snapshot or custom
 * image per cloud; README "Baked worker images") until the server takes meetings: the cloud provisions from the
 * image, then it boots as a start does (START_MINUTES), plus the first boot's own set-up (its name, secrets,
 * certificate). An estimate. Every row of the bench creates from a baked image.
 */
export const CREATE_MINUTES = 8;
/**
 * Minutes from the start of a stopped, installed server until it takes meetings: the cloud's power-on request, the
 * boot, BigBlueButton's services and the actuator's enable in Scalelite once BBB's API answers. An estimate.
 */
export const START_MINUTES = 5;

export const MINUTE_MS = 60_000;

/** A meeting of a replayed span, in seconds elapsed since the span began (not wall-clock: a clock change is no gap). */
export interface SimMeeting extends MeetingLoad {
  id: number;
  startSecond: number;
  endSecond: number;
}

/** A span on the real time line. */
export interface Day {
  startMs: number;
  minutes: number;
  /** Sorted by start. */
  meetings: SimMeeting[];
}

export function dayOf(span: Span, timeZone: string): Day {
  const startMs = localToUtc(span.date, 0, timeZone);
  const meetings = span.meetings
    .map((meeting, id): SimMeeting => {
      const startSecond = Math.round((localToUtc(span.date, meeting.startSecond, timeZone) - startMs) / 1000);
      return { ...meeting, id, startSecond, endSecond: startSecond + meeting.durationSeconds };
    })
    .sort((a, b) => a.startSecond - b.startSecond);
  return { startMs, minutes: spanMinutes(span.date, span.days, timeZone), meetings };
}

export interface SimServer {
  id: string;
  size: ServerSize;
  power: "running" | "booting" | "stopped";
  readyAtMinute: number;
  bootedAt: number | null;
  resizedAt: number | null;
  state: "enabled" | "cordoned" | "disabled";
  /** Scalelite's load multiplier: set to the size's share when the server is enabled or resized, then steered. */
  loadMultiplier: number;
  meetings: Map<number, SimMeeting>;
  pendingResize?: { size: ServerSize; atMinute: number };
  /** Created for the warm pool: stopped, not enabled, once installed. */
  warm?: boolean;
}

/** The servers that exist between two spans; `nextId` keeps names unique over a scenario's weeks. */
export interface FleetState {
  servers: SimServer[];
  nextId: number;
}

export interface Metrics {
  cpu: number;
  memory: number;
}

export interface Scaler {
  name: string;
  intervalMinutes: number;
  decide(
    servers: readonly SimServer[],
    minute: number,
    now: number,
    metrics: Map<string, Metrics>,
  ): { decisions: Decision[]; placement: PlacementChange[] };
  /** Where a new meeting goes; without it, Scalelite's least-loaded placement. */
  place?(meeting: SimMeeting, servers: readonly SimServer[], minute: number): SimServer | undefined;
}

export interface Result {
  name: string;
  serverHours: number;
  coreHours: number;
  ramGbHours: number;
  overloadedServerMinutes: number;
  /** Participants on an overloaded server, summed over minutes; a meeting no server took counts all of its own. */
  overloadedParticipantMinutes: number;
  peakServers: number;
  meetingsCutOff: number;
  meetingsRejected: number;
}

export const emptyResult = (name: string): Result => ({
  name,
  serverHours: 0,
  coreHours: 0,
  ramGbHours: 0,
  overloadedServerMinutes: 0,
  overloadedParticipantMinutes: 0,
  peakServers: 0,
  meetingsCutOff: 0,
  meetingsRejected: 0,
});

/** Sums of several spans (peak servers: the highest). */
export function addResults(name: string, results: readonly Result[]): Result {
  const total = emptyResult(name);
  for (const result of results) {
    total.serverHours += result.serverHours;
    total.coreHours += result.coreHours;
    total.ramGbHours += result.ramGbHours;
    total.overloadedServerMinutes += result.overloadedServerMinutes;
    total.overloadedParticipantMinutes += result.overloadedParticipantMinutes;
    total.peakServers = Math.max(total.peakServers, result.peakServers);
    total.meetingsCutOff += result.meetingsCutOff;
    total.meetingsRejected += result.meetingsRejected;
  }
  return total;
}

const serverName = (id: number) => `bbb-${String(id).padStart(2, "0")}`;

/** A new fleet: `running` servers of the default size up since before the span, `stopped` more installed and off. */
export function newFleet(policy: WorkerPolicy, running: number, stopped = 0): FleetState {
  const servers = Array.from({ length: running + stopped }, (_, index): SimServer => ({
    id: serverName(index + 1),
    size: { ...policy.defaultSize },
    power: index < running ? "running" : "stopped",
    readyAtMinute: 0,
    bootedAt: index < running ? 0 : null,
    resizedAt: null,
    state: index < running ? "enabled" : "disabled",
    loadMultiplier: 1,
    meetings: new Map(),
  }));
  return { servers, nextId: running + stopped + 1 };
}

/** A copy of a fleet as it stands between spans, times moved to the next span (no meeting runs across midnight). */
export function carryOver(state: FleetState, fromDay: Day, toDay: Day): FleetState {
  const shift = Math.round((toDay.startMs - fromDay.startMs) / MINUTE_MS);
  return {
    nextId: state.nextId,
    servers: state.servers.map((server) => ({
      ...server,
      size: { ...server.size },
      readyAtMinute: server.readyAtMinute - shift,
      meetings: new Map(),
      ...(server.pendingResize === undefined
        ? {}
        : { pendingResize: { ...server.pendingResize, atMinute: server.pendingResize.atMinute - shift } }),
    })),
  };
}

/** Scalelite's load of a server: participants, at least 15 for a meeting younger than 15 minutes, times the multiplier. */
export function scaleliteLoad(server: SimServer, minute: number): number {
  let load = 0;
  for (const meeting of server.meetings.values()) {
    load += minute * 60 - meeting.startSecond < 15 * 60 ? Math.max(15, meeting.participants) : meeting.participants;
  }
  return load * server.loadMultiplier;
}

export const takesMeetings = (server: SimServer) => server.power === "running" && server.state === "enabled";

function leastLoaded(servers: readonly SimServer[], minute: number): SimServer | undefined {
  let best: SimServer | undefined;
  let bestLoad = Infinity;
  for (const server of servers) {
    if (!takesMeetings(server)) continue;
    const load = scaleliteLoad(server, minute);
    if (load < bestLoad) {
      best = server;
      bestLoad = load;
    }
  }
  return best;
}

export class Fleet {
  readonly servers: SimServer[];
  private nextId: number;
  private nextMeeting = 0;
  private serverMinutes = 0;
  private coreMinutes = 0;
  private ramGbMinutes = 0;
  private overloadedServerMinutes = 0;
  private overloadedParticipantMinutes = 0;
  private meetingsCutOff = 0;
  private meetingsRejected = 0;
  private peakServers = 0;
  /** Every start and create, by minute: the launch rate a scaler kept. */
  readonly launches: { minute: number; kind: "start" | "create" }[] = [];
  /** The most servers that existed (running, booting or stopped) at once: the `max` a scaler kept. */
  peakExisting: number;
  /** Minutes that ended, after the scaler's decisions, with fewer servers running or booting than the window's minimum. */
  minutesBelowMinimum = 0;

  constructor(
    state: FleetState,
    private readonly policy: WorkerPolicy,
    private readonly day: Day,
  ) {
    this.servers = state.servers;
    this.nextId = state.nextId;
    this.peakExisting = this.servers.length;
  }

  state(): FleetState {
    return { servers: this.servers, nextId: this.nextId };
  }

  /** Boots and resizes that complete, meetings that end, then the minute's new meetings placed. */
  advance(minute: number, place?: Scaler["place"]): void {
    const nowMs = this.day.startMs + minute * MINUTE_MS;
    for (const server of this.servers) {
      if (server.power === "booting" && server.readyAtMinute <= minute && server.warm === true) {
        // Installed for the warm pool: the actuator stops it instead of enabling it.
        server.power = "stopped";
        server.warm = undefined;
        continue;
      }
      if (server.power === "booting" && server.readyAtMinute <= minute) {
        server.power = "running";
        server.bootedAt = nowMs;
        // confscale's actuator registers a booted server and enables it as soon as its BBB API answers.
        server.state = "enabled";
        server.loadMultiplier = sizeLoadMultiplier(this.policy.defaultSize, server.size);
      }
      if (server.pendingResize !== undefined && server.pendingResize.atMinute <= minute) {
        server.size = server.pendingResize.size;
        server.loadMultiplier = sizeLoadMultiplier(this.policy.defaultSize, server.size);
        server.resizedAt = nowMs;
        server.pendingResize = undefined;
        if (server.state === "disabled" && server.power === "running") server.state = "enabled";
      }
      for (const [id, meeting] of server.meetings) {
        if (meeting.endSecond <= minute * 60) server.meetings.delete(id);
      }
      if (server.state === "cordoned" && server.meetings.size === 0) server.state = "disabled";
    }
    const meetings = this.day.meetings;
    while (this.nextMeeting < meetings.length && (meetings[this.nextMeeting]?.startSecond ?? Infinity) <= minute * 60) {
      const meeting = meetings[this.nextMeeting] as SimMeeting;
      this.nextMeeting += 1;
      const target = place === undefined ? leastLoaded(this.servers, minute) : place(meeting, this.servers, minute);
      if (target === undefined || !takesMeetings(target)) {
        this.meetingsRejected += 1;
        this.overloadedParticipantMinutes += (meeting.participants * (meeting.endSecond - meeting.startSecond)) / 60;
        continue;
      }
      target.meetings.set(meeting.id, meeting);
    }
  }

  /** Bills the minute and counts overload; returns what node-exporter would report. */
  measure(): Map<string, Metrics> {
    const metrics = new Map<string, Metrics>();
    let billed = 0;
    for (const server of this.servers) {
      if (server.power === "stopped") continue;
      billed += 1;
      this.serverMinutes += 1;
      this.coreMinutes += server.size.cores;
      this.ramGbMinutes += server.size.ramGb;
      if (server.power !== "running") continue;
      const demand = serverDemand(server.meetings.values());
      if (isOverloaded(demand, server.size)) {
        this.overloadedServerMinutes += 1;
        for (const meeting of server.meetings.values()) this.overloadedParticipantMinutes += meeting.participants;
      }
      metrics.set(server.id, utilization(demand, server.size));
    }
    this.peakServers = Math.max(this.peakServers, billed);
    return metrics;
  }

  /** Sets a load multiplier in Scalelite, as the actuator does with the policy's placement changes. */
  steer(change: PlacementChange): void {
    const server = this.servers.find((candidate) => candidate.id === change.server);
    if (server !== undefined && !change.dryRun && server.power === "running") server.loadMultiplier = change.loadMultiplier;
  }

  apply(decision: Decision, minute: number): void {
    if (decision.dryRun) return;
    if (decision.kind === "create") {
      this.launches.push({ minute, kind: "create" });
      this.servers.push({
        id: serverName(this.nextId),
        size: decision.targetSize ?? { ...this.policy.defaultSize },
        power: "booting",
        readyAtMinute: minute + CREATE_MINUTES,
        bootedAt: null,
        resizedAt: null,
        state: "disabled",
        loadMultiplier: 1,
        meetings: new Map(),
        ...(decision.warm === true ? { warm: true } : {}),
      });
      this.nextId += 1;
      this.peakExisting = Math.max(this.peakExisting, this.servers.length);
      return;
    }
    const server = this.servers.find((candidate) => candidate.id === decision.server);
    if (server === undefined) throw new Error(`decision on an unknown server: ${JSON.stringify(decision)}`);
    switch (decision.kind) {
      case "start":
        if (server.power === "stopped") {
          this.launches.push({ minute, kind: "start" });
          server.size = decision.targetSize ?? server.size;
          server.power = "booting";
          server.readyAtMinute = minute + START_MINUTES;
        }
        return;
      case "stop":
      case "destroy":
        this.meetingsCutOff += server.meetings.size;
        server.meetings.clear();
        server.power = "stopped";
        server.state = "disabled";
        server.bootedAt = null;
        if (decision.kind === "destroy") this.servers.splice(this.servers.indexOf(server), 1);
        return;
      case "drain":
        server.state = server.meetings.size === 0 ? "disabled" : "cordoned";
        return;
      case "enable":
        server.state = "enabled";
        return;
      case "resize": {
        const size = decision.targetSize ?? server.size;
        const shrinks = size.cores < server.size.cores || size.ramGb < server.size.ramGb;
        // A size-down goes through drain: no new meetings until it is back (the policy only shrinks empty servers).
        if (shrinks && decision.reason.includes("drain")) server.state = "disabled";
        server.pendingResize = { size, atMinute: minute + 1 };
        return;
      }
    }
  }

  /** Counts the minute if the servers running or booting are fewer than the time window's minimum. */
  checkMinimum(minute: number): void {
    const powered = this.servers.filter((server) => server.power !== "stopped").length;
    if (powered < minimumOf(this.policy, this.day.startMs + minute * MINUTE_MS)) this.minutesBelowMinimum += 1;
  }

  result(name: string): Result {
    return {
      name,
      serverHours: this.serverMinutes / 60,
      coreHours: this.coreMinutes / 60,
      ramGbHours: this.ramGbMinutes / 60,
      overloadedServerMinutes: this.overloadedServerMinutes,
      overloadedParticipantMinutes: Math.round(this.overloadedParticipantMinutes),
      peakServers: this.peakServers,
      meetingsCutOff: this.meetingsCutOff,
      meetingsRejected: this.meetingsRejected,
    };
  }
}

/** Replays a span on a fleet: each minute boots, meetings and billing, then (every period) the scaler's decisions. */
export function runSpan(
  scaler: Scaler,
  day: Day,
  state: FleetState,
  policy: WorkerPolicy,
): { result: Result; state: FleetState; fleet: Fleet } {
  const fleet = new Fleet(state, policy, day);
  for (let minute = 0; minute < day.minutes; minute += 1) {
    fleet.advance(minute, scaler.place?.bind(scaler));
    const metrics = fleet.measure();
    if (minute % scaler.intervalMinutes !== 0) continue;
    const { decisions, placement } = scaler.decide(fleet.servers, minute, day.startMs + minute * MINUTE_MS, metrics);
    for (const decision of decisions) fleet.apply(decision, minute);
    for (const change of placement) fleet.steer(change);
    fleet.checkMinimum(minute);
  }
  return { result: fleet.result(scaler.name), state: fleet.state(), fleet };
}

/** Whether every window of `perSeconds` held at most `count` launches (minute resolution, as the bench decides). */
export function launchRateKept(launches: readonly { minute: number }[], policy: Pick<WorkerPolicy, "launchRate">): boolean {
  const perMinutes = Math.max(1, Math.round(policy.launchRate.perSeconds / 60));
  return launches.every(
    (launch) =>
      launches.filter((other) => other.minute <= launch.minute && other.minute > launch.minute - perMinutes).length <=
      policy.launchRate.count,
  );
}
