import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { HeadlessBrowser } from "../harness/browser.js";
import { useClosedLoop, workersJob } from "../harness/closedLoopRig.js";
import { closedLoopPolicy } from "../harness/fleetRig.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));
/** Screenshots a person can look at after the run (gitignored). */
const ARTIFACTS = join(repo, "test-artifacts");
const CLOCK_SCALE = 60;
const MINUTE = 60_000;
// A Monday, 08:00 in Berlin: the first lessons have begun; a window opens at 16:00.
const START = Date.parse("2026-11-23T08:00:00+01:00");
const PRICES = { currency: "EUR", perCoreHour: 0.01, perGbHour: 0.005, stoppedPerHour: 0.002 };

const policy = closedLoopPolicy({
  thresholds: { cpu: { up: 0.65, down: 0.25 }, memory: { up: 0.8, down: 0.4 } },
  timeZone: "Europe/Berlin",
  windows: [{ days: ["mon"], from: "16:00", to: "17:00", min: 1 }],
  prices: PRICES,
});

const dashboardSchema = z.looseObject({
  panels: z.array(z.looseObject({ title: z.string(), targets: z.array(z.looseObject({ expr: z.string() })) })),
});
const querySchema = z.object({
  status: z.literal("success"),
  data: z.object({ result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]) })) }),
});

describe("the operator's view of a scale-out: the fleet page in a real browser and the Grafana dashboard's queries on a real Prometheus", () => {
  let browser: HeadlessBrowser;
  const rig = useClosedLoop({
    emulator: {
      clock: { kind: "real", scale: CLOCK_SCALE },
      startAt: START,
      // A boot of ten emulated minutes (ten seconds here) keeps a launched server booting over several periods.
      timings: { requestQueuedMs: 1_000, requestRunningMs: 5_000, bootMs: 10 * MINUTE },
    },
    // The control node's two jobs (files/control-node/prometheus.yml), by the names the dashboard's queries use.
    scrapeJobs: (scalerPort) => [
      { job_name: "confscale-scaler", static_configs: [{ targets: [`127.0.0.1:${scalerPort}`] }] },
      workersJob(scalerPort, "node-exporter"),
    ],
    loop: () => ({ policy }),
  });

  beforeAll(async () => {
    browser = await HeadlessBrowser.start();
    await mkdir(ARTIFACTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.stop();
  });

  const enabled = () => [...rig.emulator.scalelite.servers.values()].filter((entry) => entry.state === "enabled");
  const phases = () => rig.loop.controller.status().servers.map((server) => server.phase);

  /**
   * Periods until `seen` holds, looking while each runs too: a launched server is booting while its period's `up` runs
   * and may be registered before the period ends. Resolves with the period in flight (or none), for the caller to
   * await once it has looked.
   */
  async function periodsUntilSeen(what: string, seen: () => boolean, limit = 25): Promise<{ inFlight: Promise<unknown> }> {
    for (let count = 0; count < limit && !seen(); count += 1) {
      let finished = false;
      const period = rig.loop.period().finally(() => (finished = true));
      // The fleet's state has no event to await: look every 50 ms while the period runs.
      while (!finished && !seen()) await new Promise((resolve) => setTimeout(resolve, 50));
      if (seen()) return { inFlight: period };
      await period;
      rig.emulator.scalelite.poll();
    }
    if (!seen()) throw new Error(`${what}: not reached after ${limit} periods; phases ${JSON.stringify(phases())}`);
    return { inFlight: Promise.resolve() };
  }

  /**
   * The fleet name of the server taking meetings before the scale-out: bbb-1, unless on a loaded machine its first
   * `up` and boot outlast the build timeout under the emulated clock (60 times real time; test/harness/fleetRig.ts)
   * and the actuator replaces it with bbb-2 (replaceStuckBuilds in scaler/actuator/actuator.ts).
   */
  let baseline = "";

  /** The emulator's own count of participants and meetings on a server, by its fleet name. */
  function emulatedLoad(name: string): { participants: number; meetings: number } {
    const server = [...rig.emulator.cloud.servers.values()].find((candidate) => candidate.name === name);
    const meetings = [...(server?.meetings.values() ?? [])];
    return { meetings: meetings.length, participants: meetings.reduce((sum, meeting) => sum + meeting.participants, 0) };
  }

  it("shows the fleet during a scale-out: the busy server's load, the new server booting, the decision and why, the next window", async () => {
    await rig.loop.actuator.start();
    await rig.periodsUntil("baseline registered", () => enabled().length === 1);
    baseline = rig.loop.controller.status().servers.find((server) => server.phase === "active")?.name ?? "";
    expect(baseline).toMatch(/^bbb-\d+$/);
    for (let index = 0; index < 8; index += 1)
      rig.emulator.scalelite.placeMeeting({ participants: 30, videos: 6, durationMs: 600 * MINUTE });
    const { inFlight } = await periodsUntilSeen("a server launched and booting", () => phases().includes("booting"));

    await browser.open(`http://127.0.0.1:${rig.scalerPort}/fleets/bbb`);
    await writeFile(join(ARTIFACTS, "fleet-page-scale-out.png"), await browser.screenshot());
    const rows = await browser.evaluate<string[][]>(
      `[...document.querySelectorAll("#servers tbody tr")].map((row) => [...row.cells].map((cell) => cell.innerText.trim()))`,
    );
    const text = await browser.visibleText();
    const decisions = await browser.evaluate<string[][]>(
      `[...document.querySelectorAll("#decisions tbody tr")].map((row) => [...row.cells].map((cell) => cell.innerText.trim()))`,
    );
    await inFlight;

    const busy = rows.find((row) => row[0] === baseline);
    const load = emulatedLoad(baseline);
    expect(load.participants).toBe(240);
    // server, size, phase, participants, meetings, CPU, memory, Scalelite, last check-in
    expect(busy?.slice(0, 5)).toEqual([
      baseline,
      expect.stringMatching(/^\d+ cores \/ \d+ GB$/),
      "active",
      String(load.participants),
      String(load.meetings),
    ]);
    expect(busy?.[5]).toMatch(/^\d+ %/);
    expect(busy?.[7]).toBe("enabled");
    const launched = rows.find((row) => row[2] === "booting");
    expect(launched?.[0]).toMatch(/^bbb-\d+$/);
    expect(launched?.[3]).toBe("—");

    expect(text).toContain("Fleet bbb");
    expect(text).toContain("Scaling active");
    expect(text).toContain("Times in Europe/Berlin");
    expect(text).toContain("next window: Mon 16:00–17:00, at least 1 server");
    const launch = rig.loop.periods
      .flatMap((period) => period.outcome.decisions)
      .find((decision) => decision.kind === "create" || decision.kind === "start");
    expect(launch).toBeDefined();
    expect(decisions).toContainEqual([
      expect.stringMatching(/^2026-11-23 \d\d:\d\d:\d\d$/),
      launch?.kind,
      launch?.server ?? "new server",
      launch?.reason,
    ]);
    // It refreshes itself, with no script at all.
    expect(await browser.evaluate<string | null>(`document.querySelector('meta[http-equiv="refresh"]')?.content ?? null`)).toBe("5");
    expect(await browser.evaluate<number>("document.scripts.length")).toBe(0);

    // The front page shows the fleet too; scripts still get JSON from the same address.
    await browser.open(`http://127.0.0.1:${rig.scalerPort}/`);
    expect(await browser.visibleText()).toMatch(new RegExp(`Fleet bbb[\\s\\S]*${baseline}\\s+\\d+ cores / \\d+ GB\\s+active\\s+240\\s+8`));
    const json = (await (await fetch(`http://127.0.0.1:${rig.scalerPort}/fleets/bbb`)).json()) as { fleet: string };
    expect(json.fleet).toBe("bbb");
  });

  it("every panel of the Grafana dashboard returns data from the emulated fleet and the scaler's metrics", async () => {
    await rig.periodsUntil("the launched server taking meetings", () => enabled().length >= 2);
    rig.emulator.scalelite.placeMeeting({ participants: 20, videos: 2, durationMs: 600 * MINUTE });
    await rig.loop.period();

    const dashboard = dashboardSchema.parse(
      JSON.parse(await readFile(join(repo, "files", "control-node", "grafana", "dashboards", "fleet.json"), "utf8")),
    );
    const query = async (expr: string) => {
      const promql = expr.replaceAll("$fleet", ".*").replaceAll("$__range", "1h");
      const response = await fetch(`${rig.prometheus.url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
      const body: unknown = await response.json();
      const parsed = querySchema.safeParse(body);
      if (!parsed.success) throw new Error(`${promql}: ${JSON.stringify(body)}`);
      return parsed.data.data.result;
    };
    // Prometheus scrapes every second: wait (bounded) until it has what the last period exported.
    const empty = async () => {
      const missing: string[] = [];
      for (const panel of dashboard.panels)
        for (const target of panel.targets) if ((await query(target.expr)).length === 0) missing.push(`${panel.title}: ${target.expr}`);
      return missing;
    };
    const deadline = Date.now() + 60_000;
    let missing = await empty();
    while (missing.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      missing = await empty();
    }
    expect(missing).toEqual([]);
    expect(dashboard.panels.map((panel) => panel.title)).toEqual(
      expect.arrayContaining([
        "Decisions",
        "Decisions and their reasons",
        "Servers: desired and actual by phase",
        "Estimated cost per hour",
        "Participants per server",
        "Meetings per server",
        "Overloaded servers",
      ]),
    );

    // The numbers are the fleet's: its cost at the policy's prices, each server's participants as the emulator counts them.
    const status = rig.loop.controller.status();
    const cost = status.servers.reduce(
      (sum, server) =>
        sum + (server.power === "stopped" ? PRICES.stoppedPerHour : server.cores * PRICES.perCoreHour + server.ramGb * PRICES.perGbHour),
      0,
    );
    const [costSample] = await query('confscale_fleet_cost_per_hour{fleet="bbb"}');
    expect(costSample?.metric.currency).toBe("EUR");
    expect(Number(costSample?.value[1])).toBeCloseTo(cost, 6);
    const participants = await query(`confscale_server_participants{fleet="bbb",server="${baseline}"}`);
    expect(Number(participants[0]?.value[1])).toBe(emulatedLoad(baseline).participants);
    const reasons = await query('last_over_time(confscale_fleet_decision_timestamp_seconds{fleet="bbb"}[1h])');
    expect(reasons.map((sample) => sample.metric.decision)).toContain(
      rig.loop.periods.flatMap((period) => period.outcome.decisions).find((decision) => decision.kind !== "enable")?.kind,
    );
  });
});
