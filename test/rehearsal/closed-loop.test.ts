import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditEntry } from "../../scaler/store/schemas.js";
import { parseTrace, type TraceMeeting } from "../emulator/load-driver.js";
import { serverLoad } from "../emulator/load-model.js";
import { waitFor } from "./lab.js";
import { startLocalEnvironment, type FleetStatusView, type LocalEnvironment } from "./local-environment.js";

const TRACE = new URL("../traces/school-day.csv", import.meta.url);
/** The first bell of the school day: the lessons that start between 07:55 and 08:05, their lengths compressed 20×. */
const SEGMENT = { fromSecond: 7 * 3600 + 55 * 60, untilSecond: 8 * 3600 + 5 * 60, compression: 20 };
/** The share of the segment's lessons replayed is chosen so their CPU is this many times the fleet's cores at its minimum. */
const OVERLOAD = 1.3;

/**
 * The closed loop on the rehearsal: the control node's own scaler (started from the local stack's rendered files) reads
 * the workers' real node-exporters, whose /proc follows the meetings the load driver places through Scalelite
 * (machine-proc.ts), and scales the fleet out through its `up` of local-fleet; when the lessons end it drains servers
 * (Scalelite cordon, the worker's sidecar told to drain) and stops them once their meetings are over.
 */
describe("load from the school-day trace scales the local fleet out and back in with drain (rehearsal lab)", () => {
  let environment: LocalEnvironment;
  let start: string[] = [];
  let startedLoadAt = 0;
  const periods: string[] = [];

  const running = (status: FleetStatusView) => status.servers.filter((server) => server.power === "running").map((server) => server.name);
  const since = (entries: AuditEntry[], at: number, kinds: string[]) =>
    entries.filter((entry) => entry.at >= at && kinds.includes(entry.kind));
  /** The fleet's status, with each new period's decisions kept for the failure message. */
  async function status(): Promise<FleetStatusView> {
    const current = await environment.fleetStatus();
    const line = `${current.lastPeriod?.at ?? "-"} ${current.servers.map((server) => `${server.name}:${server.power}/${server.phase}/${server.cores}c`).join(" ")} | ${(current.lastPeriod?.decisions ?? []).map((decision) => `${decision.kind} ${decision.server ?? ""}`).join(", ")}`;
    if (periods.at(-1) !== line) periods.push(line);
    return current;
  }
  const explain = (error: unknown) => {
    throw new Error(
      `${String(error)}\nperiods:\n${periods.slice(-40).join("\n")}\nscaler: ${environment.node.service("scaler").process.stdout.slice(-2000)}`,
    );
  };

  const scrapedAndCheckedIn = (names: string[]) => environment.workersReady(names);

  beforeAll(async () => {
    environment = await startLocalEnvironment();
  }, 240_000);

  afterAll(async () => {
    environment?.emulator.loadDriver.stop();
    await environment?.stop();
  });

  it("brings the fleet to its minimum, each worker scraped over TLS, checking in and enabled in Scalelite", async () => {
    await environment.firstFleetUp(150_000).catch(explain);
    await environment.labCloud.settled();
    start = running(await status()).sort();
    expect(start.length).toBeGreaterThanOrEqual(environment.config.workers!.min);
    await scrapedAndCheckedIn(start).catch(explain);
  }, 320_000);

  it("scales out when the first bell's lessons load the workers' CPUs past the up-threshold", async () => {
    const trace = parseTrace(await readFile(TRACE, "utf8"));
    const bell = trace.filter((meeting) => meeting.startSecond >= SEGMENT.fromSecond && meeting.startSecond <= SEGMENT.untilSecond);
    const cores = start.length * environment.config.workers!.defaultSize.cores;
    const busy = (meetings: TraceMeeting[]) => serverLoad(Number.MAX_SAFE_INTEGER, 1, meetings).busyCores;
    // Every n-th lesson, as `npm run demo -- --load-share` replays: the largest n whose lessons need OVERLOAD × the cores.
    let stride = 1;
    while (busy(bell.filter((_meeting, index) => index % (stride + 1) === 0)) >= OVERLOAD * cores) stride += 1;
    const lessons = bell.filter((_meeting, index) => index % stride === 0);
    startedLoadAt = Date.now();
    environment.emulator.loadDriver.replay(lessons, SEGMENT);

    const grown = await waitFor(
      "the fleet to scale out",
      async () => {
        const added = running(await status()).filter((name) => !start.includes(name));
        return added.length > 0 ? added : undefined;
      },
      360_000,
    ).catch(explain);
    const audit = await environment.audit();
    expect(since(audit, startedLoadAt, ["act.create", "act.start"]).length).toBeGreaterThan(0);
    expect(environment.emulator.loadDriver.stats.placed).toBeGreaterThan(0);
    // The new servers are lab machines that join like the first: scraped, checking in, registered in Scalelite. The
    // compressed lessons may end while a loaded box still boots the last of them, and the scaler may take that one back:
    // it is enough that a new one joins.
    await environment.labCloud.settled();
    const joined = await waitFor(
      `one of ${grown.join(", ")} scraped over TLS, checked in and enabled in Scalelite`,
      async () => {
        const ready = (await environment.readyWorkers()).filter((name) => grown.includes(name));
        return ready.length > 0 ? ready : undefined;
      },
      150_000,
    ).catch(explain);
    expect(since(await environment.audit(), startedLoadAt, ["registered"]).map((entry) => entry.instanceId)).toEqual(
      expect.arrayContaining(joined),
    );
  }, 600_000);

  it("scales back in with drain when the lessons end: the sidecar drains, no meeting is cut, the server is stopped", async () => {
    const drained = await waitFor(
      "a drain",
      async () => {
        await status();
        const drains = since(await environment.audit(), startedLoadAt, ["act.drain"]);
        return drains.length > 0 ? drains.map((entry) => entry.instanceId ?? "") : undefined;
      },
      400_000,
    ).catch(explain);
    const victim = drained[0]!;
    const server = environment.labCloud.byName(victim);
    expect(server, victim).toBeDefined();
    // The scaler told the worker's sidecar to drain (its shutdown command), and it did.
    await waitFor(
      `${victim}'s sidecar to drain`,
      async () => (server!.boot?.services.get("confscale-sidecar")?.stdout.includes('"event":"drain.started"') ? true : undefined),
      120_000,
    ).catch(explain);
    // Cordoned in Scalelite: no new meeting goes there.
    await waitFor(`${victim} cordoned in Scalelite`, async () =>
      [...environment.emulator.scalelite.servers.values()].some(
        (entry) => entry.url.includes(server!.hostname) && entry.state === "enabled",
      )
        ? undefined
        : true,
    );
    // Once its last meeting has ended, the server is stopped (IONOS powers off) and its machine runs nothing.
    await waitFor(
      `${victim} to be stopped`,
      async () => {
        await status();
        const entries = since(await environment.audit(), startedLoadAt, ["act.stop", "act.destroy"]);
        return entries.some((entry) => entry.instanceId === victim) && server!.server.vmState !== "RUNNING" ? true : undefined;
      },
      300_000,
    ).catch(explain);
    await environment.labCloud.settled();
    expect(await server!.machine.processes()).toEqual([]);
    expect(environment.emulator.cloud.meetingsCut).toBe(0);
    expect(server!.server.meetings.size).toBe(0);
  }, 800_000);
});
