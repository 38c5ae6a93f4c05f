import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fleetText, meetingSummary, periodLine } from "../../scripts/demoLine.js";
import type { Decision, GroupSnapshot } from "../../scaler/policy/types.js";
import { BbbClient } from "../../scaler/signals/bbb.js";
import { ScaleliteClient } from "../../scaler/signals/scalelite.js";
import { buildSnapshot, type FleetMember, type MeetingCounts, type Observed } from "../../scaler/signals/snapshot.js";
import type { WorkerMetrics } from "../../scaler/signals/prometheus.js";
import { Emulator } from "../emulator/emulator.js";

const AT = Date.parse("2026-11-23T08:02:00+01:00");
const clock = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Berlin", hour: "2-digit", minute: "2-digit" });
const hhmm = (at: number) => clock.format(at);
const SIZES = { a: { cores: 4, ram: 8192 }, b: { cores: 4, ram: 8192 }, c: { cores: 8, ram: 16384 } } as const;
const MEETINGS = { a: [12, 9], b: [20], c: [30, 7, 5] } as const;

describe("the demo's period line against the emulator's own counts", () => {
  let emulator: Emulator;
  let snapshot: GroupSnapshot;

  beforeAll(async () => {
    // A manual clock: nothing moves between what the emulator holds and what the line is built from.
    emulator = await Emulator.start({ clock: { kind: "manual" }, startAt: AT });
    const scalelite = new ScaleliteClient({ baseUrl: emulator.scaleliteApiUrl, secret: emulator.scalelite.secret });
    const members: FleetMember[] = [];
    const meetings = new Map<string, Observed<MeetingCounts>>();
    for (const [name, size] of Object.entries(SIZES)) {
      const server = emulator.addRunningServer({ name, ...size });
      const registered = await scalelite.addServer({ url: emulator.bbbUrl(server.id), secret: emulator.cloud.bbbSecretOf(server) });
      // c is cordoned, as a draining or operator-held server is: its participants are still in session.
      await scalelite.setState(registered.id, name === "c" ? "cordon" : "enable");
      for (const participants of MEETINGS[name as keyof typeof MEETINGS])
        emulator.cloud.startMeeting(server, { participants, videos: 1, listenOnly: 0, durationMs: 3_600_000 });
      const bbb = new BbbClient({ baseUrl: emulator.bbbUrl(server.id), secret: emulator.cloud.bbbSecretOf(server) });
      meetings.set(name, { at: AT, value: await bbb.getMeetings() });
      members.push({
        id: name,
        size: { cores: size.cores, ramGb: size.ram / 1024 },
        power: "running",
        bootedAt: AT - 600_000,
        resizedAt: null,
        instance: `${name}:9100`,
        scaleliteId: registered.id,
      });
    }
    // Metrics from the emulator's load model for a and b; c's node-exporter has not been scraped yet (just booted).
    const metrics = new Map<string, WorkerMetrics>();
    for (const server of emulator.cloud.servers.values()) {
      if (server.name === "c") continue;
      const load = emulator.cloud.load(server);
      metrics.set(`${server.name}:9100`, { cpu: load.cpuUtilisation, memory: load.memoryUsedBytes / load.memoryTotalBytes });
    }
    snapshot = buildSnapshot({
      group: "bbb",
      takenAt: AT,
      canPowerOff: true,
      fleet: members,
      metrics: { at: AT, value: metrics },
      scalelite: { at: AT, value: await scalelite.getServers() },
      meetings,
      checkIns: new Map(),
      freshForMs: 60_000,
    });
  });

  afterAll(async () => {
    await emulator?.stop();
  });

  it("counts every server's participants, says how many are on cordoned ones, and marks the load of servers not reporting", () => {
    const phases = new Map([
      ["a", "active"],
      ["b", "active"],
      ["c", "draining"],
    ]);
    const line = periodLine(
      {
        readAt: snapshot.takenAt,
        snapshot,
        phases,
        fleet: "2×4c/8G 1×8c/16G draining",
        decisions: [],
        cycle: { applied: [], held: [], update: null, steered: [] },
        endedAt: AT,
      },
      hhmm,
    );
    const state = emulator.state() as {
      servers: { name: string; meetings: { participants: number }[]; load: { cpuUtilisation: number } }[];
    };
    const participantsOf = (name: string) =>
      state.servers.find((server) => server.name === name)!.meetings.reduce((sum, meeting) => sum + meeting.participants, 0);
    const total = state.servers.reduce((sum, server) => sum + participantsOf(server.name), 0);
    expect(total).toBe(83);

    const fields =
      /^(\d\d:\d\d) {2}participants +(\d+) \((\d+) on (\d+) draining\/held servers?\) {2}cpu ~(\d+)% mem ~(\d+)% \((\d+) of (\d+) servers reporting\)/.exec(
        line,
      );
    expect(fields, line).not.toBeNull();
    const [, time, participants, onCordoned, cordonedServers, cpu, , reporting, running] = fields!;
    expect(time).toBe("08:02");
    expect(Number(participants)).toBe(total);
    expect(Number(onCordoned)).toBe(participantsOf("c"));
    expect(Number(cordonedServers)).toBe(1);
    expect(Number(reporting)).toBe(2);
    expect(Number(running)).toBe(3);
    // The reporting servers' CPU, weighted by cores, from the emulator's own load: the silent server adds nothing.
    const [a, b] = ["a", "b"].map((name) => state.servers.find((server) => server.name === name)!.load.cpuUtilisation) as [number, number];
    expect(Number(cpu)).toBe(Math.round(((a * 4 + b * 4) / 8) * 100));
    expect(Number(cpu)).toBeLessThan(100);
  });

  const create: Decision = { kind: "create", reason: "cpu high", inputs: {}, dryRun: false, targetSize: { cores: 8, ramGb: 16 } };

  it("stamps the line with the time its numbers were read, counts servers an `up` made, and says when it ended", () => {
    const line = periodLine(
      {
        readAt: AT,
        snapshot,
        phases: new Map(),
        fleet: "3×4c/8G",
        decisions: [create],
        cycle: {
          applied: [{ ...create, server: "bbb-5" }],
          held: [],
          // The engine's summary counts resources: the server, its volume, NIC and DNS record.
          update: { steps: [], summary: { create: 4, same: 9 }, durationMs: 4_100 },
          steered: [],
        },
        endedAt: AT + 9 * 60_000,
      },
      hhmm,
    );
    expect(line.startsWith("08:02  ")).toBe(true);
    expect(line).toContain("| up: 1 server created in 4.1 s");
    expect(line).not.toContain("create 4");
    expect(line).toContain("| done 08:11");
  });

  it("accounts for every replayed meeting in the summary", () => {
    expect(meetingSummary({ replayed: 141, placed: 132, rejected: 0, cutOff: 3 }, "17:00")).toBe(
      "141 meetings replayed: 132 placed (3 of them cut off when their server lost power), 0 rejected (no server free), 9 not started by 17:00 (they start later in the trace)",
    );
  });
});

describe("the demo's fleet summary", () => {
  const server = (cores: number, ramGb: number, phase: string, power = "running") => ({ cores, ramGb, phase, power });

  it("names the serving servers first and keeps each phase with its own count", () => {
    // The fleet's status lists servers by name: here the draining one comes first.
    const servers = [server(8, 16, "draining"), server(4, 8, "active"), server(4, 8, "active"), server(4, 8, "held", "stopped")];
    expect(fleetText(servers)).toBe("2×4c/8G, 1×8c/16G draining, 1×stopped");
  });

  it("says when the fleet has no servers", () => {
    expect(fleetText([])).toBe("no servers");
  });
});
