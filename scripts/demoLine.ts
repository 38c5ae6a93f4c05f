// The demo's terminal lines, built from what a period read (its snapshot) and what it did, so each number on a line is
// one the scaler saw at the time printed on it. Pure: scripts/demo.ts and scripts/demoRehearsal.ts feed it,
// test/integration/demo-line.test.ts checks it.
import { heldText, type CycleReport } from "../scaler/actuator/actuator.js";
import type { Decision, GroupSnapshot, ServerSnapshot } from "../scaler/policy/types.js";

export interface PeriodLoad {
  /** Participants on every running server, cordoned or not; null when none reported. */
  participants: number | null;
  /** Running servers whose participant count is stale or missing (then the total is an estimate). */
  participantsUnsure: number;
  /** Participants on servers cordoned in Scalelite or held/draining in the fleet. */
  onCordoned: number;
  cordonedServers: number;
  /** Core- and RAM-weighted use of the running servers with fresh metrics; null when none has them. */
  cpu: number | null;
  memory: number | null;
  reporting: number;
  running: number;
}

const OUT_OF_SERVICE = new Set(["held", "draining", "resizing"]);

function cordoned(server: ServerSnapshot, phases: ReadonlyMap<string, string>): boolean {
  return server.scalelite?.state === "cordoned" || OUT_OF_SERVICE.has(phases.get(server.id) ?? "");
}

/** The fleet's load as the period read it: no server without metrics is counted as busy or idle, only as not reporting. */
export function periodLoad(snapshot: GroupSnapshot, phases: ReadonlyMap<string, string>): PeriodLoad {
  const running = snapshot.servers.filter((server) => server.power === "running");
  let participants: number | null = null;
  let participantsUnsure = 0;
  let onCordoned = 0;
  let cordonedServers = 0;
  for (const server of running) {
    const count = server.participants.value;
    if (server.participants.status !== "fresh") participantsUnsure += 1;
    if (count !== null) participants = (participants ?? 0) + count;
    if (cordoned(server, phases)) {
      cordonedServers += 1;
      onCordoned += count ?? 0;
    }
  }
  const reporting = running.filter((server) => server.cpu.status === "fresh" && server.memory.status === "fresh");
  const cores = reporting.reduce((sum, server) => sum + server.size.cores, 0);
  const ram = reporting.reduce((sum, server) => sum + server.size.ramGb, 0);
  return {
    participants,
    participantsUnsure,
    onCordoned,
    cordonedServers,
    cpu: cores === 0 ? null : reporting.reduce((sum, server) => sum + (server.cpu.value ?? 0) * server.size.cores, 0) / cores,
    memory: ram === 0 ? null : reporting.reduce((sum, server) => sum + (server.memory.value ?? 0) * server.size.ramGb, 0) / ram,
    reporting: reporting.length,
    running: running.length,
  };
}

const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? "" : "s"}`;
const percent = (value: number) => `${Math.round(value * 100)}%`;

export function loadText(load: PeriodLoad): string {
  const people =
    load.participants === null
      ? "participants    ?"
      : `participants ${`${load.participantsUnsure > 0 ? "~" : ""}${load.participants}`.padStart(4)}`;
  const unsure =
    load.participants !== null && load.participantsUnsure > 0 ? ` (${plural(load.participantsUnsure, "server")} not fresh)` : "";
  const onHold = load.cordonedServers === 0 ? "" : ` (${load.onCordoned} on ${plural(load.cordonedServers, "draining/held server")})`;
  const all = load.reporting === load.running;
  const mark = all ? "" : "~";
  const use =
    load.cpu === null || load.memory === null ? `cpu ? mem ?` : `cpu ${mark}${percent(load.cpu)} mem ${mark}${percent(load.memory)}`;
  const reporting = all ? "" : ` (${load.reporting} of ${plural(load.running, "server")} reporting)`;
  return `${people}${unsure}${onHold}  ${use}${reporting}`;
}

const DONE: Partial<Record<Decision["kind"], string>> = {
  create: "created",
  start: "started",
  stop: "stopped",
  destroy: "destroyed",
  resize: "resized",
};

/** A server as the fleet's status lists it, enough to say its size, power and phase. */
export interface FleetServerView {
  cores: number;
  ramGb: number;
  power: string;
  phase: string;
}

/**
 * The fleet by size and phase, serving servers first, one group between commas: `2×4c/8G, 1×8c/16G draining, 1×stopped`
 * (without the commas, `1×8c/16G draining 2×4c/8G` read as two draining).
 */
export function fleetText(servers: readonly FleetServerView[]): string {
  const groups = new Map<string, number>();
  const keyOf = (server: FleetServerView) =>
    server.power !== "running" ? server.power : `${server.cores}c/${server.ramGb}G${server.phase === "active" ? "" : ` ${server.phase}`}`;
  const serving = (server: FleetServerView) => server.power === "running" && server.phase === "active";
  for (const server of [...servers.filter(serving), ...servers.filter((server) => !serving(server))]) {
    const key = keyOf(server);
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  return groups.size === 0 ? "no servers" : [...groups].map(([key, count]) => `${count}×${key}`).join(", ");
}

/** What an `up` did to servers (its own summary counts Pulumi resources: DNS records, volumes, …). */
export function updateText(update: CycleReport["update"], applied: readonly Decision[]): string {
  if (update === null) return "";
  const counts = new Map<string, number>();
  for (const decision of applied) {
    const verb = DONE[decision.kind];
    if (verb !== undefined) counts.set(verb, (counts.get(verb) ?? 0) + 1);
  }
  const what =
    counts.size === 0 ? "no server changed" : [...counts].map(([verb, count]) => `${plural(count, "server")} ${verb}`).join(", ");
  return `  | up: ${what} in ${(update.durationMs / 1000).toFixed(1)} s`;
}

export interface PeriodLineInput {
  /** When the numbers were read: the snapshot's time (the period's, when it read none). */
  readAt: number;
  snapshot: GroupSnapshot | undefined;
  phases: ReadonlyMap<string, string>;
  fleet: string;
  decisions: readonly Decision[];
  cycle: Pick<CycleReport, "applied" | "held" | "update" | "steered">;
  /** When the period ended; shown when its actions took the clock past the minute it read at. */
  endedAt: number;
}

export function periodLine(input: PeriodLineInput, clock: (at: number) => string): string {
  const { cycle } = input;
  const load = input.snapshot === undefined ? "load unknown (nothing read)" : loadText(periodLoad(input.snapshot, input.phases));
  const decisions = input.decisions.map(
    (decision) =>
      `${decision.kind}${decision.server === undefined ? "" : ` ${decision.server}`}${decision.targetSize === undefined ? "" : ` → ${decision.targetSize.cores}c/${decision.targetSize.ramGb}G`}`,
  );
  const held = cycle.held.length === 0 ? "" : `  | ${cycle.held.map(heldText).join("; ")}`;
  const steered =
    cycle.steered.length === 0
      ? ""
      : `  | Scalelite multipliers ${cycle.steered.map((entry) => `${entry.server} ${entry.loadMultiplier}`).join(", ")}`;
  const ended = clock(input.endedAt) === clock(input.readAt) ? "" : `  | done ${clock(input.endedAt)}`;
  return `${clock(input.readAt)}  ${load}  | fleet ${input.fleet} | ${decisions.length === 0 ? "no change" : decisions.join(", ")}${updateText(cycle.update, cycle.applied)}${held}${steered}${ended}`;
}

/** A line while a period's `up` or drain has run for minutes: what the fleet is waiting on. */
export function progressLine(
  at: number,
  sinceMs: number,
  servers: readonly { name: string; phase: string; power: string }[],
  clock: (at: number) => string,
): string {
  const busy = servers.filter((server) => server.phase !== "active" && server.phase !== "stopped" && server.phase !== "held");
  const waiting = busy.length === 0 ? "updating the fleet stack" : busy.map((server) => `${server.phase} ${server.name}`).join(", ");
  return `${clock(at)}  … up/drain in progress ${Math.floor(sinceMs / 60_000)} min: ${waiting}`;
}

export interface MeetingTally {
  replayed: number;
  placed: number;
  rejected: number;
  cutOff: number;
}

/** Every replayed meeting accounted for: placed, turned away, or not yet due when the demo ended. */
export function meetingSummary(tally: MeetingTally, until: string): string {
  const notStarted = tally.replayed - tally.placed - tally.rejected;
  return `${tally.replayed} meetings replayed: ${tally.placed} placed (${tally.cutOff} of them cut off when their server lost power), ${tally.rejected} rejected (no server free), ${notStarted} not started by ${until} (they start later in the trace)`;
}
