import { describe, expect, it } from "vitest";
import { useClosedLoop } from "../harness/closedLoopRig.js";
import { closedLoopPolicy } from "../harness/fleetRig.js";

// One emulated minute per wall-clock second, as in the closed-loop test; a boot takes forty (within the build timeout), so a new server is still
// booting when the pause comes.
const CLOCK_SCALE = 60;
const MINUTE = 60_000;

describe("pause stops the fleet in the middle of a scale-out; resume continues it (real Redis, Prometheus, CLI, emulator)", () => {
  const rig = useClosedLoop({
    emulator: {
      clock: { kind: "real", scale: CLOCK_SCALE },
      timings: { requestQueuedMs: 1_000, requestRunningMs: 5_000, bootMs: 40 * MINUTE },
    },
    loop: () => ({
      policy: closedLoopPolicy({ thresholds: { cpu: { up: 0.65, down: 0.25 }, memory: { up: 0.8, down: 0.4 } } }),
      buildTimeoutSeconds: 7_200,
    }),
  });

  const enabled = () => [...rig.emulator.scalelite.servers.values()].filter((entry) => entry.state === "enabled");
  const fleetStatus = async () =>
    (await (await fetch(`http://127.0.0.1:${rig.scalerPort}/fleets/bbb`)).json()) as {
      paused: { scope: string } | null;
      servers: { name: string; phase: string }[];
    };

  /** Periods while paused: each decides nothing and does nothing, and the booting server stays out of Scalelite. */
  async function pausedPeriods(scope: string): Promise<void> {
    const servers = rig.emulator.cloud.servers.size;
    for (let count = 0; count < 3; count += 1) {
      const period = await rig.loop.period();
      rig.emulator.scalelite.poll();
      expect(period.outcome.decisions).toEqual([]);
      expect(period.outcome.holds.map((hold) => hold.reason)).toEqual([`paused (${scope}): no decisions or actions until resumed`]);
      expect(period.cycle).toMatchObject({ applied: [], update: null, registered: [], steered: [] });
    }
    expect(rig.emulator.cloud.servers.size).toBe(servers);
    expect(enabled()).toHaveLength(1);
    expect((await fleetStatus()).paused).toMatchObject({ scope });
  }

  it(
    "decides and does nothing while the fleet or the whole scaler is paused, and carries on once resumed",
    { timeout: 600_000 },
    async () => {
      await rig.loop.actuator.start();
      await rig.periodsUntil("baseline registered", () => enabled().length === 1);

      // Load rises and stays (ten emulated hours: on a loaded machine the pauses may take many emulated minutes, and the
      // load must outlast them): the period that decides the scale-out also runs its `up` to the end.
      for (let index = 0; index < 8; index += 1)
        rig.emulator.scalelite.placeMeeting({ participants: 30, videos: 6, durationMs: 600 * MINUTE });
      await rig.periodsUntil("a scale-out decided", () =>
        rig.loop.periods.some((period) => period.cycle.applied.some((d) => d.kind === "create")),
      );
      expect(rig.emulator.cloud.servers.size).toBe(2);
      expect(enabled()).toHaveLength(1);

      await rig.loop.store.setGroupPaused("bbb", true, "operator");
      await pausedPeriods("fleet");
      await rig.loop.store.setGroupPaused("bbb", false, "operator");
      await rig.loop.store.setGlobalPause(true, "operator");
      await pausedPeriods("global");

      await rig.loop.store.setGlobalPause(false, "operator");
      await rig.periodsUntil("the new server taking meetings", () => enabled().length === 2);
      expect((await fleetStatus()).paused).toBeNull();
      const kinds = (await rig.loop.store.readAudit("bbb", { limit: 1000 })).map((entry) => entry.kind);
      expect(kinds).toEqual(expect.arrayContaining(["fleet.paused", "fleet.resumed"]));
    },
  );
});
